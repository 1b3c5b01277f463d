"""Helpers for the telemetry tests: chats through the official openai client, /metrics parsing."""

from pathlib import Path

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

MODEL = "ai/smollm2"
MAX_TOKENS = 16


def client(server, api_key="x", **kwargs):
    return openai.OpenAI(base_url=server.url + "/engines/v1", api_key=api_key, max_retries=0,
                         **kwargs)


def chat(server, prompt, stream=False, max_tokens=MAX_TOKENS):
    """One chat; returns (content, usage dict). Streams ask for usage in the last chunk."""
    c = client(server)
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        r = c.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens)
        return r.choices[0].message.content or "", r.usage.model_dump()
    content, usage = "", None
    for chunk in c.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens,
                                           stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            content += choice.delta.content or ""
    return content, usage


def scrape(server):
    """{(sample name, frozenset(labels)): value} and the families, from GET /metrics."""
    resp = httpx.get(server.url + "/metrics", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(resp.text))
    samples = {}
    for fam in families:
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def total(samples, name, **labels):
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def label_values(samples, name, label):
    return {dict(ls).get(label) for (n, ls), v in samples.items() if n == name}


def worker_pids(master_pid):
    """The gunicorn workers: children of the master process."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(") ", 1)[1].split()[1])
        if ppid == master_pid:
            pids.append(int(entry.name))
    return pids


def metric_file_pids(metrics_dir):
    return {int(p.stem.rsplit("_", 1)[1]) for p in Path(metrics_dir).glob("*.db")
            if p.stem.rsplit("_", 1)[1].isdigit()}
