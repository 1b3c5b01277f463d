"""gunicorn settings for modelrunner: gevent workers, modelrunner's host/port/workers settings.

    gunicorn -c conf/gunicorn.conf.py 'modelrunner.app:create_app()'

gevent keeps thousands of streaming connections cheap; every model runs in its own runner
process, so no C call into an engine ever blocks a worker.
"""

import os

# Imported here, in the master, before gevent patches the workers: httpcore probes for trio at
# import, and trio fails with AttributeError (not ImportError) under a patched `select`.
import httpcore  # noqa: F401,E402

from modelrunner.settings import load_settings

_settings = load_settings()

bind = os.environ.get("MODELRUNNER_BIND", f"{_settings.host}:{_settings.port}")
workers = int(_settings.get("workers", 1))
worker_class = "gevent"
# Connections one worker serves at once: idle streams (chat SSE, /logs?follow, the inspector)
# cost a few KB each, so the cap is high; the open-files limit is raised to fit (on_starting).
worker_connections = int(_settings.get("worker_connections", 10000))
timeout = 0                 # streams and model loads can take long; gevent workers heartbeat anyway
keepalive = 5
forwarded_allow_ips = str(_settings.get("forwarded_allow_ips", "127.0.0.1"))
# https when a certificate is configured (tls_cert/tls_key, DMR's MODEL_RUNNER_TLS_CERT/_KEY);
# `model serve --tls` passes --certfile/--keyfile itself, self-signed when none is configured.
if _settings.get("tls_cert") and _settings.get("tls_key"):
    certfile = str(_settings.tls_cert)
    keyfile = str(_settings.tls_key)
# No API key reaches a log: the access log names no user (a Basic auth "user" may be a key) and
# no credential header, and every line of the access and error logs has key-like parameters
# (?api_key=...) and Bearer/Basic credentials redacted (modelrunner.access_log, .redact).
logger_class = "modelrunner.access_log.Logger"
accesslog = "-"
errorlog = "-"
wsgi_app = "modelrunner.app:create_app()"
proc_name = "modelrunner"
# gunicorn 24+ opens a control socket (~/.gunicorn/gunicorn.ctl, shared by every server of the
# user) that modelrunner never uses: one endpoint fewer.
control_socket_disable = True


def _raise_open_files(wanted):
    """Raise the soft limit on open files towards ``wanted`` (up to the hard limit): each
    connection is a file descriptor, and the usual soft limit is 1024."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def on_starting(server):
    # What the server, its workers, the scheduler and the runners create is this user's alone:
    # the store holds system prompts, prompts and answers (the store also sets its own modes).
    from modelrunner.private import SERVER_UMASK
    os.umask(SERVER_UMASK)
    _raise_open_files(workers * worker_connections + 1024)
    # Runner processes belong to one scheduler per store; it watches this master process and
    # stops every runner when the server goes away.
    os.environ["MODELRUNNER_WATCH_PID"] = str(os.getpid())
    # The addresses actually bound (after any --bind) are Host names the trust boundary answers.
    os.environ["MODELRUNNER_BOUND_HOSTS"] = ",".join(_bound_hosts(server.cfg.bind))
    # The server's own log also goes to <store>/logs/server.log (rotated); workers inherit it.
    from modelrunner.logfiles import setup_server_logging
    setup_server_logging(_settings.models_path)
    # plugins' set-up that workers inherit (Prometheus' multiprocess folder, say)
    from modelrunner.plugins import get_plugin_manager
    get_plugin_manager().hook.on_server_start(settings=_settings)


def child_exit(server, worker):
    from modelrunner.plugins import get_plugin_manager
    get_plugin_manager().hook.on_worker_exit(settings=_settings, pid=worker.pid)


def _bound_hosts(binds):
    """Host parts of gunicorn's bind addresses ("127.0.0.1:8080", "[::1]:80", "unix:/x")."""
    hosts = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        if bind.startswith("["):
            host = bind[1:bind.find("]")]
        elif bind.count(":") == 1:
            host = bind.split(":")[0]
        else:
            host = bind  # a bare host, or an IPv6 address without a port
        hosts.append(host)
    if any(h in ("0.0.0.0", "::", "") for h in hosts) and not _settings.get("allowed_hosts"):
        import logging
        logging.getLogger("gunicorn.error").warning(
            "bound beyond loopback with no allowed_hosts: requests that name this machine by "
            "another name or address get 403 (set MODELRUNNER_ALLOWED_HOSTS)")
    return hosts
