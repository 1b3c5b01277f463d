"""What an engine plugin provides, and how the core picks an engine for a model.

An engine never runs inside the API process: it describes a runner process (``runner_command``)
that serves an OpenAI-compatible HTTP API on a Unix socket, and the scheduler starts, watches and
stops that process. That keeps torch, vllm, diffusers and llama.cpp out of the server.
"""

from dataclasses import dataclass, field
from pathlib import Path

MODES = ("completion", "embedding", "reranking", "image-generation")


class EngineError(Exception):
    """A request the engine cannot take; ``status`` is the HTTP status to answer with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@dataclass
class Bundle:
    """A model unpacked for running: files hardlinked from the store under one directory.

    ``config`` is the artifact's config (the inner "config" object: format, quantization,
    architecture, context_size, gguf...). Paths are absolute.
    """

    model_id: str
    path: Path
    config: dict
    tags: list = field(default_factory=list)

    @property
    def format(self):
        return self.config.get("format") or ("gguf" if self.gguf_files else "")

    @property
    def gguf_files(self):
        """Weight files, sorted, so a sharded model's first shard comes first."""
        return sorted(p for p in (self.path / "model").glob("*.gguf"))

    @property
    def mmproj(self):
        found = sorted((self.path / "model").glob("*.mmproj"))
        return found[0] if found else None

    @property
    def chat_template(self):
        found = sorted((self.path / "model").glob("*.jinja"))
        return found[0] if found else None

    @property
    def model_dir(self):
        return self.path / "model"


@dataclass
class RunnerConfig:
    """How a runner is started; persisted by `_configure` and applied on every path."""

    mode: str = "completion"
    context_size: int | None = None
    runtime_flags: list = field(default_factory=list)
    keep_alive: str | None = None
    extra: dict = field(default_factory=dict)  # engine-specific, e.g. {"vllm": {...}}

    def to_dict(self):
        return {"mode": self.mode, "context_size": self.context_size,
                "runtime_flags": list(self.runtime_flags), "keep_alive": self.keep_alive,
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data):
        data = dict(data or {})
        return cls(mode=data.get("mode") or "completion", context_size=data.get("context_size"),
                   runtime_flags=list(data.get("runtime_flags") or []),
                   keep_alive=data.get("keep_alive"), extra=dict(data.get("extra") or {}))


@dataclass
class RunnerCommand:
    """The process the scheduler starts: argv, extra environment, and readiness probe path."""

    argv: list
    env: dict = field(default_factory=dict)
    health_path: str = "/health"
    start_timeout: float | None = None  # seconds to become healthy; None = runner_start_timeout


class Engine:
    """Base class for engines. Subclasses set the class attributes and implement the methods."""

    name = ""            # DMR backend name: "llama.cpp", "vllm", "diffusers"
    distribution = ""    # the pip distribution that provides it, named in 412 errors
    formats = ()         # model formats served: "gguf", "safetensors", "dduf", "diffusers"
    modes = ("completion",)
    runtime_flag_allowlist = frozenset()  # flags `_configure` may pass; values never contain paths

    def __init__(self, settings=None):
        self._settings = settings

    @property
    def settings(self):
        """modelrunner's settings (dynaconf), loaded on first use."""
        if self._settings is None:
            from .settings import load_settings
            self._settings = load_settings()
        return self._settings

    def _setting(self, key, default=None):
        """A setting, with ``default`` also for an empty value."""
        value = self.settings.get(key, default)
        return default if value is None or value == "" else value

    def installed(self):
        """(True, details) when the runtime is there, else (False, what to do)."""
        return True, ""

    def runner_command(self, bundle: Bundle, config: RunnerConfig, socket_path: str) -> RunnerCommand:
        raise NotImplementedError

    def estimate_memory(self, bundle: Bundle, config: RunnerConfig) -> int:
        """Bytes of memory the runner will hold once loaded (weights + caches)."""
        return 0

    def validate_runtime_flags(self, flags):
        """Raise EngineError(400) unless every flag is allow-listed and no value is a path.

        DMR's rules: no value contains '/' or '\\', no '=-x' injection, only allow-listed flags.
        """
        for flag in flags:
            if not isinstance(flag, str):
                raise EngineError(f"runtime flag {flag!r} is not a string")
            if "/" in flag or "\\" in flag:
                raise EngineError(f"runtime flag {flag!r} may not contain a path")
            if flag.startswith("-"):
                name = flag.split("=", 1)[0]
                if name not in self.runtime_flag_allowlist:
                    raise EngineError(f"runtime flag {name!r} is not allowed for {self.name}")
                if "=" in flag and flag.split("=", 1)[1].startswith("-"):
                    raise EngineError(f"runtime flag {flag!r} looks like flag injection")


def select_engine(engines, model_format, requested=None, default="llama.cpp"):
    """Pick the engine for a model, as DMR does: the format decides, the path's name is a hint.

    ``engines`` maps name -> Engine. Raises EngineError 400 when the requested engine cannot serve
    the format, 412 when no installed plugin serves it.
    """
    fmt = model_format or "gguf"
    if requested:
        engine = engines.get(requested)
        if engine is None:
            raise EngineError(f"engine {requested!r} is not installed: pip install "
                              f"{_distribution_hint(requested)}", status=412)
        if fmt not in engine.formats:
            raise EngineError(f"engine {requested!r} cannot serve {fmt} models", status=400)
        return engine
    candidates = [e for e in engines.values() if fmt in e.formats]
    if not candidates:
        hint = {"gguf": "llama.cpp", "safetensors": "vllm", "dduf": "diffusers",
                "diffusers": "diffusers"}.get(fmt, default)
        raise EngineError(f"no installed engine serves {fmt} models: pip install "
                          f"{_distribution_hint(hint)}", status=412)
    for engine in candidates:
        if engine.name == default:
            return engine
    return candidates[0]


def _distribution_hint(engine_name):
    return "modelrunner-" + engine_name.replace(".", "").replace("-", "")
