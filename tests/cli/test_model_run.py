"""`model run` as a user runs it: in a pseudo-terminal (pexpect), and with a pipe."""

import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from terminal_text import strip_ansi

MODEL = "ai/smollm2"

PROMPT = re.compile(r"\n(?:\x1b\[[0-9;?]*[a-zA-Z])*> ")


def spawn(server, *args, timeout=300):
    return pexpect.spawn(sys.executable, ["-m", "modelrunner.cli", "run", *args],
                         env={**server.env, "TERM": "xterm", "COLUMNS": "100", "LINES": "40"},
                         encoding="utf-8", timeout=timeout, dimensions=(40, 100))


def test_one_shot_in_a_terminal(server):
    child = spawn(server, MODEL, "--max-tokens", "16", "What is the capital of France?")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert strip_ansi(child.before).strip()


def test_interactive_chat(server):
    child = spawn(server, MODEL, "--max-tokens", "12")
    child.expect("Interactive chat mode started")
    child.expect("> ")
    child.sendline("What is the capital of France?")
    child.expect(PROMPT)
    answer = strip_ansi(child.before).replace("What is the capital of France?", "", 1)
    assert answer.strip()

    child.sendline("/set system You answer in one word.")
    child.expect("Set system message.")
    child.expect("> ")

    child.sendline('"""')
    child.expect(r"\.\.\. ")
    child.sendline("Name a fruit")
    child.expect(r"\.\.\. ")
    child.sendline('that is yellow."""')
    child.expect(PROMPT)
    assert strip_ansi(child.before).replace('that is yellow."""', "").strip()

    child.sendline("/?")
    child.expect("/bye")
    child.expect("> ")
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_piped_stdin(server):
    result = server.model("run", MODEL, "--max-tokens", "16",
                          input="What is the capital of France?\n")
    assert result.returncode == 0
    assert result.stdout.strip() and "\x1b[" not in result.stdout


def test_prompt_and_pipe_together(server):
    result = server.model("run", MODEL, "--max-tokens", "16", "Translate to French:",
                          input="Good morning\n")
    assert result.returncode == 0 and result.stdout.strip()


def test_unknown_model_that_cannot_be_pulled_fails_with_one_line(server):
    result = server.model("run", "localhost:1/nobody/nothing", "hi", check=False, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1


def test_server_down_with_autostart_off_fails_with_one_line(server):
    env = dict(server.env, MODEL_RUNNER_HOST="http://127.0.0.1:1", MODELRUNNER_AUTOSTART="0")
    result = subprocess.run([sys.executable, "-m", "modelrunner.cli", "run", MODEL, "hi"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: modelrunner is not running at http://127.0.0.1:1 (start it with: model "
        "start-runner)"]


def test_auto_pull_from_a_registry(server, tmp_path):
    """A model missing from the store is pulled before the chat (needs the test registry)."""
    try:
        from plugins.oci.tests.oci_registry import start_registry, stop_registry
        registry = start_registry(tmp_path / "registry")
    except (Exception, pytest.fail.Exception) as e:  # noqa: BLE001
        pytest.skip(f"no local OCI registry: {e}")
    try:
        ref = f"{registry.host}/tests/smol:run"
        server.model("tag", MODEL, ref)
        server.model("push", ref)
        server.model("rm", ref)
        result = server.model("run", ref, "--max-tokens", "8", "Say hi.", check=False)
        assert result.returncode == 0, result.stderr
        assert "Pulling" in result.stderr and result.stdout.strip()
        server.model("rm", ref)
    finally:
        stop_registry(registry)
