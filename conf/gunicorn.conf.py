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
worker_connections = 1000
timeout = 0                 # streams and model loads can take long; gevent workers heartbeat anyway
keepalive = 5
forwarded_allow_ips = str(_settings.get("forwarded_allow_ips", "127.0.0.1"))
accesslog = "-"
errorlog = "-"
wsgi_app = "modelrunner.app:create_app()"
proc_name = "modelrunner"


def on_starting(server):
    # Runner processes belong to one scheduler per store; it watches this master process and
    # stops every runner when the server goes away.
    os.environ["MODELRUNNER_WATCH_PID"] = str(os.getpid())
    # The server's own log also goes to <store>/logs/server.log (rotated); workers inherit it.
    from modelrunner.logfiles import setup_server_logging
    setup_server_logging(_settings.models_path)
    # Prometheus metrics are shared by the workers through files (prometheus_client's
    # multiprocess mode); the folder is set before any worker imports prometheus_client, and
    # emptied at each start so counts begin at zero.
    metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                        os.path.join(_settings.models_path, "metrics"))
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(metrics_dir, name))


def child_exit(server, worker):
    # a dead worker's live gauges stop counting
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
