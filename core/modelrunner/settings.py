"""Settings: conf/settings.toml, then MODELRUNNER_* environment variables, then DMR's own names.

DMR's variables are honoured so existing setups work unchanged: MODELS_PATH, MODEL_RUNNER_HOST
(a URL for the CLI, or a host for the server) and MODEL_RUNNER_PORT; for the trust boundary
(trust.py) DMR_ORIGINS and OLLAMA_ORIGINS add allowed origins, MODEL_RUNNER_API_KEY adds an
admin key (the CLI sends the same variable), MODEL_RUNNER_TLS_CERT / MODEL_RUNNER_TLS_KEY name
the certificate and key to serve https with.
"""

import os
from pathlib import Path
from urllib.parse import urlparse

# conf/settings.toml, reached through a symlink so it also ships inside the wheel.
DEFAULT_FILE = Path(__file__).with_name("settings.toml")


def load_settings(**overrides):
    """Every setting, for the server (dynaconf: imported here, as the CLI never needs it)."""
    from dynaconf import Dynaconf

    files = [str(DEFAULT_FILE)]
    extra = os.environ.get("MODELRUNNER_SETTINGS_FILE")
    if extra:
        files.append(extra)
    settings = Dynaconf(
        envvar_prefix="MODELRUNNER",
        settings_files=files,
        merge_enabled=True,
    )
    if os.environ.get("MODELS_PATH") and not os.environ.get("MODELRUNNER_MODELS_PATH"):
        settings.set("models_path", os.environ["MODELS_PATH"])
    if os.environ.get("MODEL_RUNNER_PORT") and not os.environ.get("MODELRUNNER_PORT"):
        settings.set("port", int(os.environ["MODEL_RUNNER_PORT"]))
    host = os.environ.get("MODEL_RUNNER_HOST")
    if host and not os.environ.get("MODELRUNNER_HOST"):
        parsed = urlparse(host if "://" in host else f"http://{host}")
        settings.set("host", parsed.hostname or settings.host)
        if parsed.port:
            settings.set("port", parsed.port)
    _trust_names(settings)
    for key, value in overrides.items():
        settings.set(key, value)
    settings.set("models_path", str(Path(os.path.expanduser(str(settings.models_path))).resolve()))
    return settings


def _trust_names(settings):
    """DMR's and Ollama's names for origins, keys and TLS, added to (or, for TLS, under) ours."""
    origins = [o.strip() for name in ("DMR_ORIGINS", "OLLAMA_ORIGINS")
               for o in os.environ.get(name, "").split(",") if o.strip()]
    if origins:
        settings.set("origins", _as_list(settings.get("origins")) + origins)
    key = os.environ.get("MODEL_RUNNER_API_KEY", "").strip()
    if key:
        settings.set("admin_api_keys", _as_list(settings.get("admin_api_keys")) + [key])
    for ours, dmr in (("tls_cert", "MODEL_RUNNER_TLS_CERT"), ("tls_key", "MODEL_RUNNER_TLS_KEY")):
        if os.environ.get(dmr) and not os.environ.get(f"MODELRUNNER_{ours.upper()}"):
            settings.set(ours, os.environ[dmr])


def truthy(value):
    """A setting's yes or no: a TOML boolean, or a string from the environment ("0", "false",
    "no", "off" and "" are no)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


def _as_list(value):
    if not value:
        return []
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)


def server_url():
    """The base URL the CLI talks to: MODEL_RUNNER_HOST, else the configured host and port.

    Read without dynaconf (0.3 s of imports, flask among them) for the CLI's sake: the same
    sources in the same order as load_settings(), for the two keys it needs. Anything this
    reader does not model (a non-TOML settings file, a *.local.* file, dynaconf's @-tokens)
    goes to load_settings(), so the answer never differs.
    """
    host = os.environ.get("MODEL_RUNNER_HOST")
    if host:
        return host.rstrip("/") if "://" in host else f"http://{host}".rstrip("/")
    try:
        host, port = _host_port()
    except _Unmodelled:
        settings = load_settings()
        host, port = settings.host, settings.port
    return f"http://{host}:{port}"


class _Unmodelled(Exception):
    """A setting source server_url()'s light reader leaves to dynaconf."""


def _host_port():
    import tomllib

    files = [DEFAULT_FILE]
    extra = os.environ.get("MODELRUNNER_SETTINGS_FILE")
    if extra:
        files.append(Path(extra))
    values = {}
    for path in files:
        local = path.with_name(f"{path.stem}.local{path.suffix}")
        if path.suffix != ".toml" or local.exists():
            raise _Unmodelled(path)
        if path.exists():
            with open(path, "rb") as f:
                data = {k.lower(): v for k, v in tomllib.load(f).items()}
            values.update({k: data[k] for k in ("host", "port") if k in data})
    for key in ("host", "port"):
        raw = os.environ.get(f"MODELRUNNER_{key.upper()}")
        if raw is not None:
            values[key] = _env_value(raw)
    if os.environ.get("MODEL_RUNNER_PORT") and not os.environ.get("MODELRUNNER_PORT"):
        values["port"] = int(os.environ["MODEL_RUNNER_PORT"])
    return values["host"], values["port"]


def _env_value(raw):
    """An environment value as dynaconf reads it: TOML when it parses, else the string."""
    import tomllib

    if raw.strip().startswith("@"):
        raise _Unmodelled(raw)
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
