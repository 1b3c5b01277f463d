"""modelrunner's llama.cpp engine: GGUF models served by llama.cpp's own ``llama-server``.

Each loaded model is one ``llama-server`` process bound to a Unix socket (``--host`` ending in
``.sock``), started by the scheduler from :meth:`LlamaCppEngine.runner_command`. The binary comes
from :mod:`modelrunner_llamacpp.build` (``modelrunner-llamacpp-build``).

Settings read (dynaconf, ``MODELRUNNER_<KEY>`` in the environment):

``llama_server_path``     the binary (also ``LLAMA_SERVER_PATH``, DMR's name); default: the cache
``llamacpp_slots``        parallel request slots per runner (``--parallel``), default 4
``llamacpp_threads``      ``--threads``; 0 = the number of physical cores
``llamacpp_batch_size``   ``--batch-size``; unset = llama-server's default
``llamacpp_mmap``         false adds ``--load-mode none`` (``--no-mmap`` on older builds)
``llamacpp_gpu_layers``   ``-ngl``; unset = 999 when the build has a GPU backend, else not passed
"""

import os
import re
import subprocess
import threading
from pathlib import Path

from modelrunner.engines import Engine, EngineError, RunnerCommand
from modelrunner.hookspecs import hookimpl

from .build import find_llama_server

__all__ = ["LlamaCppEngine", "register_engines"]

BUILD_HINT = "run: modelrunner-llamacpp-build"

# Flags `_configure` may pass through. None of them takes a path; files are the engine's business.
RUNTIME_FLAG_ALLOWLIST = frozenset({
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
    # chat and reasoning
    "--reasoning-budget", "--reasoning-format", "--jinja", "--no-jinja",
    # embeddings
    "--pooling", "--embd-normalize",
})

_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


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


def _as_int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _split_flags(flags):
    """Normalise ``--flag=value`` into ``--flag value``: llama.cpp's parser knows only the latter."""
    out = []
    for flag in flags:
        if flag.startswith("--") and "=" in flag:
            name, value = flag.split("=", 1)
            out += [name, value]
        else:
            out.append(flag)
    return out


def _take(flags, names):
    """Remove ``names`` (a flag and its value) from ``flags``; returns (value or None, rest)."""
    value, rest, i = None, [], 0
    while i < len(flags):
        if flags[i] in names and i + 1 < len(flags):
            value = flags[i + 1]
            i += 2
            continue
        rest.append(flags[i])
        i += 1
    return value, rest


class _BinaryInfo:
    """What one llama-server binary supports: version, flags from --help, GPU devices."""

    def __init__(self, path):
        self.path = Path(path)
        self.version = self._version()
        self.flags = self._flags()
        self.gpu = self._gpu()
        self.amx = self._amx()

    def _run(self, *args):
        try:
            out = subprocess.run([str(self.path), *args], capture_output=True, text=True,
                                 timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"error: {exc}"
        return (out.stdout or "") + (out.stderr or "")

    def _version(self):
        match = re.search(r"^version:\s*(.+)$", self._run("--version"), re.MULTILINE)
        return match.group(1).strip() if match else "unknown"

    def _flags(self):
        return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", self._run("--help")))

    def _gpu(self):
        if "--list-devices" not in self.flags:
            return False
        text = self._run("--list-devices")
        devices = text.split("Available devices:", 1)[-1]
        # A CPU-only build lists "(none)"; a GPU build lists e.g. "CUDA0: NVIDIA H100 (...)".
        return any(re.match(r"^\s*\w+\d+:", line) for line in devices.splitlines())

    def _amx(self):
        """Whether ggml's AMX matmul is compiled in (it crashes on Q4_1 weights; see build.py)."""
        try:
            return b"AMX is not ready to be used!" in self.path.read_bytes()
        except OSError:
            return False

    def has(self, flag):
        return flag in self.flags


_info_cache = {}
_info_lock = threading.Lock()


def binary_info(path):
    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _info_lock:
        if key not in _info_cache:
            _info_cache[key] = _BinaryInfo(path)
        return _info_cache[key]


def _gguf_metadata(bundle):
    """The model's GGUF key/values as strings: bundle.config["gguf"], else read from the file."""
    meta = bundle.config.get("gguf") if isinstance(bundle.config, dict) else None
    if meta and meta.get("general.architecture"):
        return {k: v for k, v in meta.items()}
    files = bundle.gguf_files
    return read_gguf_metadata(files[0]) if files else {}


_meta_cache = {}


def read_gguf_metadata(path):
    """Scalar and small-array GGUF key/values of ``path`` as strings (arrays as lists)."""
    import gguf

    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in _meta_cache:
        return _meta_cache[key]
    reader = gguf.GGUFReader(str(path))
    meta = {}
    for name, field in reader.fields.items():
        if name.startswith("tokenizer.ggml.") or name.startswith("GGUF."):
            continue
        try:
            value = field.contents()
        except Exception:  # noqa: BLE001 - a field we cannot decode is not needed
            continue
        if isinstance(value, list):
            if len(value) > 1024:
                continue
            meta[name] = [str(v) for v in value]
        else:
            meta[name] = str(value)
    _meta_cache[key] = meta
    return meta


def _per_layer(value, n_layer):
    """A GGUF value that is a number or a per-layer array; returns the per-layer list of ints."""
    if isinstance(value, (list, tuple)):
        vals = [_as_int(v) or 0 for v in value]
        return (vals + [vals[-1] if vals else 0] * n_layer)[:n_layer]
    if isinstance(value, str) and value.startswith("["):
        return _per_layer([v for v in re.split(r"[\s,\[\]]+", value) if v], n_layer)
    return [_as_int(value) or 0] * n_layer


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    distribution = "modelrunner-llamacpp"
    formats = ("gguf",)
    modes = ("completion", "embedding", "reranking")
    runtime_flag_allowlist = RUNTIME_FLAG_ALLOWLIST

    # -- installation ---------------------------------------------------------------------------

    def binary(self):
        return find_llama_server(self.settings)

    def installed(self):
        path = self.binary()
        if path is None:
            return False, BUILD_HINT
        try:
            info = binary_info(path)
        except OSError as exc:
            return False, f"llama-server at {path} cannot run ({exc}); {BUILD_HINT}"
        if info.version == "unknown" and not info.flags:
            return False, f"llama-server at {path} does not run; {BUILD_HINT}"
        return True, f"llama-server {info.version} at {path}"

    # -- flags ----------------------------------------------------------------------------------

    def validate_runtime_flags(self, flags):
        """DMR's rules, except that negative numbers are values (``--seed -1``)."""
        for flag in flags:
            if not isinstance(flag, str):
                raise EngineError(f"runtime flag {flag!r} is not a string")
            if "/" in flag or "\\" in flag:
                raise EngineError(f"runtime flag {flag!r} may not contain a path")
            if flag.startswith("-") and not _NUMBER.match(flag):
                name = flag.split("=", 1)[0]
                if name not in self.runtime_flag_allowlist:
                    raise EngineError(f"runtime flag {name!r} is not allowed for {self.name}")
                if "=" in flag:
                    value = flag.split("=", 1)[1]
                    if value.startswith("-") and not _NUMBER.match(value):
                        raise EngineError(f"runtime flag {flag!r} looks like flag injection")

    # -- context and slots ----------------------------------------------------------------------

    def _plan(self, bundle, config, info=None):
        """Slots, per-request context and KV pool size, and the flags that set them up.

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

        With no context configured ``--ctx-size`` is not passed (as DMR does): llama-server
        sizes the pool to the model's training context; it is unified, so one request may use
        all of it and concurrent requests share it.
        """
        flags = _split_flags(list(config.runtime_flags or []))
        slots_flag, flags = _take(flags, ("--parallel", "-np"))
        ctx_flag, flags = _take(flags, ("--ctx-size", "-c"))
        slots = _as_int(slots_flag) or _as_int(self._setting("llamacpp_slots", 4)) or 4
        slots = max(1, slots)
        ctx = _as_int(ctx_flag)
        if ctx is None:
            ctx = _as_int(config.context_size)
        if ctx is None and isinstance(bundle.config, dict):
            ctx = _as_int(bundle.config.get("context_size"))
        if ctx is not None and ctx <= 0:  # DMR: -1 = unlimited, i.e. the model's own
            ctx = None
        args = ["--parallel", str(slots)]
        has = (lambda f: info.has(f)) if info is not None else (lambda f: True)
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

    # -- the runner -----------------------------------------------------------------------------

    def runner_command(self, bundle, config, socket_path):
        """``llama-server`` on ``socket_path`` for ``bundle``, with DMR's arguments.

        ``--model <first shard> --host <socket> --metrics``, ``--jinja`` (or ``--mmproj``),
        the mode's flags, ``--ctx-size``/``--parallel`` as in :meth:`_plan`, ``--cont-batching``,
        ``--threads`` (physical cores), GPU offload when the build has a GPU backend, then the
        validated runtime flags (they come last, so they override the defaults).
        """
        if config.mode not in self.modes:
            raise EngineError(f"{self.name} cannot run a model in {config.mode!r} mode")
        self.validate_runtime_flags(config.runtime_flags or [])
        files = bundle.gguf_files
        if not files:
            raise EngineError(f"model {bundle.model_id} has no GGUF file", status=400)
        binary = self.binary()
        if binary is None:
            raise EngineError(f"llama-server is not installed: {BUILD_HINT}", status=412)
        info = binary_info(binary)
        plan = self._plan(bundle, config, info)

        argv = [str(binary), "--model", str(files[0]), "--host", str(socket_path), "--metrics"]
        if bundle.mmproj:
            argv += ["--mmproj", str(bundle.mmproj)]
        else:
            argv += ["--jinja"]
        if config.mode == "completion" and bundle.chat_template:
            argv += ["--chat-template-file", str(bundle.chat_template)]
        elif config.mode == "embedding":
            argv += ["--embeddings"]
            if "--pooling" not in plan["rest"] and not self._has_pooling(bundle):
                # A generative model has no pooling type, and llama-server's /v1/embeddings
                # refuses pooling "none": average the token embeddings instead.
                argv += ["--pooling", "mean"]
        elif config.mode == "reranking":
            argv += ["--embeddings", "--reranking"]
        argv += plan["args"]
        if info.has("--cont-batching"):
            argv += ["--cont-batching"]
        threads = _as_int(self._setting("llamacpp_threads", 0)) or 0
        argv += ["--threads", str(threads if threads > 0 else _physical_cores())]
        batch = _as_int(self._setting("llamacpp_batch_size", None))
        if batch:
            argv += ["--batch-size", str(batch)]
        if not _truthy(self._setting("llamacpp_mmap", True)):
            # Newer llama-server replaced --no-mmap with --load-mode.
            argv += ["--load-mode", "none"] if info.has("--load-mode") else ["--no-mmap"]
        layers = _as_int(self._setting("llamacpp_gpu_layers", None))
        if layers is not None:
            argv += ["-ngl", str(layers)]
        elif info.gpu:
            argv += ["-ngl", "999"]
        if info.amx and info.has("--no-repack"):
            # A -march=native build on an AMX CPU: keep weights off the AMX buffer type, whose
            # matmul segfaults on Q4_1 (see build.NO_AMX). Our own builds leave AMX out.
            argv += ["--no-repack"]
        argv += plan["rest"]
        return RunnerCommand(argv=argv, env={}, health_path="/health")

    def _has_pooling(self, bundle):
        try:
            meta = _gguf_metadata(bundle)
        except Exception:  # noqa: BLE001 - an unreadable file fails at load, not here
            return True
        arch = str(meta.get("general.architecture", ""))
        return f"{arch}.pooling_type" in meta

    # -- memory ---------------------------------------------------------------------------------

    def estimate_memory(self, bundle, config):
        """Weights (the GGUF files, mmapped and all touched) + f16 KV cache + compute buffers.

        KV bytes = 2 bytes (f16) * pool tokens * sum over layers of head_count_kv *
        (key_length + value_length), the pool being the ``--ctx-size`` of :meth:`_plan` (the
        model's training context when none is configured). The compute allowance covers
        llama-server's graph buffers, logits and the process itself.
        """
        weights = sum(p.stat().st_size for p in bundle.gguf_files)
        if bundle.mmproj:
            weights += bundle.mmproj.stat().st_size
        try:
            meta = _gguf_metadata(bundle)
        except Exception:  # noqa: BLE001 - an unreadable file fails at load, not here
            meta = {}
        arch = str(meta.get("general.architecture", "llama"))

        def get(key, default=None):
            return meta.get(f"{arch}.{key}", default)

        n_layer = _as_int(get("block_count")) or 0
        n_embd = _as_int(get("embedding_length")) or 0
        n_head = _per_layer(get("attention.head_count", 0), n_layer) if n_layer else []
        n_head_kv_raw = get("attention.head_count_kv")
        n_head_kv = _per_layer(n_head_kv_raw, n_layer) if n_head_kv_raw is not None else n_head
        max_head = max(n_head or [0])
        key_len = _as_int(get("attention.key_length")) or (n_embd // max_head if max_head else 0)
        val_len = _as_int(get("attention.value_length")) or key_len
        n_ctx_train = _as_int(get("context_length")) or 4096
        n_vocab = _as_int(get("vocab_size")) or _as_int(meta.get("tokenizer.vocab_size")) or 32000

        plan = self._plan(bundle, config)
        pool = plan["pool"] or n_ctx_train
        pool = -(-pool // 256) * 256  # llama.cpp pads the context to 256
        kv = pool * sum(h * (key_len + val_len) for h in n_head_kv) * 2  # f16: 2 bytes

        batch = _as_int(self._setting("llamacpp_batch_size", None)) or 2048
        ubatch = min(batch, 512)
        # Graph buffers for one ubatch of activations, logits for each slot, and a fixed allowance
        # for the process (HTTP server, tokenizer, chat templates). Measured with SmolLM2-135M on
        # CPU: RSS - weights - KV is about 30 MiB; this gives about 58 MiB.
        compute = 48 * 2**20 + ubatch * 8 * max(n_embd, 1) * 4 + plan["slots"] * n_vocab * 4
        return int(weights + kv + compute)


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


@hookimpl
def register_engines(register):
    register(LlamaCppEngine())
