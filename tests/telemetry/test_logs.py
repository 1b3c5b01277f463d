"""Logs: GET /logs and `model logs` merge the server's, scheduler's and runners' log files."""

import logging
import os
import threading
import time

import httpx

from modelrunner import logfiles
from tests.telemetry.telemetry_helpers import chat


def test_model_logs_shows_runner_load_line(server):
    chat(server, "Hello", max_tokens=4)
    out = server.model("logs").stdout
    lines = out.splitlines()
    load = [line for line in lines if line.startswith("[runner-llama.cpp-") and " loading " in line
            and "with llama.cpp" in line]
    assert load, out[-3000:]
    assert any(line.startswith("[server] ") for line in lines)
    assert any(line.startswith("[scheduler] ") for line in lines)
    # the scheduler started before the runner it loaded
    first_scheduler = next(i for i, line in enumerate(lines) if line.startswith("[scheduler] "))
    assert first_scheduler < lines.index(load[0])
    no_engines = server.model("logs", "--no-engines").stdout
    assert "[runner-" not in no_engines and "[server] " in no_engines


def test_logs_endpoint_follows(server):
    got = []
    ready = threading.Event()

    def follow():
        with httpx.stream("GET", server.url + "/logs", params={"follow": "true", "tail": "0"},
                          timeout=60) as resp:
            assert resp.headers["content-type"].startswith("text/plain")
            ready.set()
            for line in resp.iter_lines():
                got.append(line)
                if "slot" in line and line.startswith("[runner-"):
                    return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert ready.wait(30)
    time.sleep(0.5)
    chat(server, "Hi", max_tokens=4)
    t.join(60)
    assert not t.is_alive(), got[-20:]
    assert any(line.startswith("[runner-") for line in got)


def test_rotation_and_merge(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    handler = logfiles.SharedRotatingFileHandler(str(logs / "server.log"), maxBytes=2000,
                                                 backupCount=2)
    handler.setFormatter(logging.Formatter(logfiles.FORMAT, logfiles.DATEFMT))
    logger = logging.getLogger("modelrunner.test-rotation")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for i in range(200):
        logger.info("line %03d %s", i, "x" * 40)
    handler.close()
    assert os.path.getsize(logs / "server.log") < 2100
    assert (logs / "server.log.1").exists() and (logs / "server.log.2").exists()
    assert not (logs / "server.log.3").exists()

    runner = logs / "runner-llama.cpp-abc-completion.log"
    runner.write_bytes(b"x" * 5000)
    logfiles.rotate_if_large(runner, max_bytes=4096)
    assert not runner.exists() and (logs / "runner-llama.cpp-abc-completion.log.1").exists()

    (logs / "scheduler.log").write_text("[2020-01-01 10:00:02,000] b\n[2020-01-01 10:00:04,000] d\n")
    runner.write_text("[2020-01-01T10:00:01] loading\n0.02.000.000 I c\nno stamp e\n")
    (logs / "server.log").write_text("[2020-01-01T10:00:00] a\n")
    text, _ = logfiles.merged(tmp_path)
    assert text.decode().splitlines() == [
        "[server] [2020-01-01T10:00:00] a",
        "[runner-llama.cpp-abc-completion] [2020-01-01T10:00:01] loading",
        "[scheduler] [2020-01-01 10:00:02,000] b",
        "[runner-llama.cpp-abc-completion] 0.02.000.000 I c",
        "[runner-llama.cpp-abc-completion] no stamp e",
        "[scheduler] [2020-01-01 10:00:04,000] d",
    ]
