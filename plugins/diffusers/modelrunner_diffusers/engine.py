"""modelrunner's diffusers engine: text-to-image with Hugging Face diffusers.

Each loaded model is one ``python -m modelrunner_diffusers.runner`` process on a Unix socket,
started by the scheduler from :meth:`DiffusersEngine.command`. It serves DMR's (and
OpenAI's) ``POST /v1/images/generations`` and ``GET /health``. torch and diffusers are imported
only there, never in the API or scheduler processes.

Models: a diffusers pipeline directory (``model_index.json`` + component folders, packaged with
``model package --safetensors-dir``, config format ``"diffusers"``) or a single DDUF file
(``model package --dduf``, format ``"dduf"``).

Settings read (dynaconf, ``MODELRUNNER_<KEY>`` in the environment):

``diffusers_device``   "auto" (cuda when torch sees a GPU, else cpu), "cpu", "cuda", "cuda:N", "mps"
``diffusers_dtype``    "auto" (float16 on cuda, float32 elsewhere), "float16", "bfloat16", "float32"
``diffusers_steps``    default ``num_inference_steps`` when a request gives none (50)
``diffusers_max_scale``  largest image side as a multiple of the model's default size (2)
``diffusers_threads``  torch CPU threads; 0 = torch's default (one per core)

Runners get ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: spinning OpenMP threads
make CPU inference on a busy machine many times slower.
"""

import importlib.metadata
import importlib.util
import os
import sys
import zipfile
from pathlib import Path

from modelrunner import Engine, EngineError, ModelRunnerError, RunnerCommand, model_files

from .args import build_argv

INSTALL_HINT = "pip install modelrunner-diffusers (with torch==2.13.0 first on a CPU machine)"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"auto": "auto", "fp16": "float16", "float16": "float16", "half": "float16",
          "bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
          "float": "float32"}
#: bytes per element of safetensors dtypes (for the memory estimate)
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
               "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
TARGET_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
#: torch's own memory, the HTTP server, schedulers, tokenizers: measured ~450 MiB RSS on CPU
PROCESS_ALLOWANCE = 512 * 2**20
#: activations (latents, attention, VAE decode) as a share of the weights
ACTIVATION_SHARE = 0.25


def _gpu_visible():
    """Whether an NVIDIA GPU is visible, without importing torch (for "auto" estimates only)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


class DiffusersEngine(Engine):
    name = "diffusers"
    install_hint = INSTALL_HINT
    api_key_env = "MODELRUNNER_DIFFUSERS_API_KEY"  # checked by runner.py
    formats = ("diffusers", "dduf")
    modes = ("image-generation",)
    env_prefixes = ("DIFFUSERS_",)
    defaults = {
        "diffusers_device": "auto",  # auto (cuda when torch sees a GPU), cpu, cuda, cuda:N, mps
        "diffusers_dtype": "auto",   # auto (float16 on cuda, float32 elsewhere) or a dtype
        "diffusers_steps": 50,       # num_inference_steps when a request gives none
        "diffusers_max_scale": 2,    # largest side as a multiple of the model's default size
        "diffusers_threads": 0,      # torch CPU threads; 0 = torch's default
    }

    # -- installation ---------------------------------------------------------------------------

    def installed(self):
        """Whether torch, diffusers and transformers can be found (found, never imported here)."""
        missing = [m for m in ("torch", "diffusers", "transformers")
                   if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"{', '.join(missing)} not installed; {INSTALL_HINT}"
        versions = []
        for dist in ("diffusers", "torch"):
            try:
                versions.append(f"{dist} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                versions.append(dist)
        return True, ", ".join(versions)

    # -- settings -------------------------------------------------------------------------------

    def gpus(self, bundle, config):
        """One GPU unless it runs on the CPU ("auto" counts one where this machine shows an
        NVIDIA GPU): a placement that hands GPUs out must not leave it all of a node's."""
        device = self.device()
        if device == "cpu" or device == "mps":
            return 0
        return 1 if device.startswith("cuda") or _gpu_visible() else 0

    def device(self):
        device = str(self.setting("diffusers_device")).strip().lower()
        if device.split(":")[0] not in DEVICES:
            raise EngineError(f"diffusers_device {device!r} is not one of {', '.join(DEVICES)}",
                              status=500)
        return device

    def dtype(self):
        dtype = str(self.setting("diffusers_dtype")).strip().lower()
        if dtype not in DTYPES:
            raise EngineError(f"diffusers_dtype {dtype!r} is not one of "
                              f"auto, float16, bfloat16, float32", status=500)
        return DTYPES[dtype]

    def steps(self):
        try:
            steps = int(self.setting("diffusers_steps"))
        except (TypeError, ValueError):
            steps = 50
        return max(1, steps)

    def max_scale(self):
        try:
            return max(1.0, float(self.setting("diffusers_max_scale")))
        except (TypeError, ValueError):
            return 2.0

    def threads(self):
        try:
            return max(0, int(self.setting("diffusers_threads")))
        except (TypeError, ValueError):
            return 0

    def resolved_dtype(self):
        """The dtype the runner will load weights in, as the runner resolves "auto"."""
        dtype = self.dtype()
        if dtype != "auto":
            return dtype
        device = self.device()
        on_gpu = device.startswith("cuda") or (device == "auto" and _gpu_visible())
        return "float16" if on_gpu else "float32"

    # -- the model ------------------------------------------------------------------------------

    def model_path(self, bundle):
        """What the runner loads: the pipeline directory, or the .dduf file."""
        root = bundle.model_dir
        if bundle.format == "dduf":
            found = sorted(root.rglob("*.dduf"))
            if not found:
                raise EngineError(f"model {bundle.model_id} has no .dduf file", status=500)
            return found[0]
        if (root / "model_index.json").is_file():
            return root
        found = sorted(p.parent for p in root.rglob("model_index.json"))
        if not found:
            raise EngineError(f"model {bundle.model_id} is not a diffusers pipeline "
                              f"(no model_index.json)", status=500)
        return found[0]

    def command(self, bundle, config, address):
        argv = build_argv(sys.executable, self.model_path(bundle), address,
                          device=self.device(), dtype=self.dtype(), steps=self.steps(),
                          max_scale=self.max_scale(), threads=self.threads())
        # Never reach a hub from a runner: everything it needs is in the bundle.
        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "PYTHONUNBUFFERED": "1"}
        if "OMP_WAIT_POLICY" not in os.environ:
            # OpenMP threads that spin while waiting make torch on a busy CPU 10-100x slower
            # (measured: a 2-step 64x64 image 13 s instead of 0.2 s with other processes running).
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        return RunnerCommand(argv=argv, env=env, health_path="/health")

    # -- memory ---------------------------------------------------------------------------------

    def estimate_memory(self, bundle, config):
        """Weights in the load dtype + activations (a share of the weights) + the process.

        Weights are counted from the safetensors headers (elements x bytes of the dtype they are
        loaded in: float32 doubles float16 files, float16 halves float32 ones; integer and
        quantised tensors keep their size). Files whose headers cannot be read count their size.
        """
        target = TARGET_BYTES.get(self.resolved_dtype(), 4)
        try:
            path = self.model_path(bundle)
        except EngineError:
            return PROCESS_ALLOWANCE
        weights = 0
        if path.is_file():
            weights = _dduf_weight_bytes(path, target)
        else:
            for f in sorted(path.rglob("*.safetensors")):
                weights += _safetensors_weight_bytes(f, target)
            for f in sorted(path.rglob("*.bin")):
                weights += f.stat().st_size
        return int(weights * (1 + ACTIVATION_SHARE) + PROCESS_ALLOWANCE)


def _header_bytes(header, target):
    """Bytes the tensors of one safetensors header take once loaded in ``target`` bytes/element."""
    total = 0
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        count = 1
        for dim in info.get("shape") or []:
            count *= int(dim)
        dtype = str(info.get("dtype", "F32")).upper()
        size = DTYPE_BYTES.get(dtype, 4)
        total += count * (target if dtype in ("F32", "F16", "BF16", "F64") else size)
    return total


def _safetensors_weight_bytes(path, target):
    try:
        return _header_bytes(model_files.read_safetensors_header(path), target)
    except ModelRunnerError:
        return Path(path).stat().st_size


def _dduf_weight_bytes(path, target):
    """A DDUF is a zip of uncompressed files: read each safetensors header inside it."""
    try:
        total = 0
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".safetensors"):
                    with zf.open(info) as f:
                        try:
                            total += _header_bytes(model_files.read_safetensors_header(f), target)
                        except ModelRunnerError:
                            total += info.file_size
        return total
    except (OSError, zipfile.BadZipFile):
        return Path(path).stat().st_size

