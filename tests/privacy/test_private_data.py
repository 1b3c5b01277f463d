"""What the server keeps about its users stays theirs: a runner starts without the server's
secrets, and recorded prompts, logs and sockets are readable by the server's user only."""

import os
import shutil
import stat
import tempfile
from pathlib import Path

import httpx
import pytest

from modelrunner.private import NotPrivate, private_dir, socket_dir
from modelrunner.testing import Server

SECRETS = {"HF_TOKEN": "hf_secret_9d1c", "MODELRUNNER_REGISTRY_PASSWORD": "registry-secret-4b2e",
           "MODELRUNNER_REGISTRY_USERNAME": "alice", "AWS_SECRET_ACCESS_KEY": "aws-secret-77aa",
           "GITHUB_TOKEN": "ghp_secret_0000"}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, smollm2):
    """A server whose environment holds secrets, with SmolLM2 loaded by one chat."""
    old = os.umask(0o022)  # the usual umask: world-readable unless the server says otherwise
    try:
        srv = Server(tmp_path_factory.mktemp("private") / "models",
                     env=dict(SECRETS, GGML_SCHED_MAX_COPIES="4")).start()
    finally:
        os.umask(old)
    srv.package(smollm2, "ai/smollm2")
    resp = httpx.post(srv.url + "/engines/v1/chat/completions", timeout=300,
                      json={"model": "ai/smollm2", "max_tokens": 4,
                            "messages": [{"role": "user", "content": "my private question"}]})
    assert resp.status_code == 200, resp.text
    yield srv
    srv.stop()


def runner_environ(server):
    [runner] = httpx.get(server.url + "/engines/ps", timeout=30).json()
    raw = Path(f"/proc/{runner['pid']}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_a_runner_starts_without_the_servers_secrets(loaded):
    env = runner_environ(loaded)
    assert env.get("PATH") and env.get("GGML_SCHED_MAX_COPIES") == "4"  # the allow-list passes
    assert not set(SECRETS) & set(env)
    assert not any(value in SECRETS.values() for value in env.values())


def test_recorded_prompts_are_readable_by_the_servers_user_only(loaded):
    folder = loaded.models_path / "requests"
    files = list(folder.glob("*/*.json"))
    assert files and any("my private question" in f.read_text() for f in files)
    assert mode(folder) == 0o700 and {mode(f.parent) for f in files} == {0o700}
    assert [mode(f) for f in files] == [0o600] * len(files)


def test_logs_are_readable_by_the_servers_user_only(loaded):
    folder = loaded.models_path / "logs"
    logs = list(folder.glob("*.log"))
    assert {"server.log", "scheduler.log"} <= {p.name for p in logs}
    assert any(p.name.startswith("runner-") for p in logs)
    assert mode(folder) == 0o700
    assert {p.name: mode(p) for p in logs} == {p.name: 0o600 for p in logs}


def test_the_socket_folder_is_private_and_not_a_shared_tmp_name(loaded, tmp_path, monkeypatch):
    sockets = socket_dir(str(loaded.models_path.resolve()))
    assert (sockets / "scheduler.sock").exists()
    assert mode(sockets) == 0o700 and os.stat(sockets).st_uid == os.getuid()
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    short = Path(tempfile.mkdtemp(prefix="mr"))
    assert socket_dir(short) == short / "sockets"  # a short store keeps its sockets itself
    runtime = Path(tempfile.mkdtemp(prefix="run"))  # 0700, like /run/user/<uid>
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert socket_dir(short).parent == runtime / "modelrunner"
    shutil.rmtree(short)
    shutil.rmtree(runtime)


def test_a_long_store_path_falls_back_to_a_private_folder_that_fits_a_socket_path(
        tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    deep = tmp_path / ("x" * 60) / ("y" * 60) / "models"
    sockets = socket_dir(deep)
    assert len(str(sockets / "runner-1234.sock")) < 108
    assert sockets.parent.name == f"modelrunner-{os.getuid()}" and mode(sockets.parent) == 0o700


def test_a_folder_owned_by_another_user_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.fail("this test chowns a folder to another user: run it as root", pytrace=False)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(NotPrivate):
        private_dir(theirs)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(NotPrivate):
        private_dir(link)
