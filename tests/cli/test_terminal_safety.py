"""What the `model` CLI prints from a server, a registry or a model never controls the terminal.

A hostile registry's error message, a hostile server's model names and logs, a model's answer:
each may carry escape sequences (OSC 0 sets the title, OSC 52 writes the clipboard, CSI 2J
clears the screen), C1 controls (U+009B is a CSI by itself) and bidi overrides. The CLI prints
their text without them (modelrunner.cli.terminal); its --json output keeps them, escaped.
"""

import json
import os
import re
import subprocess
import sys

from modelrunner.testing import answering_server

# OSC 0 title, OSC 52 clipboard write, clear screen + home, colour, C1 CSI, BEL, CR, bidi override
HOSTILE = ("\x1b]0;pwned\x07\x1b]52;c;cm0gLXJmIH4K\x1b\\\x1b[2J\x1b[H\x1b[31m"
           "\x9b1;1H\u202eevil\u202c\r\x07")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def model_cli(url, *args):
    """The `model` CLI with ``url`` as its modelrunner server."""
    env = dict(os.environ, MODEL_RUNNER_HOST=url)
    env.pop("MODEL_RUNNER_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "modelrunner.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def assert_no_controls(result):
    for name in ("stdout", "stderr"):
        text = getattr(result, name)
        assert not CONTROLS.search(text), f"{name} has controls: {text!r}"


def test_model_pull_prints_a_hostile_registrys_error_without_its_escape_sequences(server):
    errors = {"errors": [{"code": "MANIFEST_UNKNOWN",
                          "message": f"manifest unknown{HOSTILE} try again later"}]}
    with answering_server(json.dumps(errors).encode(), {"Content-Type": "application/json"},
                          status=404) as registry:
        result = server.model("pull", f"{registry[len('http://'):]}/evil/model:latest",
                              check=False)
    assert result.returncode == 1
    assert "manifest unknown" in result.stderr and "try again later" in result.stderr
    assert "evil" in result.stderr  # the text stays readable; only the controls go
    assert_no_controls(result)


def test_model_names_from_a_hostile_server_are_printed_without_controls():
    hostile = [{"id": "sha256:" + "ab" * 32, "tags": [f"ai/evil{HOSTILE}:latest"], "created": 0,
                "config": {"format": "gguf", "parameters": f"1B{HOSTILE}",
                           "architecture": "llama", "size": "1 GB"}}]
    with answering_server(json.dumps(hostile).encode(),
                          {"Content-Type": "application/json"}) as url:
        table = model_cli(url, "ls")
        as_json = model_cli(url, "ls", "--json")
    assert table.returncode == 0, table.stderr
    assert "evilevil" in table.stdout and "1Bevil" in table.stdout  # ai/ and :latest not shown
    assert_no_controls(table)
    # --json: json.dumps escapes every control, so a program still reads the exact name
    assert_no_controls(as_json)
    assert "\\u001b]0;pwned" in as_json.stdout
    assert json.loads(as_json.stdout)[0]["tags"] == hostile[0]["tags"]


def test_a_hostile_servers_error_and_logs_are_printed_without_controls():
    with answering_server(json.dumps({"error": f"no such model{HOSTILE}"}).encode(),
                          {"Content-Type": "application/json"}, status=404) as url:
        error = model_cli(url, "inspect", "ai/evil")
    assert error.returncode == 1 and "no such model" in error.stderr
    assert_no_controls(error)

    log = f"[llama-server] prompt: {HOSTILE} done\n".encode() * 3
    with answering_server(log, {"Content-Type": "text/plain; charset=utf-8"}) as url:
        logs = model_cli(url, "logs")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("done\n") == 3
    assert_no_controls(logs)


def test_model_run_prints_a_models_answer_without_its_escape_sequences():
    """A model's answer is untrusted text: a prompt can make a model write escape sequences."""
    events = [{"choices": [{"index": 0, "delta": {"content": part}}]}
              for part in ("Hello", HOSTILE, " there", "\x1b]0;", "split title\x07", "!")]
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    with answering_server(sse.encode(), {"Content-Type": "text/event-stream"}) as url:
        result = model_cli(url, "run", "--openaiurl", url + "/v1", "ai/evil", "Say hello")
    assert result.returncode == 0, result.stderr
    assert "Hello" in result.stdout and "there" in result.stdout and "!" in result.stdout
    assert_no_controls(result)
