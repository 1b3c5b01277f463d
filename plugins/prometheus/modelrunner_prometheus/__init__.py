"""Prometheus metrics for modelrunner: GET /metrics.

Request metrics use vLLM's names and meanings under the ``modelrunner:`` prefix, with a ``model``
label (the model's first tag, without docker.io/ and :latest):

    modelrunner:num_requests_running, modelrunner:num_requests_waiting       gauges
    modelrunner:time_to_first_token_seconds, modelrunner:inter_token_latency_seconds,
    modelrunner:e2e_request_latency_seconds                                  histograms
    modelrunner:prompt_tokens_total, modelrunner:generation_tokens_total    counters (runner usage)
    modelrunner:request_success_total{finished_reason}, modelrunner:request_failure_total{status}

Runner metrics (``model``, ``backend``, ``mode`` labels), computed at scrape time from the scheduler:
modelrunner:loaded_models, modelrunner:runner_memory_bytes, modelrunner:runner_loading,
modelrunner:runner_load_seconds; and from on_runner in the scheduler process:
modelrunner:load_duration_seconds (histogram) and modelrunner:runner_events_total{event}.
Each loaded runner's own /metrics (llama-server's ``llamacpp:*``) is merged in with the labels
backend/model/mode, as Docker Model Runner does.

Several gunicorn workers share their figures through prometheus_client's multiprocess mode:
PROMETHEUS_MULTIPROC_DIR is set by on_server_start (<store>/metrics) before workers start.
prometheus_client is imported lazily, so that variable is always seen first.
"""

import os

from modelrunner import hookimpl


@hookimpl
def on_server_start(settings):
    """Workers share figures through files: the folder is set before any worker imports
    prometheus_client, and emptied at each start so counts begin at zero."""
    metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                        os.path.join(settings.models_path, "metrics"))
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(metrics_dir, name))


@hookimpl
def on_worker_exit(settings, pid):
    """A dead worker's live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)


@hookimpl
def register_routes(app, runtime):
    from .resource import MetricsResource
    app.add_route("/metrics", MetricsResource(runtime))


@hookimpl
def on_request(event, record):
    if event != "finished":
        return
    from . import metrics
    metrics.observe_request(record)


@hookimpl
def on_runner(event, runner):
    from . import metrics
    metrics.observe_runner(event, runner)
