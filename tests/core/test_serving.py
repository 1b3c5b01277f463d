"""Serving: gunicorn with gevent workers, behind a reverse proxy with a path prefix, and a server
process that never imports an engine library."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
import time

import httpx
import pytest

from modelrunner.testing import write_small_gguf
from modelrunner.testing import Server, free_port

ROOT = Path(__file__).resolve().parents[2]

NGINX_CONF = """
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        location /modelrunner/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header X-Forwarded-Prefix /modelrunner;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
        location /keep/ {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header X-Forwarded-Prefix /keep;
        }}
    }}
}}
"""


@pytest.fixture
def nginx_in_front(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is not installed: apt-get install -y nginx")
    server = Server(tmp_path / "models").start()
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path, port=port, upstream=server.port))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-e", str(tmp_path / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield server, f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGQUIT)
    proc.wait(10)
    server.stop()


def test_works_behind_nginx_with_a_path_prefix(nginx_in_front, tmp_path):
    server, proxy = nginx_in_front
    server.package(write_small_gguf(tmp_path / "a.gguf"), "ai/tiny")
    for base in (proxy + "/modelrunner", proxy + "/keep"):
        assert httpx.get(base + "/").text == "Docker Model Runner is running"
        models = httpx.get(base + "/models").json()
        assert models[0]["tags"] == ["docker.io/ai/tiny:latest"]
        assert httpx.get(base + "/models/nope").status_code == 404
    cli = subprocess.run([sys.executable, "-m", "modelrunner.cli", "ls"], capture_output=True,
                         text=True, env=dict(server.env, MODEL_RUNNER_HOST=proxy + "/modelrunner"))
    assert "tiny" in cli.stdout, cli.stderr


def test_plain_gunicorn_command_from_the_readme_works(tmp_path):
    port = free_port()
    env = dict(os.environ, MODELS_PATH=str(tmp_path / "models"))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                             "--bind", f"127.0.0.1:{port}", "modelrunner.app:create_app()"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/version", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        assert httpx.get(f"http://127.0.0.1:{port}/models").json() == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


HEAVY = ("torch", "llama_cpp", "vllm", "diffusers", "transformers", "gguf", "numpy")


def test_starting_the_server_imports_no_engine_library():
    code = ("from modelrunner.app import create_app; app = create_app(); "
            "import sys; print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                            text=True, check=True, env=dict(os.environ, MODELS_PATH="/tmp/mr-import"))
    loaded = set(result.stdout.split())
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    for name in HEAVY:
        assert name not in loaded and name not in imported, f"{name} was imported"
