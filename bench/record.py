"""CPU time to record an answer: ``RequestRecord.add_chunk`` for each 64 KiB chunk (as the gateway
reads a runner's answer), ``finish()``, then the request inspector's ``to_record`` (the record
written to <store>/requests/). All of it runs in the API worker's gevent loop, so it must stay
linear in the answer's size, and cheap: the goal is under 20 ms per MB.

    python bench/record.py [--sizes 1,10,100] [--kinds sse,sse-logprobs,json-logprobs]
                           [--keep 524288] [--rounds 3]

Answers are built in memory in llama-server's shapes, compact JSON as it writes it:
``sse``            a chat stream of one-token content events (~200 bytes each, the most lines)
``sse-logprobs``   a chat stream with ``top_logprobs: 20`` (~2.5 KB per event)
``json-logprobs``  one non-streamed chat completion with ``top_logprobs: 20``: one line, no
                   newline anywhere (what made recording quadratic)
Each is recorded --rounds times; the best CPU time (time.process_time) is printed, with ms per MB
and the usage the record found (it must be the answer's, however large). --keep is
record_body_bytes.

Figures, 2-core VM (load from other work: ~3), record_body_bytes 512 KiB, best of 3, CPU ms
(ms per MB):

    kind              1 MB           10 MB          100 MB
    sse               10.8 (10.8)    35.3 (3.5)     279 (2.8)
    sse-logprobs       9.1 (9.1)     16.0 (1.6)      84 (0.8)
    json-logprobs      1.7 (1.7)      2.6 (0.3)      13 (0.1)

usage right in every case. What an answer costs beyond the kept 512 KiB is the per-chunk work
(~3 ms per MB for a stream of one-token events, the most lines; less for fewer lines); the kept
part costs ~20 ms per MiB once, when the answer ends (its events parsed and reassembled).

Before (c542d44, the same answers and harness): sse 1 MB 344 ms, 10 MB 4,547 ms (usage lost:
the 4 MiB kept held no usage event); json-logprobs 1 MB 104 ms, 10 MB 506 ms (usage lost). From
the issue, add_chunk alone on a JSON answer of 9, 18, 37 MB: 0.67, 2.41, 10.3 s (quadratic:
each chunk re-split everything still pending).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))

from modelrunner.inspector import to_record  # noqa: E402
from modelrunner.telemetry import DEFAULT_BODY_BYTES, RequestRecord  # noqa: E402

MB = 1_000_000
CHUNK = 65536


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def _token_logprobs(i):
    top = [{"id": 1000 + k, "token": f" tok{k}", "bytes": [32, 116, 111, 107],
            "logprob": -1.2345678 - k} for k in range(20)]
    return {"id": i % 49152, "token": " word", "bytes": [32, 119, 111, 114, 100],
            "logprob": -0.4567891, "top_logprobs": top}


def sse_answer(size, logprobs):
    """(body, tokens): a chat completion stream of about ``size`` bytes."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
            "model": "ai/smollm2", "system_fingerprint": "b1"}
    parts = [b"data: " + _compact({**head, "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]})
        .encode() + b"\n\n"]
    choice = {"index": 0, "delta": {"content": " word"}, "finish_reason": None}
    if logprobs:
        choice["logprobs"] = {"content": [_token_logprobs(7)]}
    event = b"data: " + _compact({**head, "choices": [choice]}).encode() + b"\n\n"
    tokens = max(1, size // len(event))
    parts.append(event * tokens)
    usage = {"completion_tokens": tokens, "prompt_tokens": 9, "total_tokens": tokens + 9}
    parts.append(b"data: " + _compact({**head, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "length"}],
        "timings": {"prompt_n": 9, "predicted_n": tokens}}).encode() + b"\n\n")
    parts.append(b"data: " + _compact({**head, "choices": [], "usage": usage}).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts), tokens


def json_answer(size):
    """(body, tokens): one chat completion with logprobs, about ``size`` bytes, no newline."""
    entry = _compact(_token_logprobs(7)).encode()
    tokens = max(1, size // (len(entry) + 7))
    content = b"[" + b",".join([entry] * tokens) + b"]"
    usage = {"completion_tokens": tokens, "prompt_tokens": 9, "total_tokens": tokens + 9,
             "prompt_tokens_details": {"cached_tokens": 0}}
    body = (b'{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant",'
            b'"content":"' + b" word" * tokens + b'"},"logprobs":{"content":' + content + b'}}],'
            b'"created":1,"model":"ai/smollm2","system_fingerprint":"b1","object":'
            b'"chat.completion","usage":' + _compact(usage).encode() + b',"id":"chatcmpl-bench",'
            b'"timings":' + _compact({"prompt_n": 9, "predicted_n": tokens}).encode() + b'}')
    return body, tokens


def record_once(body, keep):
    """CPU seconds to record ``body``, and the record's usage."""
    view = memoryview(body)
    started = time.process_time()
    record = RequestRecord(model="ai/smollm2", model_id="sha256:" + "0" * 64, engine="llama.cpp",
                           mode="completion", path="/v1/chat/completions",
                           body=b'{"model":"ai/smollm2","messages":[]}', keep=keep)
    for offset in range(0, len(body), CHUNK):
        record.add_chunk(bytes(view[offset:offset + CHUNK]), 0.001 * offset / CHUNK)
    record.finish(status=200)
    entry = to_record(record)
    cpu = time.process_time() - started
    assert len(entry["response"]) <= keep
    return cpu, record.usage


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100", help="answer sizes in MB")
    parser.add_argument("--kinds", default="sse,sse-logprobs,json-logprobs")
    parser.add_argument("--keep", type=int, default=DEFAULT_BODY_BYTES,
                        help="record_body_bytes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    print(f"record_body_bytes {args.keep}, best of {args.rounds}, CPU time")
    print(f"{'kind':<15}{'MB':>8}{'ms':>10}{'ms/MB':>9}  usage found")
    for kind in args.kinds.split(","):
        for size_mb in sizes:
            size = int(size_mb * MB)
            if kind == "json-logprobs":
                body, tokens = json_answer(size)
            else:
                body, tokens = sse_answer(size, logprobs=kind == "sse-logprobs")
            best, usage = None, None
            for _ in range(args.rounds):
                cpu, usage = record_once(body, args.keep)
                best = cpu if best is None else min(best, cpu)
            mb = len(body) / MB
            right = usage.get("completion_tokens") == tokens
            print(f"{kind:<15}{mb:>8.1f}{best * 1000:>10.1f}{best * 1000 / mb:>9.2f}  "
                  f"{usage.get('completion_tokens')} completion tokens"
                  f"{'' if right else ' (WRONG: ' + str(tokens) + ')'}")
            del body


if __name__ == "__main__":
    main()
