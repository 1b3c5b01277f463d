"""Small test models for the OCI tests: tiny GGUF files and artifacts built from them."""

import os
from pathlib import Path

import gguf
import numpy as np

from modelrunner import Progress, media_types, model_files
from modelrunner.testing import assemble


def write_tiny_gguf(path, seed=0, n=64):
    """A few-KB llama-architecture GGUF with one random tensor."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"tiny-{seed}")
    writer.add_context_length(128)
    writer.add_block_count(1)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.standard_normal((n, 16)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_artifact(directory, seed=0, n=64):
    return model_files.build_gguf_artifact(write_tiny_gguf(Path(directory) / f"tiny-{seed}.gguf", seed, n),
                                           created="2025-01-01T00:00:00Z")


def random_artifact(directory, size, seed=0):
    """A model whose one layer is ``size`` random bytes (for resume and benchmark tests)."""
    path = Path(directory) / f"random-{seed}-{size}.gguf"
    if not path.exists() or path.stat().st_size != size:
        rng = np.random.default_rng(seed)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            left = size
            while left:
                n = min(left, 16 << 20)
                f.write(rng.bytes(n))
                left -= n
        os.replace(tmp, path)
    layer = model_files.make_layer(path, media_types.GGUF, mtime="2025-01-01T00:00:00Z")
    config = {"format": "gguf", "size": f"{size}B", "architecture": "random"}
    return assemble(config, [layer], created="2025-01-01T00:00:00Z")


def put_in_store(store, artifact, tag):
    """Put a built artifact into a FilesystemStore directly; returns the Model."""
    for layer in artifact.layers:
        store.import_file(layer.path, layer.digest)
    store.write_blob_bytes(artifact.config_bytes)
    return store.add_model(artifact.manifest_bytes, tags=[tag])


class Recorder:
    """A modelrunner.sources.Progress whose messages land in a list."""

    def __init__(self, mode="pull"):
        self.messages = []
        self.progress = Progress(self.messages.append, mode=mode)

    def texts(self):
        return [m.get("message", "") for m in self.messages]


class CuttingRelay:
    """A TCP relay in front of a registry that drops the connection after ``cut_after`` bytes
    of every response to a GET of blob ``digest`` (None: relays faithfully), at a slow ``pace``
    if given. Records the request heads it forwarded."""

    def __init__(self, upstream_port, digest, cut_after=None, pace=None):
        import socket
        import threading
        self.upstream_port = upstream_port
        self.digest = digest
        self.cut_after = cut_after
        self.pace = pace  # seconds to wait before relaying each piece of a response (a slow link)
        self.heads = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def range_requests(self):
        return [h for h in self.heads if f"/blobs/{self.digest}" in h and "\nrange:" in h.lower()]

    def close(self):
        self._sock.close()

    def _accept(self):
        import socket
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"cutting": False, "sent": 0}
            self._threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            self._threading.Thread(target=self._down, args=(client, upstream, state), daemon=True).start()

    @staticmethod
    def _close(*socks):
        import socket
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _up(self, client, upstream, state):
        buffer = b""
        try:
            while data := client.recv(65536):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    text = head.decode("latin-1")
                    self.heads.append(text)
                    if text.startswith("GET ") and f"/blobs/{self.digest}" in text.split("\r\n")[0]:
                        state["cutting"] = self.cut_after is not None
                        state["sent"] = 0
                    else:
                        state["cutting"] = False
                upstream.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)

    def _down(self, client, upstream, state):
        try:
            while data := upstream.recv(65536):
                if self.pace:
                    import time
                    time.sleep(self.pace)
                if state["cutting"]:
                    room = self.cut_after - state["sent"]
                    if len(data) >= room:
                        client.sendall(data[:room])
                        break
                    state["sent"] += len(data)
                client.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)


class RedirectingFront:
    """A registry front that answers blob GETs with 307 to ``blob_host`` (as Docker Hub sends
    blobs to its CDN) and relays everything else to the registry. Records the request heads."""

    def __init__(self, registry_host, blob_host):
        import http.server
        import threading

        import httpx
        front = self
        self.heads = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _relay(self):
                front.heads.append(f"{self.command} {self.path}\n{self.headers}")
                if self.command == "GET" and "/blobs/" in self.path:
                    self.send_response(307)
                    self.send_header("Location", f"http://{blob_host}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                answer = httpx.request(self.command, f"http://{registry_host}{self.path}",
                                       headers={k: v for k, v in self.headers.items()
                                                if k.lower() != "host"},
                                       content=self.rfile.read(length) if length else None)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_HEAD = do_PUT = do_POST = _relay

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
