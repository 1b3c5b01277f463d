"""A fake runner for the scheduler's own tests: an HTTP server on a Unix socket.

    python fake_runner.py --socket S [--fail] [--slow-start N] [--slow-exit N] [--ctx-size N]

GET /health answers 200 once started; POST /v1/chat/completions echoes the request (with this
process's pid and context size); with "stream": true it sends ``max_tokens`` SSE chunks, one every
``delay`` seconds (from the request, default 0.05), then ``data: [DONE]``. ``--fail`` prints a
reason and exits 1 before listening, as an engine that cannot load a model does. ``--slow-exit``
takes N seconds to exit after SIGTERM, as an engine freeing a large model does.
"""

import argparse
import json
import os
import signal
import sys
import time

from modelrunner.unix_http import JSONRequestHandler, UnixHTTPServer


class Handler(JSONRequestHandler):
    ctx_size = None

    def _json(self, status, payload):
        self.send_json(status, payload)

    def do_GET(self):
        if self.path == "/health":
            return self._json(200, {"status": "ok"})
        self._json(404, {"error": "not found"})

    def do_POST(self):
        request = self.read_json()
        if self.path != "/v1/chat/completions":
            return self._json(404, {"error": "not found"})
        echo = {"pid": os.getpid(), "ctx_size": self.ctx_size, "request": request}
        if not request.get("stream"):
            time.sleep(float(request.get("delay", 0)))
            return self._json(200, {"object": "chat.completion", "echo": echo,
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant",
                                                             "content": "echo"}}]})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data):
            payload = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            self.wfile.flush()

        for i in range(int(request.get("max_tokens", 4))):
            send(json.dumps({"object": "chat.completion.chunk", "echo": echo if i == 0 else None,
                             "choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}))
            time.sleep(float(request.get("delay", 0.05)))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--slow-start", type=float, default=0)
    parser.add_argument("--slow-exit", type=float, default=0)
    parser.add_argument("--ctx-size", type=int)
    args = parser.parse_args()
    print(f"fake runner {os.getpid()} starting on {args.socket}", flush=True)
    if args.slow_exit:
        def exit_slowly(*_):
            time.sleep(args.slow_exit)
            os._exit(0)
        signal.signal(signal.SIGTERM, exit_slowly)
    time.sleep(args.slow_start)
    if args.fail:
        print("error: fake engine cannot load this model: tensor 'blk.0' has the wrong shape",
              flush=True)
        return 1
    Handler.ctx_size = args.ctx_size
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = UnixHTTPServer(args.socket, Handler)
    print("fake runner ready", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
