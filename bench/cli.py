"""Wall and CPU time of `model ls`, `model ps` and `model version`, next to `curl -s` of the
same route and to the interpreter doing nothing (`python -c pass`).

    python bench/cli.py [--runs 20] [--url http://127.0.0.1:12999] [--start]
                        [--model "python -m modelrunner.cli"]

Talks to the server at --url (default: MODEL_RUNNER_HOST, else the configured one); starts
nothing unless --start is given, which runs `model serve --detach` on a free port with an empty
store in a temp dir and kills it afterwards. Each command runs RUNS times in turn (ls, curl,
ps, curl, ...), so load from elsewhere hits them alike; CPU is user+sys of the child
(RUSAGE_CHILDREN). Prints median and p90 of each. `model` is run as ``python -m
modelrunner.cli`` by default: pyenv's `model` shim is a bash script that adds its own ~0.1 s.

Figures (median wall / median CPU), empty store:

                   before (httpx, dynaconf,    loaded machine (load 8,    quiet machine (load 0.9,
                   every plugin; load 8)       rich tables)               plain tables)
    model ls       2.87 s / 1.40 s             0.32 s / 0.16 s            0.128 s / 0.126 s
    model ps       3.05 s / 1.43 s             0.29 s / 0.15 s            0.117 s / 0.115 s
    model version  3.04 s / 1.58 s             0.23 s / 0.13 s            0.126 s / 0.124 s
    python -c pass 0.12 s                      0.12 s                     0.042 s
    curl           0.02 s                      0.02 s                     0.011 s

What is left is the interpreter (site and this environment's editable-install finders: ~35 ms of
imports) and click (~16 ms). Tables are plain text (DMR's tabwriter layout): rich is imported only
by the commands that colour their output.
"""

import argparse
import os
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROUTES = {"ls": "/models", "ps": "/engines/ps", "version": "/version"}


def timed(argv, env):
    """(wall s, cpu s, exit status) of one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    rc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def p90(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model, env):
    """`model serve --detach` on a free port, empty store: (url, pid)."""
    port = free_port()
    env = dict(env, MODELS_PATH=tempfile.mkdtemp(prefix="clibench-"))
    out = subprocess.run(model + ["serve", "--detach", "--port", str(port)], env=env,
                         capture_output=True, text=True, check=True).stdout
    pid = int(out.split("(pid ")[1].split(",")[0])
    return f"http://127.0.0.1:{port}", pid


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--url", help="server URL (default: MODEL_RUNNER_HOST or the settings)")
    parser.add_argument("--start", action="store_true", help="start a server for the run")
    parser.add_argument("--model", default=f"{shlex.quote(sys.executable)} -m modelrunner.cli",
                        help="how to run the CLI")
    args = parser.parse_args()
    model = shlex.split(args.model)
    env = dict(os.environ)
    pid = None
    if args.start:
        url, pid = start_server(model, env)
    else:
        from modelrunner.settings import server_url
        url = (args.url or server_url()).rstrip("/")
    env["MODEL_RUNNER_HOST"] = url
    cases = [("python -c pass", [sys.executable, "-c", "pass"])]
    for name, route in ROUTES.items():
        cases.append((f"model {name}", model + [name]))
        cases.append((f"curl {route}", ["curl", "-s", "-o", "/dev/null", url + route]))
    try:
        for _, argv in cases:  # warm the page cache and the server
            if timed(argv, env)[2] != 0:
                sys.exit(f"failed: {shlex.join(argv)} (is the server at {url} up?)")
        results = {label: [] for label, _ in cases}
        for _ in range(args.runs):
            for label, argv in cases:
                results[label].append(timed(argv, env))
    finally:
        if pid:
            os.kill(pid, 15)
    print(f"{args.runs} runs each against {url}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<22}{'wall median':>12}{'wall p90':>10}{'cpu median':>12}{'cpu p90':>10}")
    for label, runs in results.items():
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        print(f"{label:<22}{statistics.median(walls):>11.3f}s{p90(walls):>9.3f}s"
              f"{statistics.median(cpus):>11.3f}s{p90(cpus):>9.3f}s")


if __name__ == "__main__":
    main()
