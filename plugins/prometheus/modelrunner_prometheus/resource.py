"""GET /metrics: this server's request metrics (all workers), runner gauges computed now from the
scheduler, and each loaded runner's own metrics with backend/model/mode labels."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from modelrunner import placement

from . import metrics

STORE = None            # the store of this process's runtime, for model labels
SCRAPE_TIMEOUT = 3.0


class RunnerCollector:
    """Collected at each scrape: nothing here is stored between scrapes."""

    def __init__(self, runtime):
        self.runtime = runtime

    def _ps(self):
        try:
            return self.runtime.runners(start=False)  # never start a scheduler to be scraped
        except Exception:
            return []

    def collect(self):
        ps = self._ps()
        running = GaugeMetricFamily("modelrunner:num_requests_running",
                                    "Number of requests being processed by a runner.",
                                    labels=["model"])
        waiting = GaugeMetricFamily("modelrunner:num_requests_waiting",
                                    "Number of requests waiting for their runner to load.",
                                    labels=["model"])
        loaded = GaugeMetricFamily("modelrunner:loaded_models", "Number of runners loaded now.")
        memory = GaugeMetricFamily("modelrunner:runner_memory_bytes",
                                   "Memory a runner is estimated to use, in bytes.",
                                   labels=["model", "backend", "mode"])
        loading = GaugeMetricFamily("modelrunner:runner_loading",
                                    "1 while a runner is loading its model, else 0.",
                                    labels=["model", "backend", "mode"])
        load_seconds = GaugeMetricFamily("modelrunner:runner_load_seconds",
                                         "How long the loaded runner took to load, in seconds.",
                                         labels=["model", "backend", "mode"])
        by_model = {}
        for r in ps:
            model = metrics.model_label(r.get("model_name"))
            labels = [model, r.get("backend_name") or "", r.get("mode") or ""]
            leases = r.get("leases", int(bool(r.get("in_use"))))
            run, wait = by_model.setdefault(model, [0, 0])
            if r.get("loading"):
                by_model[model] = [run, wait + leases]
            else:
                by_model[model] = [run + leases, wait]
            memory.add_metric(labels, float(r.get("memory") or 0))
            loading.add_metric(labels, 1.0 if r.get("loading") else 0.0)
            if r.get("load_seconds") is not None:
                load_seconds.add_metric(labels, float(r["load_seconds"]))
        for model, (run, wait) in sorted(by_model.items()):
            running.add_metric([model], run)
            waiting.add_metric([model], wait)
        loaded.add_metric([], sum(1 for r in ps if not r.get("loading")))
        yield from (running, waiting, loaded, memory, loading, load_seconds)
        yield from self._engine_metrics(ps)

    def _engine_metrics(self, ps):
        """Each ready runner's /metrics, merged into one family per name."""
        families = {}
        for r in ps:
            if r.get("loading") or not r.get("address"):
                continue
            text = _scrape(r["address"])
            if not text:
                continue
            extra = {"backend": r.get("backend_name") or "",
                     "model": metrics.model_label(r.get("model_name")),
                     "mode": r.get("mode") or ""}
            try:
                parsed = list(text_string_to_metric_families(text))
            except Exception:
                continue
            for fam in parsed:
                kind = fam.type
                if kind == "counter" and any(not s.name.endswith(("_total", "_created"))
                                             for s in fam.samples):
                    kind = "unknown"
                key = (fam.name, kind)
                merged = families.get(key)
                if merged is None:
                    merged = families[key] = Metric(fam.name, fam.documentation, kind)
                for s in fam.samples:
                    merged.add_sample(s.name, {**s.labels, **extra}, s.value, s.timestamp)
        return list(families.values())


def _scrape(address):
    conn = placement.runner_connection(address, timeout=SCRAPE_TIMEOUT)
    try:
        conn.request("GET", "/metrics", headers={"Host": "localhost"})
        resp = conn.getresponse()
        body = resp.read()
        return body.decode("utf-8", "replace") if resp.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


class MetricsResource:
    def __init__(self, runtime):
        global STORE
        STORE = runtime.store
        self.runtime = runtime
        self.live = CollectorRegistry(auto_describe=False)
        self.live.register(RunnerCollector(runtime))

    def _recorded(self):
        if metrics.MULTIPROCESS:
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(metrics.REGISTRY)

    def on_get(self, req, resp):
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = self._recorded() + generate_latest(self.live)
