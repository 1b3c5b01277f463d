"""The metrics this process records (API workers: requests; the scheduler: runner loads)."""

import os

from prometheus_client import CollectorRegistry, Counter, Histogram

# Used only without multiprocess mode; in multiprocess mode values go to PROMETHEUS_MULTIPROC_DIR.
REGISTRY = CollectorRegistry(auto_describe=True)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or
                    os.environ.get("prometheus_multiproc_dir"))

# vLLM's buckets
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

TTFT = Histogram("modelrunner:time_to_first_token_seconds",
                 "Histogram of time to first token in seconds.", ["model"],
                 buckets=TTFT_BUCKETS, registry=REGISTRY)
ITL = Histogram("modelrunner:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.", ["model"],
                buckets=ITL_BUCKETS, registry=REGISTRY)
E2E = Histogram("modelrunner:e2e_request_latency_seconds",
                "Histogram of end to end request latency in seconds.", ["model"],
                buckets=E2E_BUCKETS, registry=REGISTRY)
PROMPT_TOKENS = Counter("modelrunner:prompt_tokens", "Number of prefill tokens processed.",
                        ["model"], registry=REGISTRY)
GENERATION_TOKENS = Counter("modelrunner:generation_tokens", "Number of generation tokens processed.",
                            ["model"], registry=REGISTRY)
SUCCESS = Counter("modelrunner:request_success", "Count of successfully processed requests.",
                  ["model", "finished_reason"], registry=REGISTRY)
FAILURE = Counter("modelrunner:request_failure", "Count of failed requests, by HTTP status.",
                  ["model", "status"], registry=REGISTRY)
LOAD_DURATION = Histogram("modelrunner:load_duration_seconds",
                          "Histogram of the time a runner took to load its model, in seconds.",
                          ["model", "backend"], buckets=LOAD_BUCKETS, registry=REGISTRY)
RUNNER_EVENTS = Counter("modelrunner:runner_events",
                        "Runner lifecycle events: loading, loaded, unloaded, evicted, crashed, failed.",
                        ["model", "backend", "event"], registry=REGISTRY)


def model_label(name):
    """ "docker.io/ai/smollm2:latest" -> "ai/smollm2" (what users type)."""
    name = name or ""
    if name.startswith("docker.io/"):
        name = name[len("docker.io/"):]
    if name.endswith(":latest"):
        name = name[: -len(":latest")]
    return name


_labels = {}


def label_for(record):
    """The model label of a request: the stored model's first tag, else the name it was sent with."""
    label = _labels.get(record.model_id)
    if label is None:
        label = model_label(record.model)
        try:
            from . import resource
            store = resource.STORE
            if store is not None:
                model = store.get(record.model_id)
                if model.tags:
                    label = model_label(model.tags[0])
        except Exception:
            pass
        if len(_labels) < 10000:
            _labels[record.model_id] = label
    return label


def observe_request(record):
    model = label_for(record)
    ok = record.status == 200 and not record.error
    if not ok:
        FAILURE.labels(model, str(record.status or 0)).inc()
        return
    SUCCESS.labels(model, record.finish_reason or "stop").inc()
    PROMPT_TOKENS.labels(model).inc(record.prompt_tokens)
    GENERATION_TOKENS.labels(model).inc(record.completion_tokens)
    if record.duration is not None:
        E2E.labels(model).observe(record.duration)
    if record.mode == "completion" and record.ttft is not None:
        TTFT.labels(model).observe(record.ttft)
    itl = ITL.labels(model)
    for gap in record.inter_token_latencies:
        itl.observe(gap)


def observe_runner(event, runner):
    """In the scheduler process; recorded only where it can be read back (multiprocess mode)."""
    if not MULTIPROCESS:
        return
    model = model_label(runner.get("model"))
    backend = runner.get("engine") or ""
    RUNNER_EVENTS.labels(model, backend, event).inc()
    if event == "loaded" and runner.get("load_seconds") is not None:
        LOAD_DURATION.labels(model, backend).observe(runner["load_seconds"])
