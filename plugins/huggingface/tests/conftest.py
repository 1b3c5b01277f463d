"""A real Hugging Face endpoint for the tests: olah (PyPI) serving local git repositories offline.

olah ("Self-hosted Hugging Face mirror") serves git repositories found under its ``mirrors-path``
as ``<mirrors>/models/<org>/<repo>``: the Hub API (``/api/models/{repo}/revision/{rev}``,
``/api/models/{repo}/tree/{rev}?recursive=true``) and ``/{repo}/resolve/{rev}/{path}``, with LFS
pointer files resolved from ``.git/lfs/objects``. With ``offline = true`` it never calls the real
Hub. The fixtures here:

* write the repositories (git init + commit with fixed dates; weights as LFS pointers, as the Hub
  stores them, so the listing carries their sha256),
* write olah's ``meta_head.json`` for each (olah answers ``model_info()`` without a revision
  only from it when offline),
* start olah (from its own venv: ``install_olah.sh``) on a free port, and point ``HF_ENDPOINT``
  at it for each test,
* offer ``RangeRelay``: olah streams mirror files whole and ignores ``Range``; the relay sits in
  front of it, answers ``Range`` with 206 like the Hub's CDN, and counts the bytes it sends.
"""

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gguf
import httpx
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
OLAH_VENV = Path(os.environ.get("OLAH_VENV") or
                 Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelrunner" / "olah-venv")
COMMIT_DATE = "2024-05-01T12:00:00+00:00"
LAST_MODIFIED = "2024-05-01T12:00:00.000000Z"

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


# -- model files ------------------------------------------------------------------------------


def write_gguf(path, file_type, seed, name="tiny"):
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(512)
    w.add_file_type(int(file_type))
    rng = np.random.default_rng(seed)
    w.add_tensor("token_embd.weight", rng.standard_normal((8, 16)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_safetensors(path, tensors):
    """The safetensors format by hand: u64 LE header length, JSON header, raw little-endian data."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return path


# -- git repositories as olah mirrors them ----------------------------------------------------


def _git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
               GIT_AUTHOR_DATE=COMMIT_DATE, GIT_COMMITTER_DATE=COMMIT_DATE)
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def make_repo(mirrors, repos_cache, repo_id, files, lfs_suffixes=(".gguf", ".safetensors")):
    """A git repository at <mirrors>/models/<repo_id> holding ``files`` ({path: bytes}).

    Files ending in ``lfs_suffixes`` are committed as git-lfs pointers with their object under
    .git/lfs/objects, as on the Hub (no git-lfs binary needed). Returns {path: sha256 hex}."""
    repo = mirrors / "models" / repo_id
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / ".gitattributes").write_text("".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in lfs_suffixes))
    digests = {}
    for rel, data in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256(data).hexdigest()
        digests[rel] = sha
        if rel.endswith(lfs_suffixes):
            obj = repo / ".git" / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            target.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n")
        else:
            target.write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    head = _git(repo, "rev-parse", "HEAD")
    # olah, offline, resolves a repository's head for model_info() without a revision from here.
    meta = repos_cache / "api" / "models" / repo_id / "revision" / head / "meta_head.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"sha": head, "lastModified": LAST_MODIFIED, "id": repo_id}))
    return digests


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _olah_cli():
    cli = OLAH_VENV / "bin" / "olah-cli"
    if not cli.exists() and os.environ.get("MODELRUNNER_OLAH_AUTOINSTALL", "1") != "0":
        subprocess.run(["bash", str(HERE / "install_olah.sh")], check=False,
                       env=dict(os.environ, OLAH_VENV=str(OLAH_VENV), PYTHON=sys.executable))
    if not cli.exists():
        pytest.skip(f"olah is not installed: run bash {HERE / 'install_olah.sh'}")
    return cli


class Hub:
    """The running olah and what the fixture put in it."""

    def __init__(self, url, files, process, log):
        self.url = url
        self.files = files  # {repo_id: {path: sha256 hex}}
        self.process = process
        self.log = log


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    base = tmp_path_factory.mktemp("hf")
    mirrors, cache, logs = base / "mirrors", base / "cache", base / "logs"
    for d in (mirrors, cache, logs):
        d.mkdir()
    src = base / "src"
    F = gguf.LlamaFileType
    multi = {
        "model-Q4_K_M.gguf": write_gguf(src / "a.gguf", F.MOSTLY_Q4_K_M, 1),
        "model-Q8_0.gguf": write_gguf(src / "b.gguf", F.MOSTLY_Q8_0, 2),
        "model-F16.gguf": write_gguf(src / "c.gguf", F.MOSTLY_F16, 3),
        "UD-Q4_K_XL/model-UD-Q4_K_XL.gguf": write_gguf(src / "d.gguf", F.MOSTLY_Q4_K_M, 4),
        "Q2_K/model-Q2_K-00001-of-00002.gguf": write_gguf(src / "e.gguf", F.MOSTLY_Q2_K, 5),
        "Q2_K/model-Q2_K-00002-of-00002.gguf": write_gguf(src / "f.gguf", F.MOSTLY_Q2_K, 6),
        "mmproj-model-F16.gguf": write_gguf(src / "g.gguf", F.MOSTLY_F16, 7, name="projector"),
    }
    multi = {k: v.read_bytes() for k, v in multi.items()}
    multi["template.jinja"] = TEMPLATE.encode()
    multi["README.md"] = b"---\nlicense: apache-2.0\n---\n# multi-gguf\n"
    rng = np.random.default_rng(0)
    st = write_safetensors(src / "model.safetensors", {"model.embed.weight": rng.standard_normal((16, 8)),
                                                       "model.norm.weight": np.ones(8)})
    tiny = {
        "model.safetensors": st.read_bytes(),
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                   "max_position_embeddings": 2048, "hidden_size": 8}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}}}).encode(),
        "tokenizer_config.json": json.dumps({"chat_template": TEMPLATE, "eos_token": "</s>"}).encode(),
        "README.md": b"# tiny-safetensors\n",
        "train.py": b"print('not part of the model')\n",
    }
    files = {
        "org/multi-gguf": make_repo(mirrors, cache, "org/multi-gguf", multi),
        "org/tiny-safetensors": make_repo(mirrors, cache, "org/tiny-safetensors", tiny),
        "Org/CasedRepo": make_repo(mirrors, cache, "Org/CasedRepo",
                                   {"cased-Q4_K_M.gguf": write_gguf(src / "h.gguf", F.MOSTLY_Q4_K_M, 8).read_bytes()}),
    }
    port = _free_port()
    config = base / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{cache}"\nmirrors-path = ["{mirrors}"]\n'
        "[accessibility]\noffline = true\n"
    )
    log = base / "olah.out"
    cli = _olah_cli()
    with open(log, "wb") as out:
        process = subprocess.Popen([str(cli), "--config", str(config), "--log-path", str(logs)],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=base)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/models/org/multi-gguf/revision/main", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"olah did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    yield Hub(url, files, process, log)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def hf_endpoint(hub, monkeypatch):
    """HF_ENDPOINT pointing at olah for one test (no token from the developer's machine)."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return hub.url


# -- a Range-honouring, byte-counting relay in front of olah -----------------------------------


class RangeRelay:
    """Forwards to ``upstream``; answers ``Range`` on file downloads with 206 (olah's mirror
    route ignores Range) and records (path, range header, bytes sent) per request."""

    def __init__(self, upstream, repos=None):
        self.upstream = upstream
        self.repos = repos or {}  # {repo_id: {path: sha256}}: what /api/models lists
        self.requests = []
        self.authorizations = []
        self.gated = set()  # repo ids answered as the Hub answers a gated repository
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _gated(self):
                for repo_id in relay.gated:
                    if f"/{repo_id}/" in self.path + "/":
                        return repo_id
                return None

            def _listing(self):
                """GET /api/models?search=&filter=&limit=: the Hub's model search, which olah
                lacks, over the fixture's repositories; each entry is olah's own model info for
                the repository, with the tags the Hub derives from its files."""
                from urllib.parse import parse_qs, urlsplit
                query = parse_qs(urlsplit(self.path).query)
                term = (query.get("search") or [""])[0].lower()
                wanted = set(query.get("filter") or [])
                limit = int((query.get("limit") or ["1000"])[0])
                found = []
                for repo_id, files in relay.repos.items():
                    tags = sorted({"gguf" for p in files if p.endswith(".gguf")}
                                  | {"safetensors" for p in files if p.endswith(".safetensors")})
                    if term not in repo_id.lower() or not wanted <= set(tags):
                        continue
                    info = httpx.get(f"{relay.upstream}/api/models/{repo_id}", timeout=30).json()
                    found.append({"id": repo_id, "modelId": repo_id, "private": False,
                                  "downloads": info.get("downloads", 0) or 0,
                                  "likes": info.get("likes", 0) or 0,
                                  "tags": sorted(set(info.get("tags") or []) | set(tags)),
                                  "pipeline_tag": "text-generation",
                                  "createdAt": info.get("createdAt") or LAST_MODIFIED})
                body = json.dumps(found[:limit]).encode()
                relay.requests.append((self.path, None, len(body)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                relay.authorizations.append(self.headers.get("Authorization"))
                if self.path == "/api/models" or self.path.startswith("/api/models?"):
                    return self._listing()
                gated = self._gated()
                if gated:
                    message = f"Access to model {gated} is restricted. You must have access to it and be authenticated to access it. Please log in."
                    status = 403 if self.headers.get("Authorization") else 401
                    body = json.dumps({"error": message}).encode()
                    relay.requests.append((self.path, None, 0))
                    self.send_response(status)
                    self.send_header("X-Error-Code", "GatedRepo")
                    self.send_header("X-Error-Message", message)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "user-agent", "accept")}
                with httpx.Client(timeout=30, follow_redirects=True) as client:
                    r = client.get(relay.upstream + self.path, headers=headers)
                body, status = r.content, r.status_code
                out_headers = {k: v for k, v in r.headers.items()
                               if k.lower() in ("content-type", "x-error-code", "x-error-message", "x-repo-commit", "etag")}
                rng = self.headers.get("Range")
                if rng and status == 200 and "/resolve/" in self.path:
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(body):
                        status, body = 416, b""
                        out_headers["Content-Range"] = f"bytes */{len(r.content)}"
                    else:
                        status = 206
                        out_headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                        body = body[start:]
                relay.requests.append((self.path, rng, len(body)))
                self.send_response(status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def downloads(self, suffix):
        return [(rng, n) for path, rng, n in self.requests if "/resolve/" in path and path.endswith(suffix)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay(hub, monkeypatch):
    r = RangeRelay(hub.url, hub.files)
    monkeypatch.setenv("HF_ENDPOINT", r.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield r
    r.close()


# -- the store and the source -----------------------------------------------------------------


class Recorder:
    """A Progress that keeps every message (and no throttling)."""

    def __init__(self):
        from modelrunner import Progress
        self.messages = []
        self.progress = Progress(self.messages.append, interval=0, step=1)

    def texts(self):
        return [m["message"] for m in self.messages]


@pytest.fixture
def recorder():
    """A fresh Recorder (its ``progress`` to hand to a source)."""
    return Recorder()


@pytest.fixture
def store(tmp_path):
    from modelrunner.testing import FilesystemStore
    return FilesystemStore(tmp_path / "models")


@pytest.fixture
def source():
    from modelrunner_huggingface import HuggingFaceSource
    return HuggingFaceSource()


@pytest.fixture
def pull(source, store):
    """pull("hf.co/org/repo:tag", into=store) -> (model, Recorder)."""
    from modelrunner import references

    def run(text, into=None, token=None):
        rec = Recorder()
        model = source.pull(references.parse(text), into or store, rec.progress, token=token)
        return model, rec

    return run
