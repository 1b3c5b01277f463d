"""llama-server's command line, built from a model bundle, its runner config and settings.

Pure functions with fast tests of their own (tests/test_args.py): what llama-server gets for
slots and context, each mode, threads, GPU offload and the user's runtime flags. The engine
(engine.py) finds the binary and asks it what it supports; these functions only build argv.
"""

import os
from pathlib import Path

from modelrunner import engine_args

from . import templates

# Flags `_configure` may pass through. None of them takes a path; files are the engine's business.
RUNTIME_FLAGS = frozenset({
    # slots, threads, batching, context
    "--parallel", "-np", "--threads", "-t", "--threads-batch", "-tb",
    "--batch-size", "-b", "--ubatch-size", "-ub", "--ctx-size", "-c",
    "--cont-batching", "-cb", "--no-cont-batching", "-nocb",
    "--kv-unified", "-kvu", "--no-kv-unified", "--kv-unified-per-slot",
    "--keep", "--context-shift", "--no-context-shift", "--cache-reuse", "--cache-ram", "-cram",
    "--defrag-thold", "-dt", "--swa-full", "--no-warmup", "--prio", "--poll",
    # memory placement and offload
    "--n-gpu-layers", "-ngl", "--gpu-layers", "--split-mode", "-sm", "--main-gpu", "-mg",
    "--tensor-split", "-ts", "--no-kv-offload", "-nkvo", "--cpu-moe", "-cmoe",
    "--n-cpu-moe", "-ncmoe", "--flash-attn", "-fa", "--cache-type-k", "-ctk",
    "--cache-type-v", "-ctv", "--repack", "--no-repack", "-nr", "--load-mode", "-lm", "--no-mmap", "--mmap", "--mlock",
    # rope / long context
    "--rope-scaling", "--rope-scale", "--rope-freq-base", "--rope-freq-scale",
    "--yarn-orig-ctx", "--yarn-ext-factor", "--yarn-attn-factor", "--yarn-beta-slow",
    "--yarn-beta-fast",
    # sampling defaults
    "--temp", "--top-k", "--top-p", "--min-p", "--typical", "--top-nsigma",
    "--repeat-penalty", "--repeat-last-n", "--presence-penalty", "--frequency-penalty",
    "--mirostat", "--mirostat-lr", "--mirostat-ent", "--seed", "-s",
    "--dynatemp-range", "--dynatemp-exp", "--xtc-probability", "--xtc-threshold",
    "--dry-multiplier", "--dry-base", "--dry-allowed-length", "--dry-penalty-last-n",
    "--samplers", "--sampling-seq", "--ignore-eos", "--n-predict", "-n", "--predict",
    "--grammar",  # the default grammar of requests that bring none (no --grammar-file: a path)
    # chat and reasoning
    "--reasoning-budget", "--reasoning-format", "--jinja", "--no-jinja",
    "--chat-template",  # a built-in name only (LlamaCppEngine.validate_runtime_flags)
    # embeddings
    "--pooling", "--embd-normalize",
})


def _physical_cores():
    """Physical cores available to this process (hyper-threads don't speed up matmuls)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    cores = set()
    try:
        physical = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not key:
                if core is not None:
                    cores.add((physical, core))
                physical = core = None
        if core is not None:
            cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(len(cores) or available, available))


def take_flag(flags, names):
    """Remove ``names`` (a flag and its value) from split ``flags``; returns (the value the runner
    would have used, or None; the rest)."""
    values, rest = engine_args.take_flags(flags, names)
    return (values[-1] if values else None), rest


def plan(bundle, config, slots_setting=4, has=None):
    """    Slots, per-request context and KV pool size, and the flags that set them up.

            llama-server's ``--ctx-size`` is the KV cache of the whole server, shared by its
            ``--parallel`` slots. modelrunner's context size (``_configure``'s context_size, else the
            model's ``context_size``) is what *each request* may use, as in DMR with one slot. So
            with N slots and a context C the runner gets ``--ctx-size N*C`` and, where this
            llama-server has them, ``--kv-unified --kv-unified-per-slot C``: one KV pool of N*C
            tokens that the slots share, each slot capped at C. Every request can use the full C
            even when all slots are busy, and idle slots' tokens don't pin memory per slot. Without
            ``--kv-unified-per-slot`` the split cache (``--no-kv-unified``) of N*C gives each slot
            exactly C. A ``--ctx-size``/``--parallel`` runtime flag means the same per-request
            context and slot count.

            Under the scheduler a context is always there: the configured one, else the one
            the engine's ``choose_context`` fitted to the memory budget (engine.py, memory.py).
            Called with none at all, ``--ctx-size`` is not passed: llama-server sizes the pool
            to the model's training context, unified, shared by concurrent requests.
    """
    has = has or (lambda flag: True)
    flags = engine_args.split_flags(list(config.runtime_flags or []))
    slots_flag, flags = take_flag(flags, ("--parallel", "-np"))
    ctx_flag, flags = take_flag(flags, ("--ctx-size", "-c"))
    slots = max(1, engine_args.as_int(slots_flag) or engine_args.as_int(slots_setting) or 4)
    ctx = engine_args.as_int(ctx_flag)
    if ctx is None:
        ctx = engine_args.as_int(config.context_size)
    if ctx is None and isinstance(bundle.config, dict):
        ctx = engine_args.as_int(bundle.config.get("context_size"))
    if ctx is not None and ctx <= 0:  # DMR: -1 = unlimited, i.e. the model's own
        ctx = None
    args = ["--parallel", str(slots)]
    if ctx is not None:
        args += ["--ctx-size", str(ctx * slots)]
        if slots > 1 and has("--kv-unified-per-slot"):
            args += ["--kv-unified", "--kv-unified-per-slot", str(ctx)]
        elif has("--no-kv-unified"):
            args += ["--no-kv-unified"]
        pool = ctx * slots
    else:
        if has("--kv-unified"):
            args += ["--kv-unified"]
        pool = None
    return {"slots": slots, "context": ctx, "pool": pool, "args": args, "rest": flags}


def reasoning_budget(config):
    """The ``_configure`` body's ``llamacpp.reasoning-budget`` (DMR's ``configure --think``):
    an int >= -1, or None when unset. Raises ValueError for anything else."""
    block = (config.extra or {}).get("llamacpp") or {}
    if not isinstance(block, dict):
        raise ValueError("llamacpp must be an object")
    value = block.get("reasoning-budget", block.get("reasoning_budget"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError(f"llamacpp.reasoning-budget must be an integer >= -1 (-1 unlimited, "
                         f"0 no thinking), not {value!r}")
    return value


def speculative(config):
    """DMR's ``speculative`` block: ``(num_tokens, min_acceptance_rate)`` (None when unset) for
    llama-server's ``--spec-draft-n-max``/``--spec-draft-p-min``. Raises ValueError for a bad
    block. The draft model itself reaches the engine as ``bundle.draft``."""
    block = (config.extra or {}).get("speculative") or {}
    if not isinstance(block, dict):
        raise ValueError("speculative must be an object")
    tokens, rate = block.get("num_tokens"), block.get("min_acceptance_rate")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)
                               or not 0 <= tokens <= 256):
        raise ValueError(f"speculative.num_tokens must be an integer from 0 to 256, not {tokens!r}")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not 0 <= rate <= 1):
        raise ValueError(f"speculative.min_acceptance_rate must be from 0 to 1, not {rate!r}")
    return tokens or None, rate or None


def draft_args(bundle, config, has):
    """``--model-draft`` (the draft model's first GGUF file) and its tuning, when the runner's
    configuration names a draft model (DMR's ``configure --speculative-draft-model``)."""
    draft = getattr(bundle, "draft", None)
    if draft is None:
        return []
    if not draft.gguf_files:
        raise ValueError(f"the draft model {draft.model_id} has no GGUF file")
    tokens, rate = speculative(config)
    args = ["--model-draft", str(draft.gguf_files[0])]
    if tokens and has("--spec-draft-n-max"):
        args += ["--spec-draft-n-max", str(tokens)]
    if rate and has("--spec-draft-p-min"):
        args += ["--spec-draft-p-min", str(rate)]
    return args


def alias_args(bundle, has):
    """``--alias <model id>``: the name llama-server gives the model in every answer (``model``
    of a chat completion, ``/v1/models``, ``/props``). Without it llama-server names the model by
    its ``--model`` path, the absolute path of the bundle's GGUF file, and every answer carried
    the store's path. The id is what the runner serves, whichever tag a request named (one
    runner serves them all); the OpenAI dialect writes back the name each request asked for."""
    if not has("--alias") or not bundle.model_id:
        return []
    return ["--alias", str(bundle.model_id).replace(",", "")]  # llama-server splits on commas


def chat_template(bundle, config, meta=None, tokens=()):
    """The :class:`templates.Choice` of a completion runner (None in other modes): configured,
    the bundle's template file, the GGUF's own, else llama.cpp's built-in for its tokens or
    architecture (:func:`templates.resolve`). ``meta`` is the GGUF's key/values (None: not read,
    taken as a GGUF with its template) and ``tokens`` the :data:`templates.MARKERS` its vocabulary
    has (:func:`templates.vocab_markers`)."""
    if config.mode != "completion":
        return None
    return templates.resolve(
        config, packaged=bundle.chat_template is not None,
        embedded=meta is None or bool(meta.get("tokenizer.chat_template")),
        meta=meta or {}, tokens=tokens)


def template_args(choice, bundle, has):
    """llama-server's template flags for ``choice``: ``--jinja`` (or ``--no-jinja``) first, then
    ``--chat-template NAME`` or ``--chat-template-file``. With ``--jinja`` llama-server takes a
    ``--chat-template`` value as the Jinja text itself (only ``chatml`` is mapped to its ChatML
    source), so any other built-in name runs on its non-Jinja renderer, ``--no-jinja``; a
    configured template's text goes in the environment (the engine's
    ``LLAMA_ARG_CHAT_TEMPLATE``), not in argv, which the runner log prints."""
    if choice is not None and choice.name not in (None, "chatml"):
        jinja = ["--no-jinja"] if has("--no-jinja") else []
    elif bundle.mmproj:
        jinja = []  # llama-server's default for a vision model (jinja on in today's builds)
    else:
        jinja = ["--jinja"]
    if choice is None:
        return jinja
    if choice.name:
        return jinja + ["--chat-template", choice.name]
    if choice.source == "packaged":
        return jinja + ["--chat-template-file", str(bundle.chat_template)]
    return jinja


# the largest physical batch an embedding or reranking runner gets (its compute buffer grows
# with it): inputs up to this many tokens, however large the context
EMBEDDING_BATCH_MAX = 8192


def embedding_batch_args(config, the_plan, batch=None):
    """``--batch-size N --ubatch-size N`` for an embedding or reranking runner: llama-server
    embeds an input in one physical batch (512 tokens by default), and answered 500 "input (601
    tokens) is too large to process. increase the physical batch size" for an input that fits
    the context. N is the context per slot, at most :data:`EMBEDDING_BATCH_MAX`; none when the
    user set a batch size (setting or runtime flag) or the context is the runner's own."""
    context = the_plan["context"]
    if config.mode not in ("embedding", "reranking") or not context or batch:
        return []
    if any(flag in the_plan["rest"] for flag in ("--batch-size", "-b", "--ubatch-size", "-ub")):
        return []
    size = str(min(context, EMBEDDING_BATCH_MAX))
    return ["--batch-size", size, "--ubatch-size", size]


def build_argv(binary, bundle, config, address, *, has, gpu=False, amx=False, has_pooling=True,
               slots=4, threads=0, batch_size=None, mmap=True, gpu_layers=None, meta=None,
               tokens=(), slot_save_path=None):
    """``llama-server`` for ``bundle`` at ``address``, with DMR's arguments.

    ``--model <first shard> --host <socket> --metrics``, ``--alias <model id>`` (never a path
    in an answer: :func:`alias_args`), ``--mmproj``, the chat template's flags
    (:func:`chat_template`, :func:`template_args`: ``--jinja``, or ``--no-jinja --chat-template
    gemma`` for a GGUF without a template whose tokens are Gemma's; ``meta`` and ``tokens`` are
    what the engine read from the GGUF), the
    mode's flags, ``--ctx-size``/``--parallel`` as in :func:`plan`, the draft model
    (:func:`draft_args`), ``--reasoning-budget`` from
    ``_configure``'s ``llamacpp`` block (``configure --think``), ``--cont-batching``,
    ``--threads`` (physical cores), GPU offload when the build has a GPU backend, then the
    user's runtime flags (last, so they override the defaults). ``has(flag)`` says whether this
    llama-server knows a flag. ``slot_save_path``: the folder its slots are saved to and restored
    from (``--slot-save-path``, the store's cache area; prompt_cache.py), None for none.
    """
    the_plan = plan(bundle, config, slots, has)
    _, the_plan["rest"] = take_flag(the_plan["rest"], ("--chat-template",))  # chat_template's
    files = bundle.gguf_files
    argv = [str(binary), "--model", str(files[0]), *engine_args.listen_args(address, "--host"),
            "--metrics"]
    argv += alias_args(bundle, has)
    if bundle.mmproj:
        argv += ["--mmproj", str(bundle.mmproj)]
    argv += template_args(chat_template(bundle, config, meta, tokens), bundle, has)
    if config.mode == "embedding":
        argv += ["--embeddings"]
        if "--pooling" not in the_plan["rest"] and not has_pooling:
            # A generative model has no pooling type, and llama-server's /v1/embeddings
            # refuses pooling "none": average the token embeddings instead.
            argv += ["--pooling", "mean"]
    elif config.mode == "reranking":
        argv += ["--embeddings", "--reranking"]
    argv += the_plan["args"]
    argv += draft_args(bundle, config, has)
    budget = reasoning_budget(config)
    if budget is not None and has("--reasoning-budget"):
        argv += ["--reasoning-budget", str(budget)]
    if has("--cont-batching"):
        argv += ["--cont-batching"]
    if slot_save_path is not None:
        argv += ["--slot-save-path", os.path.join(str(slot_save_path), "")]
    threads = engine_args.as_int(threads) or 0
    argv += ["--threads", str(threads if threads > 0 else _physical_cores())]
    batch = engine_args.as_int(batch_size)
    if batch:
        argv += ["--batch-size", str(batch)]
    argv += embedding_batch_args(config, the_plan, batch)
    if not engine_args.truthy(mmap):
        # Newer llama-server replaced --no-mmap with --load-mode.
        argv += ["--load-mode", "none"] if has("--load-mode") else ["--no-mmap"]
    layers = engine_args.as_int(gpu_layers)
    if layers is not None:
        argv += ["-ngl", str(layers)]
    elif gpu:
        argv += ["-ngl", "999"]
    if amx and has("--no-repack"):
        # A -march=native build on an AMX CPU: keep weights off the AMX buffer type, whose
        # matmul segfaults on Q4_1 (see build.NO_AMX). Our own builds leave AMX out.
        argv += ["--no-repack"]
    return argv + the_plan["rest"]
