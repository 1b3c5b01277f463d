"""What an engine plugin provides, and how the core picks an engine for a model.

An engine never runs inside the API process: it describes a runner process (``runner_command``)
that serves an OpenAI-compatible HTTP API on a Unix socket, and the scheduler starts, watches and
stops that process. That keeps torch, vllm, diffusers and llama.cpp out of the server.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelRunnerError

# what each mode means to a user, for the error a request in a mode an engine lacks gets
MODE_REQUESTS = {"completion": "chat and completions", "embedding": "embeddings (POST /v1/embeddings)",
                 "reranking": "reranking (POST /rerank)",
                 "image-generation": "image generation (POST /v1/images/generations)"}


class EngineError(ModelRunnerError):
    """A request the engine cannot take (400 unless told otherwise)."""

    status = 400


@dataclass
class Bundle:
    """A model unpacked for running: files hardlinked from the store under one directory.

    ``model_id`` is the model's ID (sha256:...), ``tags`` its tags, ``path`` the bundle's folder;
    the files are under ``model_dir`` (``path``/model) by their artifact paths: model.gguf or its
    shards, model.mmproj, template.jinja, or a safetensors repository's own tree.
    ``gguf_files`` lists the GGUF files (sorted: a sharded model's first shard first);
    ``mmproj`` and ``chat_template`` are a path or None. ``config`` is the artifact's config
    (the inner "config" object: format, quantization, architecture, context_size, gguf...);
    ``format`` is its format (without one: "gguf" if there are GGUF files). ``draft`` is the
    draft model's bundle for speculative decoding, else None. Paths are absolute.
    """

    model_id: str
    path: Path
    config: dict
    tags: list = field(default_factory=list)
    # the draft model's bundle when the runner's configuration asks for speculative decoding
    # (DMR's `_configure` block {"speculative": {"draft_model": ...}}); set by the scheduler
    draft: "Bundle | None" = None
    # a private folder of the store's cache area (store/prompt_caches.py) where this runner may
    # keep what outlives it (llama.cpp's saved slots); set by the scheduler for a local runner
    # of an engine that declares ``prompt_cache``, else None
    cache_dir: "Path | None" = None

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


@dataclass(frozen=True)
class ConfigureOption:
    """One engine-specific option of `_configure` (and of ``model configure --FLAG``), as data:
    the CLI and the web UI list an engine's options from GET /engines/options, and put a value
    given for ``flag`` into the request body's ``block`` object under ``key`` (DMR's wire
    format: ``{"llamacpp": {"reasoning-budget": 0}}``). The engine's ``validate_configure``
    stays the judge of the value.

    ``type``: ``int``, ``float``, ``string``, ``object`` (JSON text that must be an object),
    ``bool`` (``--flag``/``--no-flag``, sent as ``values["true"]``/``values["false"]``) or
    ``text-or-file`` (a file's text, read by the client, else the value itself). Two options
    that set one key: the first declared that is given wins.
    """

    flag: str                 # the option without dashes: "reasoning-budget"
    block: str                # the `_configure` body key it goes in: "llamacpp"
    key: str                  # the key in that block: "reasoning-budget"
    type: str = "string"
    help: str = ""
    aliases: tuple = ()       # other spellings of flag: ("hf_overrides",)
    values: dict = field(default_factory=dict)  # bool only: {"true": -1, "false": 0}
    metavar: str = ""

    def to_dict(self):
        return {"flag": self.flag, "block": self.block, "key": self.key, "type": self.type,
                "help": self.help, "aliases": list(self.aliases), "values": dict(self.values),
                "metavar": self.metavar}


@dataclass
class RunnerCommand:
    """The process the scheduler starts for one runner.

    ``argv``: the command line (``argv[0]`` the program). ``env``: variables added to the
    runner's allow-listed environment (``runner_environment``: never the server's whole
    environment), passed as given. ``health_path``: the path that answers 200 once the runner
    can serve. ``start_timeout``: seconds it may take to get there (None: the
    ``runner_start_timeout`` setting).
    """

    argv: list
    env: dict = field(default_factory=dict)
    health_path: str = "/health"
    start_timeout: float | None = None  # seconds to become healthy; None = runner_start_timeout


@dataclass
class RunnerHandle:
    """A started runner, as :meth:`Engine.after_ready` and :meth:`Engine.before_stop` see it:
    where it listens (``address``), what it runs (``bundle``, ``config``, the ``command`` it was
    started with) and its cache folder (``cache_dir``: ``bundle.cache_dir``, None when it has
    none). ``request`` talks to it, with its API key when it has one."""

    address: str
    bundle: Bundle
    config: RunnerConfig
    command: "RunnerCommand | None" = None
    api_key: str | None = None

    @property
    def cache_dir(self):
        return self.bundle.cache_dir

    def request(self, method, path, body=None, timeout=30.0):
        """``(status, JSON answer or None)`` of ``method path`` with a JSON ``body``; raises
        OSError when the runner cannot be reached."""
        import json

        from .runners import runner_connection
        conn = runner_connection(self.address, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers=headers)
            response = conn.getresponse()
            raw = response.read()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, None
        finally:
            conn.close()


class Engine:
    """Base class for engines: the engine declares data, the core applies it.

    Subclasses set the class attributes and implement :meth:`command` (the runner's argv) and,
    where they can, :meth:`installed` and :meth:`estimate_memory`. The scheduler calls
    :meth:`runner_command`, which checks the mode and validates runtime flags against
    ``runtime_flags`` before asking the engine for its command; so an engine never sees a mode
    it did not declare, nor a flag outside its allow-list. Every method runs in the scheduler
    process except :meth:`installed` and :meth:`build_info` (also in API workers, for
    /engines/status and /engines/builds); none may
    import the engine's heavy libraries: the runner process does that.
    """

    name = ""              # DMR backend name: "llama.cpp", "vllm", "diffusers"
    formats = ()           # model formats served: "gguf", "safetensors", "dduf", "diffusers"
    modes = ("completion",)
    install_hint = ""      # what a user runs to make installed() true ("pip install ...")
    runtime_flags = frozenset()   # the flags `_configure` may pass (DMR's allow-list, as data)
    configure_blocks = ()  # engine-specific `_configure` body keys kept in RunnerConfig.extra
    configure_options = ()  # ConfigureOption: what `model configure` offers for those blocks
    defaults = {}          # this engine's settings and their defaults (settings override them)
    # the prefixes of the server's environment variables its runners may read (LLAMA_ passes
    # LLAMA_ARG_*): added to the scheduler's allow-list (scheduler/environment.py)
    env_prefixes = ()
    # the environment variable the runner reads its API key from (and then refuses requests
    # without it); None: the engine cannot check one, so it only runs on a local socket
    api_key_env = None
    # True: a local runner gets a folder of the store's cache area (``bundle.cache_dir``) for
    # state that outlives it, and :meth:`before_stop` / :meth:`after_ready` move it there and back
    prompt_cache = False
    # how many long prompts (``long_prompt_bytes`` or more that the runner has not seen the
    # start of) a runner takes at once; the others wait their turn in the scheduler, in order,
    # so short prompts and returning sessions pass them. None: the runner schedules them itself
    long_prompts_at_once = None
    # seconds :meth:`before_stop` may take before the runner is stopped anyway (a wedged runner
    # still stops), and :meth:`after_ready` before requests go to the runner regardless
    lifecycle_timeout = 60.0

    @property
    def default_mode(self):
        """The mode a request or a configure that names none means: completion where the engine
        serves it, else its first (a whisper model's ``transcription``)."""
        return "completion" if "completion" in self.modes else (self.modes or ("completion",))[0]

    def __init__(self, settings=None):
        self._settings = settings

    @property
    def settings(self):
        """modelrunner's settings (dynaconf), as the register_engines hook was given them."""
        if self._settings is None:
            from .settings import load_settings
            self._settings = load_settings()
        return self._settings

    def setting(self, key):
        """A setting, else this engine's default for it (an empty value counts as unset)."""
        value = self.settings.get(key, None)
        if value is None or value == "":
            return self.defaults.get(key)
        return value

    def _setting(self, key, default=None):
        value = self.setting(key)
        return default if value is None or value == "" else value

    def installed(self):
        """(True, details) when the runtime is there, else (False, what to do)."""
        return True, ""

    def status(self):
        """This engine's line of GET /engines/status (DMR's prefixes: ``Running: ...``,
        ``Error: ...``, ``Not Installed: ...``); by default from :meth:`installed`."""
        ok, detail = self.installed()
        return f"Running: {detail}" if ok else f"Error: {detail}"

    def describe(self):
        """What GET /engines/options says of this engine: its status, formats, modes, install
        hint and configure options (JSON-able), for clients that name no engine."""
        return {"status": self.status(), "formats": list(self.formats),
                "modes": list(self.modes), "install_hint": self.install_hint,
                "options": [o.to_dict() for o in self.configure_options]}

    def build_info(self):
        """Which build of the runtime runs, for ``model status``: a JSON-able dict, by convention
        ``version``, ``gpu`` (the GPU backend: "CUDA", "Vulkan", "Metal" or "none"),
        ``cpu_features`` (list) and ``path``; {} when there is nothing to say. Runs in API
        workers, like :meth:`installed`: cheap, and no heavy imports."""
        return {}

    def command(self, bundle: Bundle, config: RunnerConfig, address: str) -> RunnerCommand:
        """The runner process for ``bundle``, serving OpenAI's API at ``address``.

        ``address`` is a URL: ``unix:///.../runner-N.sock`` (see ``socket_path``), or
        ``http://host:port`` for a runner placed on another machine. ``config.mode`` is one of
        ``modes`` and ``config.runtime_flags`` passed :meth:`validate_runtime_flags`.
        """
        raise NotImplementedError

    def after_ready(self, runner: RunnerHandle) -> None:
        """Called by the scheduler once the runner answers its health check, before any request
        reaches it (at most ``lifecycle_timeout`` seconds): e.g. restore saved prompt caches from
        ``runner.cache_dir``. An exception is logged, never a failed load. Nothing by default."""

    def before_stop(self, runner: RunnerHandle) -> None:
        """Called by the scheduler before it stops a runner that is still alive, on every path
        (idle keep-alive, eviction, unload, reconfiguration, shutdown), with no request in flight
        where the path allows: e.g. save prompt caches into ``runner.cache_dir``. Bounded by
        ``lifecycle_timeout`` (the runner is stopped then whatever this is doing); an exception
        is logged, never a failed unload. Not called for a runner that crashed. Nothing by
        default."""

    def estimate_memory(self, bundle: Bundle, config: RunnerConfig) -> int:
        """Bytes of memory the runner will hold once loaded (weights + caches)."""
        return 0

    def gpus(self, bundle: Bundle, config: RunnerConfig) -> int:
        """GPUs the runner uses, for a placement that hands GPUs out (the Ray plugin asks its
        node for that many and the runner sees only those, through CUDA_VISIBLE_DEVICES).
        0: it runs on CPUs, or takes whatever GPUs its machine shows (the local placement)."""
        return 0

    def choose_context(self, bundle: Bundle, config: RunnerConfig, budget: int):
        """(tokens each request may use, why): the context this runner will start with.

        The scheduler asks before anything else and writes the answer into
        ``config.context_size``, so :meth:`estimate_memory` and :meth:`command` see the same
        context and the memory the scheduler reserves is the memory the runner holds. The
        reason is shown by ``model ps`` and GET /engines/ps. ``budget`` is the scheduler's
        memory budget in bytes (0: none). A context the user configured (``config.context_size``)
        must come back unchanged: shrinking it would silently cut their prompts. This default
        keeps the configured context, else the one the model declares; an engine that knows its
        cache's size per token can fit an unconfigured context to the budget instead.
        """
        if config.context_size is not None:
            return config.context_size, "configured"
        declared = (bundle.config or {}).get("context_size") if isinstance(bundle.config, dict) \
            else None
        if declared:
            return declared, "declared by the model"
        return None, f"the {self.name} engine's default"

    def runner_details(self, bundle: Bundle, config: RunnerConfig) -> dict:
        """{name: text}: what else a user should know about the runner this engine starts for
        ``bundle`` with ``config``, and why (e.g. ``{"chat_template": "built-in gemma: the GGUF
        has none; ..."}``). Asked once per load, after :meth:`choose_context`; shown by ``model
        ps`` and GET /engines/ps (``details``). Cheap, no heavy imports. {} by default."""
        return {}

    def model_details(self, bundle: Bundle, config: RunnerConfig) -> dict:
        """{name: text}: what a user should know about how this engine would run ``bundle``,
        before any runner starts (e.g. ``{"chat_template": "embedded in the GGUF"}``), with
        ``config`` the model's persisted configuration (its completion one when the engine
        serves completion, else its first mode's). Asked by GET /models/{ref} (``details``, a
        sibling of DMR's id, tags, created, config) for the engine that serves the model's
        format, in an API worker: cheap, no heavy imports. {} by default."""
        return {}

    def runner_command(self, bundle: Bundle, config: RunnerConfig, address: str) -> RunnerCommand:
        """What the scheduler calls: the mode and flags checked, then the engine's command."""
        if config.mode not in self.modes:
            serves = ", ".join(MODE_REQUESTS.get(m, m) for m in self.modes)
            raise EngineError(f"the {self.name} engine serves {serves}, not "
                              f"{MODE_REQUESTS.get(config.mode, config.mode)}")
        self.validate_runtime_flags(config.runtime_flags or [])
        self.validate_configure(config.extra or {})
        return self.command(bundle, config, address)

    def validate_configure(self, blocks):
        """Raise EngineError(400) for a bad engine-specific `_configure` block.

        ``blocks`` maps each of ``configure_blocks`` that a request gave to its value (e.g.
        ``{"llamacpp": {"reasoning-budget": 0}}``). Called when `_configure` is asked, so a bad
        value is the caller's 400 rather than a runner that fails to load later, and again before
        a runner starts. The base accepts anything.
        """

    def validate_runtime_flags(self, flags):
        """Raise EngineError(400) unless every flag is in ``runtime_flags`` and nothing is a path.

        DMR's rules: no value contains '/' or '\\', no ``--flag=-x`` injection, only allow-listed
        flag names. Negative numbers (``--seed -1``) and JSON values are values, not flags.
        """
        for flag in flags:
            if not isinstance(flag, str):
                raise EngineError(f"runtime flag {flag!r} is not a string")
            if "/" in flag or "\\" in flag:
                raise EngineError(f"runtime flag {flag!r} may not contain a path")
            if flag.startswith("-") and not _NUMBER.match(flag):
                name = flag.split("=", 1)[0]
                if name not in self.runtime_flags:
                    if not self.runtime_flags:
                        raise EngineError(f"the {self.name} engine takes no runtime flags")
                    raise EngineError(f"runtime flag {name!r} is not allowed for {self.name}")
                if "=" in flag:
                    value = flag.split("=", 1)[1]
                    if value.startswith("-") and not _NUMBER.match(value):
                        raise EngineError(f"runtime flag {flag!r} looks like flag injection")


_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def select_engine(engines, model_format, requested=None, default=None, format_engines=None):
    """Pick the engine for a model, as DMR does: the format decides, the path's name is a hint.

    ``engines`` maps name -> Engine. ``format_engines`` (the setting of that name) maps a
    format to its engine: the one that serves it when a request names none and several
    installed engines could, and the one a 412 says to install when none is. Unnamed there, a
    format goes to ``default`` if that engine serves it, else to the first engine that does.
    Raises EngineError 400 when the requested engine cannot serve the format, 412 when no
    installed plugin serves it.
    """
    fmt = model_format or "gguf"
    if requested:
        engine = engines.get(requested)
        if engine is None:
            raise EngineError(f"engine {requested!r} is not installed: {install_hint(requested)}",
                              status=412)
        if fmt not in engine.formats:
            raise EngineError(f"engine {requested!r} cannot serve {fmt} models", status=400)
        return engine
    candidates = [e for e in engines.values() if fmt in e.formats]
    usual = (format_engines or {}).get(fmt)
    if not candidates:
        raise EngineError(f"no installed engine serves {fmt} models"
                          + (f": {install_hint(usual)}" if usual else ""), status=412)
    for name in (usual, default):
        for engine in candidates:
            if name and engine.name == name:
                return engine
    return candidates[0]


def install_hint(engine_name):
    """What installs an engine that is not there: engine plugins are named
    ``modelrunner-<name without dots or dashes>`` (as llm's are ``llm-<name>``)."""
    return "pip install modelrunner-" + engine_name.replace(".", "").replace("-", "")
