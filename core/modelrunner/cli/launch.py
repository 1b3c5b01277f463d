"""Starting the server in the background: `model serve --detach`, `model start-runner`, and any
command that finds no server at a local address (autostart, as Docker Desktop and the Ollama app
start theirs). Stopping is :mod:`.processes`.

A start is a *spec*: gunicorn's argv, the settings environment, the working folder, the URL that
answers once it is up and its log. The spec of each server the CLI starts is recorded (a 0600 file
in the per-user runtime folder, by port), so `model restart-runner` starts the same server again
from any shell: same bind, workers, TLS, store and settings. Secrets (API keys, registry
passwords, tokens) are never recorded; a restart takes them from the environment it runs in.

Only a server on this machine is ever started: a MODEL_RUNNER_HOST naming another machine is
reported, never acted on. ``MODELRUNNER_AUTOSTART=0`` turns autostart off.
"""

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from .http import HTTP, HTTPError

START_TIMEOUT = 60
LOOPBACK = {"127.0.0.1", "localhost", "::1", "ip6-localhost", "ip6-loopback"}
# Variables that configure the server (settings.py reads them): recorded with a spec, with those
# of the installed engines' environment prefixes (Engine.env_prefixes: what their runners read).
SETTINGS_PREFIXES = ("MODELRUNNER_", "MODEL_RUNNER_")
SETTINGS_NAMES = frozenset({"MODELS_PATH", "DO_NOT_TRACK", "DMR_ORIGINS", "DEFAULT_REGISTRY",
                            "INSECURE_REGISTRY", "HF_ENDPOINT", "LOG_LEVEL", "DISABLE_METRICS",
                            "MODEL_RUNNER_PORT"})
# Set by the server for its own processes, or by the CLI for itself: never recorded.
PATHS_NOT_SECRETS = ("MODEL_RUNNER_TLS_CERT", "MODEL_RUNNER_TLS_KEY", "MODELRUNNER_TLS_CERT",
                     "MODELRUNNER_TLS_KEY")
NOT_RECORDED = ("MODELRUNNER_WATCH_PID", "MODELRUNNER_BOUND_HOSTS", "MODELRUNNER_AUTOSTART")


class LaunchError(Exception):
    """The server could not be started; the message says why and where its log is."""


def is_local(url):
    """Whether ``url`` names this machine by a loopback name (the only servers we start)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK:
        return True
    try:  # 127.0.0.2 is loopback; "127.evil.example" is a name anyone's DNS may point elsewhere
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_port(url):
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def probe(url, ca_file=None):
    """The text GET / answers at ``url``, or None when nothing answers."""
    try:
        resp = HTTP(url, ca_file=ca_file).get("/", timeout=2)
    except HTTPError:
        return None
    return resp.text if resp.status_code == 200 else f"HTTP {resp.status_code}"


def is_modelrunner(text):
    return text is not None and "Model Runner is running" in text


# -- specs ------------------------------------------------------------------------------------

def gunicorn_argv(settings, host, port, workers=None, tls=False, cert=None, key=None,
                  debug=False):
    """(argv, certificate or None): `model serve`'s gunicorn command line."""
    conf = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    bind_host = f"[{host}]" if ":" in host else host
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", f"{bind_host}:{port}"]
    if workers:
        argv += ["--workers", str(workers)]
    cert = str(cert or settings.get("tls_cert") or "")
    if cert and key:
        argv += ["--certfile", cert, "--keyfile", str(key)]
    elif tls and not cert:
        from ..tls import self_signed
        hosts = [host, *(settings.get("allowed_hosts") or [])]
        cert, key = map(str, self_signed(Path(settings.models_path) / "tls", hosts))
        argv += ["--certfile", cert, "--keyfile", key]
    if debug:
        argv += ["--log-level", "debug"]
    argv.append("modelrunner.app:create_app()")
    return argv, cert or None


def new_spec(host=None, port=None, workers=None, tls=False, cert=None, key=None, debug=False,
             env=None):
    """The spec of a server started from this shell's settings, plus ``env`` (from flags)."""
    from ..private import private_dir
    from ..settings import load_settings
    settings = load_settings()
    host = host or settings.host
    port = int(port or settings.port)
    argv, cert = gunicorn_argv(settings, host, port, workers, tls, cert, key, debug)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    local = "127.0.0.1" if local == "localhost" else local
    url = f"{'https' if cert else 'http'}://{f'[{local}]' if ':' in local else local}:{port}"
    log = private_dir(Path(settings.models_path) / "logs") / "serve.log"
    recorded = {name: value for name, value in os.environ.items() if _recorded(name)}
    recorded.update(env or {})
    return {"argv": argv, "env": recorded, "cwd": os.getcwd(), "url": url, "log": str(log),
            "ca": os.environ.get("MODEL_RUNNER_TLS_CA") or cert or None}


def _settings_var(name):
    from ..scheduler.environment import engine_prefixes
    return name in SETTINGS_NAMES or name.startswith(SETTINGS_PREFIXES + engine_prefixes())


def _recorded(name):
    """A settings variable that is no secret: the runner environment's rule decides what looks
    like one (registry credentials, tokens, keys, passwords)."""
    from ..scheduler.environment import DENIED_PREFIXES, SECRET
    if name in PATHS_NOT_SECRETS:  # a file's path, not its contents: needed to serve https again
        return True
    return (_settings_var(name) and not SECRET.search(name)
            and not name.startswith(DENIED_PREFIXES + NOT_RECORDED))


def spec_environment(spec):
    """The server's environment: this process's, with the settings the spec recorded in place
    of this shell's own (secrets, never recorded, come from here)."""
    env = {name: value for name, value in os.environ.items() if not _recorded(name)}
    env.update(spec["env"])
    return env


# -- the record of started servers -------------------------------------------------------------

def _state_path(port):
    from ..private import user_runtime_dir
    return user_runtime_dir() / f"server-{port}.json"


def recorded_spec(port):
    """The spec of the server the CLI last started on ``port`` (with its "pid"), or None."""
    try:
        return json.loads(_state_path(port).read_text())
    except (OSError, ValueError):
        return None


def forget(port):
    try:
        _state_path(port).unlink()
    except OSError:
        pass


def _record(port, spec):
    from ..private import write_private
    write_private(_state_path(port), json.dumps(spec, indent=2))


# -- starting ---------------------------------------------------------------------------------

def start(spec, timeout=START_TIMEOUT):
    """Start the server of ``spec`` unless one answers; returns its pid, or None when one was
    already running. Raises LaunchError. Concurrent starts on one port wait for each other."""
    from ..locks import file_lock
    from ..private import private_open, user_runtime_dir
    url, port = spec["url"], url_port(spec["url"])
    with file_lock(user_runtime_dir() / f"start-{port}.lock", timeout=timeout + 30):
        answer = probe(url, spec.get("ca"))
        if is_modelrunner(answer):
            return None
        if answer is not None:
            raise LaunchError(f"something else answers at {url} ({answer[:60]!r}); "
                              f"choose another port (--port)")
        with private_open(spec["log"], "ab") as log:
            proc = subprocess.Popen(spec["argv"], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=spec_environment(spec), cwd=spec["cwd"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchError(f"the server exited with code {proc.returncode}; see "
                                  f"{spec['log']}")
            if is_modelrunner(probe(url, spec.get("ca"))):
                _record(port, {**spec, "pid": proc.pid})
                return proc.pid
            time.sleep(0.1)
        proc.terminate()
        raise LaunchError(f"the server did not answer within {timeout} s; see {spec['log']}")


def autostart(base_url):
    """For a command that found no server at ``base_url``: start one when the address is this
    machine's, else exit saying why not."""
    if not is_local(base_url):
        from .client import fail
        fail(f"modelrunner is not running at {base_url} (MODEL_RUNNER_HOST names another "
             f"machine: start modelrunner there; `model` starts a server only on this one)")
    if os.environ.get("MODELRUNNER_AUTOSTART", "").strip().lower() in ("0", "false", "no", "off"):
        from .client import fail
        fail(f"modelrunner is not running at {base_url} (start it with: model start-runner)")
    parts = urlsplit(base_url)
    host = "127.0.0.1" if parts.hostname in ("localhost", "ip6-localhost") else parts.hostname
    click.echo(f"modelrunner is not running at {base_url}; starting it", err=True)
    spec = new_spec(host=host, port=url_port(base_url), tls=parts.scheme == "https")
    try:
        pid = start(spec)
    except LaunchError as e:
        from .client import fail
        fail(f"modelrunner is not running at {base_url} and could not be started: {e}")
    if pid:
        click.echo(f"modelrunner is serving at {spec['url']} (pid {pid}, logs in {spec['log']}; "
                   f"`model stop-runner` stops it)", err=True)
