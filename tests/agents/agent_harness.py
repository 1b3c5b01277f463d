"""What the agent tests (Claude Code, Codex CLI, opencode) share: a server with SmolLM2 packaged
with a context that holds an agent's prompt, and a recording proxy between agent and server.

Their prompts, measured with SmolLM2 (whose chat template renders no tools, so the tools' JSON
costs nothing): Codex CLI 0.171's first request is 40 KB (21 KB of instructions and context
messages, 19 KB of tools), 4,553 prompt tokens; opencode 1.18's is 31 KB (10 KB of messages,
21 KB of tools), 2,211 tokens. 16,384 tokens hold that and the turns after it; SmolLM2 was trained
on 8,192, so what it says past that is poor, but nothing is cut or refused.
"""

import http.server
import threading

import httpx

from modelrunner.testing import Server

MODEL = "ai/smollm2-agent"
CONTEXT = 16384
# The agents send no temperature (or their own), and SmolLM2 at its default one often loops to
# the output limit, which Codex and Claude Code report as an error (a CI run: Codex's "Say hi"
# ran to 8,192 tokens of "I'm a little friendly"): configured as a user would, greedy with a
# repeat penalty that stops its loops.
# DRY sampling as well: a CI run saw Claude Code's turn loop past its 1,024-token bound even
# greedy with the repeat penalty (its prompt changes with the date and folder).
# And one line of at most 200 printable characters by default (a request's own grammar, a
# forced tool call's, replaces it; no backslash: a runtime flag may hold no path separator):
# greedy with both penalties, SmolLM2 still rambled past Claude Code's 1,024-token bound on its
# 4,145-token prompt in a CI run; llama-server ends an answer whose grammar is complete. What
# these tests check is the agents' wire, not the model's prose.
SAMPLING = ["--temp", "0", "--repeat-penalty", "1.5", "--dry-multiplier", "0.8",
            "--grammar", "root ::= [ -~]{1,200}"]


class RecordingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to ``upstream`` and keeps ``{method, path, headers, body, status}``
    of each: what the agent really sends, for the replay."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.exchanges = []
        super().__init__(("127.0.0.1", 0), _Forward)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def posts(self, suffix):
        """The POSTs to a path ending with ``suffix`` (the query left out)."""
        return [e for e in self.exchanges
                if e["method"] == "POST" and e["path"].split("?")[0].endswith(suffix)]

    def close(self):
        self.shutdown()
        self.server_close()


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "accept-encoding", "connection")}
        exchange = {"method": self.command, "path": self.path, "headers": headers, "body": body}
        self.server.exchanges.append(exchange)
        with httpx.stream(self.command, self.server.upstream + self.path, content=body,
                          headers=headers, timeout=900) as answer:
            exchange["status"] = answer.status_code
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                       "content-encoding"):
                    self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in answer.iter_bytes():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_HEAD = do_POST


def serve_agent_model(tmp_path_factory, smollm2):
    """A server with SmolLM2 packaged as MODEL with CONTEXT tokens, stopped at the end (a test
    module's fixture: ``yield from serve_agent_model(tmp_path_factory, smollm2)``)."""
    srv = Server(tmp_path_factory.mktemp("agents") / "models").start()
    try:
        srv.package(smollm2, MODEL, "--context-size", str(CONTEXT))
        srv.model("configure", MODEL, "--", *SAMPLING)
        yield srv
    finally:
        srv.stop()
