"""The apps `model launch` knows, as data: the program, how to install it, what prompt size it
needs, and how to point it at this server with its own variables, command-line options or
inline config. `model launch` (:mod:`.launch_app`) does the rest the same way for every app.

The apps and what each one reads follow the two launchers people already use: Docker Model
Runner's `docker model launch` (docker/model-runner cmd/cli/commands/launch.go: claude, codex,
opencode, openwebui...) and Ollama's `ollama launch` (ollama/ollama cmd/launch/*.go: claude,
codex, opencode, copilot...). Where they write the user's own files (~/.codex/config.toml,
~/.config/opencode/opencode.json), this table uses what the app reads without a file:
Codex's ``-c key=value`` overrides, opencode's ``OPENCODE_CONFIG_CONTENT``. No app here needs a
file written, so `model launch` never touches a user's config.

A :class:`Target` is what an app is pointed at; ``App.setup(target)`` returns a :class:`Setup`
(variables, arguments, notes), pure and tested without starting anything. The API key: the
server's MODEL_RUNNER_API_KEY when set, passed by reference where the app can read another
variable (Codex's ``env_key``, opencode's ``{env:...}``) and as the app's own key variable where
it cannot; else :data:`PLACEHOLDER_KEY`, which a server without keys accepts, since several apps
refuse to start without some key.
"""

import json
from dataclasses import dataclass, field

# Sent where an app insists on a key and the server has none (keys off: any key passes).
PLACEHOLDER_KEY = "modelrunner"
KEY_VARIABLE = "MODEL_RUNNER_API_KEY"
CLAUDE_MIN_COMPACT_WINDOW = 100_000


@dataclass(frozen=True)
class Target:
    """What the app is pointed at: the server's base URL (no path), the model (None: the app's
    own choice), the API key (None: the server has none), the model's context in tokens (None:
    unknown)."""

    base_url: str
    model: str | None = None
    key: str | None = None
    context: int | None = None

    @property
    def app_key(self):
        return self.key or PLACEHOLDER_KEY


@dataclass
class Setup:
    """What launching an app changes: variables set (``""`` sets one empty, so a value from the
    user's shell does not leak in), arguments put before the user's APP ARGS, default arguments
    used when the user gives none, variables holding secrets (masked by --config), notes."""

    env: dict = field(default_factory=dict)
    args: list = field(default_factory=list)
    default_args: list = field(default_factory=list)
    secret: set = field(default_factory=set)
    notes: list = field(default_factory=list)


@dataclass(frozen=True)
class App:
    """One app: ``name`` (what `model launch` takes), ``title``, ``program`` (found on PATH),
    ``install`` (the command that installs it), ``dialect`` (the API it speaks to the server),
    ``context`` (tokens its prompt needs, None: no large prompt) and ``context_why`` (where the
    figure comes from), ``configure`` (Target -> Setup)."""

    name: str
    title: str
    program: str
    install: str
    dialect: str
    configure: object
    context: int | None = None
    context_why: str = ""

    def setup(self, target):
        return self.configure(target)


def _key_env(setup, target, *names):
    """Put the key in the app's own variables ``names`` (masked by --config)."""
    for name in names:
        setup.env[name] = target.app_key
        setup.secret.add(name)


def claude(target):
    """Claude Code: the Anthropic dialect at <server>/anthropic. Every model tier (the main
    model, the small/fast one for titles and summaries, subagents) is the one model, or Claude
    Code asks for claude-* names the server does not have. The key goes as a bearer token
    (ANTHROPIC_AUTH_TOKEN); ANTHROPIC_API_KEY is set empty so that a real Anthropic key in the
    shell is neither sent to this server nor makes Claude Code ask which key to use."""
    s = Setup(env={"ANTHROPIC_BASE_URL": target.base_url + "/anthropic", "ANTHROPIC_API_KEY": ""})
    _key_env(s, target, "ANTHROPIC_AUTH_TOKEN")
    if target.model:
        for name in ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL",
                     "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                     "ANTHROPIC_DEFAULT_HAIKU_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL"):
            s.env[name] = target.model
    if target.context and target.context >= CLAUDE_MIN_COMPACT_WINDOW:
        # compacts the conversation before it outgrows the model's context; Claude Code 2.1
        # reads a smaller window as its minimum, 100k, and says so on every start
        s.env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = str(target.context)
    s.env.update({"DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"})
    return s


def _toml_string(value):
    return json.dumps(value)  # a TOML basic string is a JSON string for what we write


def codex(target):
    """Codex CLI: a model provider named ``modelrunner`` given by ``-c`` overrides (they win over
    ~/.codex/config.toml and leave it alone, so the user's login and history stay), speaking the
    Responses API (``wire_api = "responses"``, the only one Codex has) at <server>/v1. The key
    is read from MODEL_RUNNER_API_KEY by name (``env_key``); without one Codex sends none."""
    base = "model_providers.modelrunner"
    pairs = [("model_provider", "modelrunner"), (f"{base}.name", "modelrunner"),
             (f"{base}.base_url", target.base_url + "/v1"), (f"{base}.wire_api", "responses")]
    if target.key:
        pairs.append((f"{base}.env_key", KEY_VARIABLE))
    args = []
    for key, value in pairs:
        args += ["-c", f"{key}={_toml_string(value)}"]
    if target.context:
        args += ["-c", f"model_context_window={target.context}"]
    if target.model:
        args += ["-m", target.model]
    return Setup(args=args)


def opencode_config(target):
    """The inline config opencode reads from OPENCODE_CONFIG_CONTENT (merged over the user's own
    opencode.json): an OpenAI-compatible provider ``modelrunner`` at <server>/v1, with the model
    as both ``model`` and ``small_model`` (titles), and its context when known."""
    provider = {"npm": "@ai-sdk/openai-compatible", "name": "modelrunner",
                "options": {"baseURL": target.base_url + "/v1",
                            "apiKey": (f"{{env:{KEY_VARIABLE}}}" if target.key
                                       else PLACEHOLDER_KEY)}}
    config = {"$schema": "https://opencode.ai/config.json", "provider": {"modelrunner": provider}}
    if target.model:
        entry = {"name": target.model}
        if target.context:
            entry["limit"] = {"context": target.context,
                              "output": min(target.context // 4, 8192)}
        provider["models"] = {target.model: entry}
        config["model"] = config["small_model"] = f"modelrunner/{target.model}"
    return config


def opencode(target):
    """opencode: its inline config variable, so no file is written."""
    return Setup(env={"OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(target))})


def aider(target):
    """aider: an OpenAI-compatible endpoint through litellm's variables; ``openai/<model>``
    tells litellm to send the name as is to that endpoint."""
    s = Setup(env={"OPENAI_API_BASE": target.base_url + "/v1"})
    _key_env(s, target, "OPENAI_API_KEY")
    if target.model:
        s.args = ["--model", f"openai/{target.model}"]
    return s


def openwebui(target):
    """Open WebUI (`open-webui serve`): the server as its OpenAI connection; its Ollama
    connection off, or it would look for an Ollama at localhost:11434; no login, as DMR's
    launcher sets it, for a UI on this machine: so it listens on this machine only (its own
    default is every interface, which would give anyone on the network a UI with no login and
    the server's key behind it)."""
    s = Setup(env={"OPENAI_API_BASE_URL": target.base_url + "/v1", "ENABLE_OLLAMA_API": "False",
                   "WEBUI_AUTH": "False"}, default_args=["serve", "--host", "127.0.0.1"])
    _key_env(s, target, "OPENAI_API_KEY")
    if target.model:
        s.env["DEFAULT_MODELS"] = target.model
    s.notes.append("Open WebUI keeps connections saved in its admin settings over these "
                   "variables after its first start (ENABLE_PERSISTENT_CONFIG=False makes the "
                   "variables win)")
    return s


def copilot(target):
    """GitHub Copilot CLI: its bring-your-own-provider variables, the Responses API at
    <server>/v1 (as Ollama's launcher sets them)."""
    s = Setup(env={"COPILOT_PROVIDER_BASE_URL": target.base_url + "/v1",
                   "COPILOT_PROVIDER_WIRE_API": "responses"})
    _key_env(s, target, "COPILOT_PROVIDER_API_KEY")
    if target.model:
        s.env["COPILOT_MODEL"] = target.model
    return s


# The contexts: each agent's first requests captured (`model launch APP` against a server that
# records them) and counted with SmolLM2's tokenizer, JSON as sent; what an agent needs is that
# plus room for its answer and the turns after.
APPS = {app.name: app for app in (
    App("claude", "Claude Code", "claude", "npm install -g @anthropic-ai/claude-code",
        "anthropic", claude, context=32768,
        context_why="Claude Code 2.1's requests are 12k to 23k tokens: its system prompt and "
                    "12 to 22 tools"),
    App("codex", "Codex CLI", "codex", "npm install -g @openai/codex", "openai-responses",
        codex, context=16384,
        context_why="Codex 0.171's first request is about 10k tokens: its instructions and 9 "
                    "tools"),
    App("opencode", "opencode", "opencode", "npm install -g opencode-ai", "openai-chat",
        opencode, context=16384,
        context_why="opencode 1.18's first request is about 7.5k tokens: its system prompt and "
                    "10 tools"),
    App("aider", "aider", "aider", "python -m pip install aider-chat", "openai-chat", aider,
        context=8192, context_why="aider's docs ask an 8k context of local models"),
    App("openwebui", "Open WebUI", "open-webui", "python -m pip install open-webui",
        "openai-chat", openwebui),
    App("copilot", "GitHub Copilot CLI", "copilot", "npm install -g @github/copilot",
        "openai-responses", copilot),
)}
