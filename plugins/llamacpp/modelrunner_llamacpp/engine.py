"""The llama.cpp engine: GGUF models served by llama.cpp's own ``llama-server``.

Each loaded model is one ``llama-server`` process at the address the scheduler gives (a Unix
socket today), its argv built by :mod:`modelrunner_llamacpp.args`. The binary comes from
:mod:`modelrunner_llamacpp.build` (``modelrunner-llamacpp-build``); this module asks it what it
supports (``--help``, ``--list-devices``) once per binary.
"""

import re
import subprocess
import threading
from pathlib import Path

import modelrunner
from modelrunner import Engine, EngineError, RunnerCommand

from .args import RUNTIME_FLAGS, _as_int, _per_layer, build_argv, plan
from .build import find_llama_server

BUILD_HINT = "run: modelrunner-llamacpp-build"


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
    """The model's GGUF key/values: the artifact config's ``gguf`` map, else read from the file."""
    meta = bundle.config.get("gguf") if isinstance(bundle.config, dict) else None
    if meta and meta.get("general.architecture"):
        return dict(meta)
    files = bundle.gguf_files
    # read here, not at import: API workers load this module and never import gguf
    return modelrunner.read_gguf(files[0])["gguf"] if files else {}


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    api_key_env = "LLAMA_API_KEY"  # llama-server --api-key, from the environment (not argv)
    formats = ("gguf",)
    modes = ("completion", "embedding", "reranking")
    install_hint = BUILD_HINT
    runtime_flags = RUNTIME_FLAGS
    configure_blocks = ("llamacpp", "speculative")
    defaults = {
        "llama_server_path": None,   # the binary (also LLAMA_SERVER_PATH); default: the cache
        "llamacpp_slots": 4,         # parallel request slots per runner (--parallel)
        "llamacpp_threads": 0,       # --threads; 0 = the number of physical cores
        "llamacpp_batch_size": None,  # --batch-size; unset = llama-server's default
        "llamacpp_mmap": True,       # false adds --load-mode none (--no-mmap on older builds)
        "llamacpp_gpu_layers": None,  # -ngl; unset = 999 when the build has a GPU backend
    }

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

    def command(self, bundle, config, address):
        if not bundle.gguf_files:
            raise EngineError(f"model {bundle.model_id} has no GGUF file", status=400)
        binary = self.binary()
        if binary is None:
            raise EngineError(f"llama-server is not installed: {BUILD_HINT}", status=412)
        info = binary_info(binary)
        argv = build_argv(
            binary, bundle, config, address, has=info.has, gpu=info.gpu, amx=info.amx,
            has_pooling=config.mode != "embedding" or self._has_pooling(bundle),
            slots=self.setting("llamacpp_slots"), threads=self.setting("llamacpp_threads"),
            batch_size=self.setting("llamacpp_batch_size"), mmap=self.setting("llamacpp_mmap"),
            gpu_layers=self.setting("llamacpp_gpu_layers"))
        return RunnerCommand(argv=argv, env={}, health_path="/health")

    def _has_pooling(self, bundle):
        try:
            meta = _gguf_metadata(bundle)
        except Exception:  # noqa: BLE001 - an unreadable file fails at load, not here
            return True
        arch = str(meta.get("general.architecture", ""))
        return f"{arch}.pooling_type" in meta

    def estimate_memory(self, bundle, config):
        """Weights (the GGUF files, mmapped and all touched) + f16 KV cache + compute buffers.

        KV bytes = 2 bytes (f16) * pool tokens * sum over layers of head_count_kv *
        (key_length + value_length), the pool being the ``--ctx-size`` of :func:`args.plan` (the
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

        the_plan = plan(bundle, config, self.setting("llamacpp_slots"))
        pool = the_plan["pool"] or n_ctx_train
        pool = -(-pool // 256) * 256  # llama.cpp pads the context to 256
        kv = pool * sum(h * (key_len + val_len) for h in n_head_kv) * 2  # f16: 2 bytes

        batch = _as_int(self.setting("llamacpp_batch_size")) or 2048
        ubatch = min(batch, 512)
        # Graph buffers for one ubatch of activations, logits for each slot, and a fixed allowance
        # for the process (HTTP server, tokenizer, chat templates). Measured with SmolLM2-135M on
        # CPU: RSS - weights - KV is about 30 MiB; this gives about 58 MiB.
        compute = 48 * 2**20 + ubatch * 8 * max(n_embd, 1) * 4 + the_plan["slots"] * n_vocab * 4
        return int(weights + kv + compute)
