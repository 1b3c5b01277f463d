"""`model bench MODEL`: generation speed at several concurrency levels, as DMR's `bench`.

At each level N, N workers send streamed chat completions back to back for --duration; a
request started before the end runs to completion (at most --timeout). Each request gives a
time to first token (the first chunk with content), a token count (the server's usage when it
sends one, else the content chunks) and a duration. A level reports throughput (all tokens over
the level's wall time), per-request speed, and TTFT mean/p50/p95. One short request before the
first level loads the model, so load time counts in no level.
"""

import json
import re
import threading
import time

import click

from .client import Client, error_text, fail

DEFAULT_PROMPT = "Write a short story about a robot who learns to paint."
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(text):
    """A Go duration ("30s", "5m", "1m30s", "500ms") in seconds."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r} (e.g. 30s, 5m, 1m30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_levels(text):
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise click.BadParameter(f"invalid concurrency list {text!r} (e.g. 1,2,4,8)")
    return levels


def one_request(client, model, prompt, max_tokens, timeout):
    """One streamed chat completion: {"ttft", "tokens", "duration"} or {"error"}."""
    body = {"model": model, "stream": True, "max_tokens": max_tokens,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}]}
    start = time.monotonic()
    ttft, chunks, usage = None, 0, None
    try:
        with client.http.stream("POST", "/engines/v1/chat/completions", json=body,
                                timeout=timeout) as resp:
            if resp.status_code >= 400:
                resp.read()
                return {"error": error_text(resp)}
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content"):
                        chunks += 1
                        if ttft is None:
                            ttft = time.monotonic() - start
    except Exception as e:  # a transport error counts as a failed request, not a crash
        return {"error": str(e) or type(e).__name__}
    tokens = (usage or {}).get("completion_tokens") or chunks
    return {"ttft": ttft, "tokens": tokens, "duration": time.monotonic() - start}


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_level(model, prompt, max_tokens, concurrency, duration, timeout):
    results, lock = [], threading.Lock()
    end = time.monotonic() + duration

    def worker():
        client = Client()
        while time.monotonic() < end:
            r = one_request(client, model, prompt, max_tokens, timeout)
            with lock:
                results.append(r)

    start = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    ok = [r for r in results if "error" not in r]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    tokens = sum(r["tokens"] for r in ok)
    per_request = [r["tokens"] / r["duration"] for r in ok if r["duration"] > 0]
    return {
        "concurrency": concurrency,
        "requests": len(ok),
        "errors": len(results) - len(ok),
        "first_error": next((r["error"] for r in results if "error" in r), None),
        "tokens": tokens,
        "duration_s": round(wall, 3),
        "tokens_per_second": round(tokens / wall, 2) if wall > 0 else 0.0,
        "tokens_per_second_per_request": (round(sum(per_request) / len(per_request), 2)
                                          if per_request else 0.0),
        "ttft_ms": {"mean": _ms(sum(ttfts) / len(ttfts) if ttfts else None),
                    "p50": _ms(percentile(ttfts, 0.5)), "p95": _ms(percentile(ttfts, 0.95))},
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


@click.command()
@click.argument("model")
@click.option("--concurrency", default="1,2,4,8", show_default=True,
              help="Comma-separated numbers of parallel requests")
@click.option("--duration", default="30s", show_default=True, help="How long each level runs")
@click.option("--prompt", default=DEFAULT_PROMPT, help="The user message sent")
@click.option("--timeout", default="5m", show_default=True, help="Longest one request may take")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Tokens to generate per request (modelrunner's addition)")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON")
def bench(model, concurrency, duration, prompt, timeout, max_tokens, as_json):
    """Measure tokens/s and time to first token at several concurrency levels."""
    levels = parse_levels(concurrency)
    seconds, limit = parse_duration(duration), parse_duration(timeout)
    warm = one_request(Client(), model, prompt, 1, limit)
    if "error" in warm:
        fail(warm["error"])
    if not as_json:
        click.echo(f"Benchmarking {model}: {duration} per level, levels {concurrency}", err=True)
    results = [run_level(model, prompt, max_tokens, n, seconds, limit) for n in levels]
    if as_json:
        click.echo(json.dumps({"model": model, "duration": duration, "max_tokens": max_tokens,
                               "results": results}, indent=2))
        return
    from .tables import print_table, table
    t = table("CONCURRENCY", "REQUESTS", "ERRORS", "TOKENS/S", "TOKENS/S/REQ", "TTFT MEAN",
              "TTFT P50", "TTFT P95")
    for r in results:
        ttft = r["ttft_ms"]
        t.add_row(str(r["concurrency"]), str(r["requests"]), str(r["errors"]),
                  f"{r['tokens_per_second']:.1f}", f"{r['tokens_per_second_per_request']:.1f}",
                  *(f"{ttft[k]:.0f}ms" if ttft[k] is not None else "-"
                    for k in ("mean", "p50", "p95")))
    print_table(t)
