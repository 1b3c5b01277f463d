"""``vllm serve``'s command line: the flag allow-list and :func:`build_argv`, pure functions
tested without vLLM and without starting anything (tests/test_vllm_args.py): the names a request
may use, the context, the mode, `_configure`'s ``vllm`` block and the user's runtime flags. The
engine (engine.py) finds vLLM, reads the settings and the model's files, and hands the answers in.
"""

import json
import re

from modelrunner import engine_args, references

RUNTIME_FLAG_ALLOWLIST = frozenset({
    # parallelism
    "--tensor-parallel-size", "-tp", "--pipeline-parallel-size", "-pp",
    "--data-parallel-size", "-dp", "--distributed-executor-backend",
    # model, context and scheduling
    "--max-model-len", "--max-num-batched-tokens", "--max-num-seqs", "--block-size",
    "--swap-space", "--seed", "--long-prefill-token-threshold", "--scheduling-policy",
    "--async-scheduling", "--no-async-scheduling", "--cpu-offload-gb",
    # data types and quantization
    "--dtype", "--quantization", "-q", "--kv-cache-dtype",
    # performance
    "--enforce-eager", "--no-enforce-eager", "--enable-prefix-caching",
    "--no-enable-prefix-caching", "--enable-chunked-prefill", "--no-enable-chunked-prefill",
    "--disable-custom-all-reduce", "--use-v2-block-manager", "--disable-cascade-attn",
    "--compilation-config", "-cc", "--kv-cache-memory-bytes",
    # tokenizer, sampling and output
    "--tokenizer-mode", "--max-logprobs", "--logprobs-mode", "--override-generation-config",
    "--generation-config", "--reasoning-parser", "--enable-auto-tool-choice",
    "--tool-call-parser", "--chat-template-content-format", "--response-role",
    "--enable-prompt-tokens-details", "--enable-force-include-usage", "--return-tokens-as-token-ids",
    "--max-log-len",
    # misc (DMR's)
    "--revision", "--load-format", "--disable-log-stats", "--served-model-name",
    "--enable-log-requests", "--disable-log-requests", "--enable-log-outputs",
    "--limit-mm-per-prompt", "--mm-processor-kwargs", "--hf-overrides",
    # memory
    "--gpu-memory-utilization",
})

# Flags whose value is a file, directory or executable; refused even if someone adds them above.
_PATH_FLAGS = frozenset({"--model", "--tokenizer", "--chat-template", "--uds", "--download-dir",
                         "--ssl-keyfile", "--ssl-certfile", "--ssl-ca-certs", "--middleware",
                         "--trust-remote-code", "--allowed-local-media-path", "--config",
                         "--lora-modules", "--speculative-config", "--root-path"})

_HF_KEY = re.compile(r"^[A-Za-z_]\w*$")


def vllm_block(extra):
    """`_configure`'s ``vllm`` block from a RunnerConfig's ``extra`` (``{}`` when absent)."""
    block = (extra or {}).get("vllm") or {}
    if not isinstance(block, dict):
        raise ValueError("vllm must be an object")
    return block


def hf_overrides_arg(block):
    """``--hf-overrides``' JSON for the block's ``hf-overrides`` (DMR: ``configure
    --hf_overrides``), or None.

    It patches the model's Hugging Face config, so it must be an object whose keys are
    identifiers (DMR's rule) and whose values name no file: a string holding ``/`` or ``..``
    could point vLLM at a tokenizer, weights or code outside the model, so it is refused.
    Raises ValueError."""
    overrides = block.get("hf-overrides", block.get("hf_overrides"))
    if overrides is None or overrides == {}:
        return None
    if not isinstance(overrides, dict):
        raise ValueError("vllm.hf-overrides must be a JSON object")

    def check(value, where):
        if isinstance(value, dict):
            for key, inner in value.items():
                if not isinstance(key, str) or not _HF_KEY.match(key):
                    raise ValueError(f"vllm.hf-overrides key {key!r} is not a valid identifier")
                check(inner, f"{where}.{key}" if where else key)
        elif isinstance(value, list):
            for inner in value:
                check(inner, where)
        elif isinstance(value, str) and ("/" in value or "\\" in value or ".." in value):
            raise ValueError(f"vllm.hf-overrides {where}: {value!r} may not name a path")

    check(overrides, "")
    return json.dumps(overrides, separators=(",", ":"))


def gpu_memory_fraction(value):
    """``--gpu-memory-utilization``: a number in (0, 1], else ValueError; None stays None."""
    if value is None:
        return None
    try:
        fraction = float(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        fraction = None
    if fraction is None or not 0 < fraction <= 1:
        raise ValueError(f"gpu-memory-utilization must be a number in (0, 1], not {value!r}")
    return fraction

def configured_fraction(block):
    """The block's ``gpu-memory-utilization`` (DMR: ``configure --gpu-memory-utilization``)."""
    return block.get("gpu-memory-utilization", block.get("gpu_memory_utilization"))


def served_model_names(bundle):
    """Every name a request for this model may carry in its ``"model"`` field.

    The gateway forwards the body as the client wrote it, and vLLM answers 404 unless
    ``"model"`` is one of ``--served-model-name``. A stored model is reached by its tags in any
    form the store normalises (``docker.io/ai/x:latest``, ``ai/x:latest``, ``ai/x``, ``x:latest``,
    ``x``, ``index.docker.io/ai/x``, ``hf.co/org/repo`` for ``huggingface.co/org/repo``) and by its
    ID (``sha256:<hex>``, ``<hex>``, the 12-hex short ID), so all of them are served. The first
    name, which vLLM puts in its answers' ``"model"`` and in ``/v1/models``, is the first tag as
    stored, as modelrunner's own ``/v1/models`` shows it.

    Not covered (name part in other letter case, e.g. ``AI/X``): such a request gets vLLM's 404.
    """
    names = []

    def add(name):
        if name and name not in names:
            names.append(name)

    for tag in bundle.tags or []:
        add(tag)
        try:
            ref = references.parse(tag)
        except references.InvalidReference:
            continue
        if ref.digest:
            bases, suffixes = [ref.name], [f"@{ref.digest}"]
        else:
            suffixes = [f":{ref.tag}"] + ([""] if ref.tag == references.DEFAULT_TAG else [])
            bases = [ref.name]
        if ref.registry == references.DEFAULT_REGISTRY:
            bases.append(ref.repository)
            bases.append(f"index.docker.io/{ref.repository}")
            bases.append(f"registry-1.docker.io/{ref.repository}")
            if ref.repository.startswith(references.DEFAULT_NAMESPACE + "/") and \
                    "/" not in ref.repository[len(references.DEFAULT_NAMESPACE) + 1:]:
                bases.append(ref.repository[len(references.DEFAULT_NAMESPACE) + 1:])
        elif ref.registry == references.HF_REGISTRY:
            bases.append(f"hf.co/{ref.repository}")
        for base in bases:
            for suffix in suffixes:
                add(base + suffix)
    model_id = str(bundle.model_id or "")
    if model_id:
        add(model_id)
        hex_id = model_id.split(":", 1)[-1]
        add(hex_id)
        add(f"sha256:{hex_id}")
        if len(hex_id) >= 12:
            add(hex_id[:12])
    return names


def parallel_size(flags):
    """GPUs a vLLM server started with ``flags`` uses: tensor x pipeline parallel size."""
    flags = engine_args.split_flags(list(flags))
    size = 1
    for names in (("--tensor-parallel-size", "-tp"), ("--pipeline-parallel-size", "-pp")):
        values, _ = engine_args.take_flags(flags, names)
        try:
            size *= max(1, int(values[-1])) if values else 1
        except ValueError:
            pass  # validate_runtime_flags already refused a non-number
    return size


def max_model_len(config, flags, model_context, fits=None):
    """``--max-model-len``: None when a runtime flag says it or the configured context is -1
    (the model's own maximum: vLLM derives it); else the configured context, else the one the
    model declares (``model_context``). ``fits`` is the largest context the CPU's fixed KV cache
    holds: a model's own context that does not fit is cut to it rather than failing to load, a
    context the user configured never is."""
    if "--max-model-len" in flags:
        return None
    ctx = engine_args.as_int(config.context_size)
    if ctx is not None and ctx <= 0:
        return None
    if ctx is None:
        ctx = model_context
    if ctx is not None and fits and ctx == model_context and 0 < fits < ctx:
        ctx = fits
    return ctx


def build_argv(executable, bundle, config, address, *, on_cpu, chat_template=None, dtype=None,
               gpu_memory_utilization=None, max_num_seqs=None, kv_fit=None):
    """``vllm serve <model dir> --uds <socket>`` with DMR's arguments and modelrunner's names.

    ``executable`` is the argv prefix that runs vLLM's CLI. ``--served-model-name`` (every name
    of the model, :func:`served_model_names`, then the user's), ``--chat-template`` (what the
    engine chose: the bundle's, or its ChatML default for a model with none), ``--runner
    pooling`` in embedding mode, ``--max-model-len`` (:func:`max_model_len`, ``kv_fit`` the
    largest context the CPU KV cache holds), ``--dtype``, ``--gpu-memory-utilization`` on a GPU
    (``_configure``'s ``vllm`` block, else the setting given), ``--max-num-seqs``,
    ``--hf-overrides`` from the block, then the user's runtime flags (last, so they override
    the defaults; a default they set is left out). Raises ValueError for a bad ``vllm`` block.
    """
    flags = engine_args.split_flags(list(config.runtime_flags or []))
    user_names, flags = engine_args.take_flags(flags, ("--served-model-name",), nargs="+")
    argv = [*executable, "serve", str(bundle.model_dir), *engine_args.listen_args(address, "--uds")]
    names = served_model_names(bundle)
    names += [n for n in user_names if n not in names]
    argv += ["--served-model-name", *(names or [str(bundle.model_id)])]
    if chat_template is not None:
        argv += ["--chat-template", str(chat_template)]
    if config.mode == "embedding":
        argv += ["--runner", "pooling"]
    context = max_model_len(config, flags, engine_args.as_int((bundle.config or {}).get("context_size")),
                            kv_fit if on_cpu else None)
    if context:
        argv += ["--max-model-len", str(context)]
    if dtype and "--dtype" not in flags:
        argv += ["--dtype", str(dtype)]
    block = vllm_block(config.extra)
    if not on_cpu and "--gpu-memory-utilization" not in flags:
        value = configured_fraction(block)
        fraction = gpu_memory_fraction(gpu_memory_utilization if value is None else value)
        if fraction is not None:
            argv += ["--gpu-memory-utilization", f"{fraction:g}"]
    seqs = engine_args.as_int(max_num_seqs)
    if seqs and "--max-num-seqs" not in flags:
        argv += ["--max-num-seqs", str(seqs)]
    overrides = hf_overrides_arg(block)
    if overrides and "--hf-overrides" not in flags:
        argv += ["--hf-overrides", overrides]
    return argv + flags
