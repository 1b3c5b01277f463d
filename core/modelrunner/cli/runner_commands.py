"""`model start-runner`, `stop-runner`, `restart-runner`: DMR's names for managing the server.

In DMR these run the docker-model-runner container; here the runner is the `model serve`
server itself, started in the background (:mod:`.launch`) and stopped with every process it has
(:mod:`.processes`). The address is MODEL_RUNNER_HOST's (or the settings'), with --port and
--host to change it; an address on another machine is refused, never acted on.

DMR's flags that make sense here are taken (--port, --host, --gpu auto|none, --do-not-track,
--debug, --tls, --tls-cert, --tls-key, --backend NAME); the others are refused with the reason,
rather than silently ignored. DMR's --backend chooses which engine's container runs; here every
installed engine runs in the one server, so --backend only checks that the installed plugins
provide that engine (the CLI names none of its own: it asks the plugins, as the server it starts
will).
"""

import click

from .client import fail

GPU_CHOICES = ("auto", "none", "cuda", "rocm", "musa", "cann")
# Accelerators a --gpu none server hides from its runners (the engines' own device variables).
HIDE_GPUS = {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "", "ROCR_VISIBLE_DEVICES": "",
             "GGML_VK_VISIBLE_DEVICES": ""}


def _refuse(flag, why):
    def check(ctx, param, value):
        if value not in (None, False, ()):
            raise click.UsageError(f"{flag} is not supported: {why}", ctx)
        return value
    return check


def start_options(command):
    """DMR's install-runner/start-runner/restart-runner flags."""
    options = [
        click.option("--port", type=click.IntRange(1, 65535),
                     help="Port (default: MODEL_RUNNER_HOST's, else the settings' 12434)"),
        click.option("--host", help="Address to bind (default: MODEL_RUNNER_HOST's host)"),
        click.option("--gpu", type=click.Choice(GPU_CHOICES), default="auto", show_default=True,
                     help="auto: what the engines were built for; none: CPU only"),
        click.option("--backend", metavar="ENGINE",
                     help="An engine the installed plugins provide (every installed engine runs "
                          "in the one server: this only checks)"),
        click.option("--do-not-track", is_flag=True, help="Set DO_NOT_TRACK=1 for the server "
                                                          "(it sends no usage data anyway)"),
        click.option("--debug", is_flag=True, help="Debug logging"),
        click.option("--tls", is_flag=True, help="Serve https (self-signed unless --tls-cert)"),
        click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False)),
        click.option("--tls-key", type=click.Path(exists=True, dir_okay=False)),
        click.option("--tls-port", type=int, hidden=True, expose_value=False,
                     callback=_refuse("--tls-port", "one listener serves http or https (--tls)")),
        click.option("--proxy-cert", hidden=True, expose_value=False,
                     callback=_refuse("--proxy-cert", "modelrunner reaches registries itself; "
                                      "set SSL_CERT_FILE for a proxy's CA")),
        # DMR's name for its default engine's build: kept so DMR's command lines get a reason
        click.option("--llama-server-version", hidden=True, expose_value=False,
                     callback=_refuse("--llama-server-version", "each engine plugin brings the "
                                      "build of its runtime (`model status` shows them)")),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _target(port, host):
    """(URL the server answers at, bind host, port) from MODEL_RUNNER_HOST and the flags."""
    from urllib.parse import urlsplit

    from ..settings import server_url
    from .launch import is_local, url_port
    url = server_url()
    if not is_local(url):
        fail(f"MODEL_RUNNER_HOST is {url}, another machine: `model` starts and stops a server "
             f"only on this one (run this command there)")
    parts = urlsplit(url)
    port = port or url_port(url)
    bind = host or ("127.0.0.1" if parts.hostname in ("localhost", "ip6-localhost")
                    else parts.hostname)
    return port, bind, parts.scheme == "https"


def _flag_env(gpu, backend, do_not_track):
    if gpu not in ("auto", "none"):
        fail(f"--gpu {gpu}: modelrunner uses the accelerator its engines were built for "
             f"(--gpu auto), or none (--gpu none)")
    if backend:
        check_engine(backend)
    env = dict(HIDE_GPUS) if gpu == "none" else {}
    if do_not_track:
        env["DO_NOT_TRACK"] = "1"
    return env


def installed_engines():
    """{name: engine} of the installed plugins' engines: the ones a server started here runs."""
    from ..plugins import get_plugin_manager
    from ..settings import load_settings
    engines = {}
    get_plugin_manager().hook.register_engines(
        register=lambda engine: engines.setdefault(engine.name, engine), settings=load_settings())
    return engines


def check_engine(name):
    """Exit saying why unless an installed plugin provides the engine ``name`` and it is ready."""
    engines = installed_engines()
    engine = engines.get(name)
    if engine is None:
        fail(f"--backend {name}: no installed plugin provides that engine (installed: "
             f"{', '.join(sorted(engines)) or 'none'}); engines are plugins of the one server: "
             f"install the one that provides it and start again")
    ok, detail = engine.installed()
    if not ok:
        fail(f"--backend {name}: the engine is not ready: {detail}")


def _start(spec):
    from .launch import LaunchError, start
    try:
        pid = start(spec)
    except LaunchError as e:
        fail(f"could not start modelrunner at {spec['url']}: {e}")
    if pid is None:
        click.echo(f"modelrunner is already running at {spec['url']}")
    else:
        click.echo(f"modelrunner is serving at {spec['url']} (pid {pid}, logs in {spec['log']})")


def _stop(port, url):
    """Stop the server on ``port``; returns the spec the CLI recorded for it, if any."""
    from .launch import forget, recorded_spec
    from .processes import cmdline, find_server, stop_server
    master, other = find_server(port)
    if master is None:
        if other is not None:
            fail(f"port {port} is held by pid {other} ({' '.join(cmdline(other))[:80]}), which is "
                 f"not a modelrunner server; not stopping it")
        forget(port)
        click.echo(f"modelrunner is not running at {url}; nothing to stop")
        return None
    spec = recorded_spec(port)
    roles = stop_server(master)
    forget(port)
    counts = ", ".join(f"{len(roles[role])} {role if len(roles[role]) != 1 else role.rstrip('s')}"
                       for role in ("workers", "runners"))
    scheduler = " and its scheduler" if roles["scheduler"] else ""
    click.echo(f"Stopped modelrunner at {url}: pid {master}{scheduler}, {counts}")
    return spec if spec and spec.get("pid") == master else None


@click.command(name="start-runner")
@start_options
def start_runner(port, host, gpu, backend, do_not_track, debug, tls, tls_cert, tls_key):
    """Start the server in the background (no-op when it runs)."""
    from .launch import new_spec
    port, bind, https = _target(port, host)
    env = _flag_env(gpu, backend, do_not_track)
    _start(new_spec(host=bind, port=port, tls=tls or https, cert=tls_cert, key=tls_key,
                    debug=debug, env=env))


@click.command(name="stop-runner")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: MODEL_RUNNER_HOST's)")
@click.option("--models", is_flag=True, expose_value=False, hidden=True,
              callback=_refuse("--models", "stopping keeps the store; `model purge` removes "
                               "every model"))
@click.option("--images", is_flag=True, expose_value=False, hidden=True,
              callback=_refuse("--images", "modelrunner runs no container images"))
@click.option("--backend", expose_value=False, hidden=True,
              callback=_refuse("--backend", "the server and all its engines stop together"))
def stop_runner(port):
    """Stop the server: gunicorn, its workers, the scheduler and every loaded model."""
    port, _, _ = _target(port, None)
    from ..settings import server_url
    _stop(port, _display_url(server_url(), port))


@click.command(name="restart-runner")
@start_options
def restart_runner(port, host, gpu, backend, do_not_track, debug, tls, tls_cert, tls_key):
    """Stop the server and start it again with the settings it was started with.

    Flags given here change those settings; with none the server comes back as it was (same
    address, workers, TLS, store and settings), whatever this shell's environment says.
    """
    from ..settings import server_url
    from .launch import new_spec
    port, bind, https = _target(port, host)
    env = _flag_env(gpu, backend, do_not_track)
    spec = _stop(port, _display_url(server_url(), port))
    changed = host or gpu != "auto" or backend or do_not_track or debug or tls or tls_cert
    if spec is None or changed:
        if spec is None:
            click.echo("No record of how it was started: starting it with this shell's settings")
        spec = new_spec(host=bind, port=port, tls=tls or https, cert=tls_cert, key=tls_key,
                        debug=debug, env=env)
    _start(spec)


def _display_url(url, port):
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


COMMANDS = {"start-runner": start_runner, "stop-runner": stop_runner,
            "restart-runner": restart_runner}
