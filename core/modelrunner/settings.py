"""Settings: conf/settings.toml, then MODELRUNNER_* environment variables, then DMR's own names.

DMR's variables are honoured so existing setups work unchanged: MODELS_PATH, MODEL_RUNNER_HOST
(a URL for the CLI, or a host for the server) and MODEL_RUNNER_PORT.
"""

import os
from pathlib import Path
from urllib.parse import urlparse

from dynaconf import Dynaconf

# conf/settings.toml, reached through a symlink so it also ships inside the wheel.
DEFAULT_FILE = Path(__file__).with_name("settings.toml")


def load_settings(**overrides):
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
    for key, value in overrides.items():
        settings.set(key, value)
    settings.set("models_path", str(Path(os.path.expanduser(str(settings.models_path))).resolve()))
    return settings


def server_url():
    """The base URL the CLI talks to: MODEL_RUNNER_HOST, else the configured host and port."""
    host = os.environ.get("MODEL_RUNNER_HOST")
    if host:
        return host.rstrip("/") if "://" in host else f"http://{host}".rstrip("/")
    settings = load_settings()
    return f"http://{settings.host}:{settings.port}"
