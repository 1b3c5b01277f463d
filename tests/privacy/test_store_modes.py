"""The store is its user's alone: a model's system prompt, the names a user gave their models and
what they pulled are readable by nobody else. Every folder 0700, every file 0600, whoever wrote
it (packaging, a pull, Ollama's /api/create, a chat that unpacked a bundle); `model fsck` finds a
store someone loosened and `--repair` narrows it, never following a symlink out of the store."""

import hashlib
import os
import pwd
import stat
import subprocess
import tempfile
from pathlib import Path

import ollama
import pytest

from modelrunner.store import FilesystemStore
from modelrunner.testing import Server

SYSTEM = "You are Captain Hook's private assistant. The vault code is 7-4-1-9."


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def loose(root):
    """Every folder not 0700 and every file not 0600 under ``root`` (symlinks and sockets aside)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            st = os.lstat(path)
            wanted = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600 if stat.S_ISREG(st.st_mode) \
                else None
            if wanted is not None and stat.S_IMODE(st.st_mode) != wanted:
                found[str(path.relative_to(root))] = oct(stat.S_IMODE(st.st_mode))
    return found


def read_as_nobody(path):
    """(exit code, output) of `cat path` run as the user nobody."""
    nobody = pwd.getpwnam("nobody")

    def drop():
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    done = subprocess.run(["cat", str(path)], preexec_fn=drop, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from plugins.oci.tests.oci_registry import start_registry, stop_registry
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    stop_registry(server)


@pytest.fixture(scope="module")
def used(registry, smollm2, tiny_gguf):
    """A server's store after what users do: package, push, pull, /api/create with a system
    prompt and a chat with the created model. The store sits in a folder anyone may enter (pytest's
    own temp folders are 0700, which would hide a loose store), made with the usual umask 022."""
    base = Path(tempfile.mkdtemp(prefix="mr-modes-"))
    os.chmod(base, 0o755)
    old = os.umask(0o022)
    try:
        srv = Server(base / "models").start()
    finally:
        os.umask(old)
    try:
        srv.package(smollm2, "ai/smollm2")
        pushed = f"{registry.host}/tests/modes-tiny:v1"
        srv.package(tiny_gguf, pushed)
        srv.model("push", pushed)
        srv.model("rm", pushed)
        srv.model("pull", pushed)
        client = ollama.Client(host=srv.url)
        assert client.create(model="ai/hook", from_="ai/smollm2", system=SYSTEM,
                             stream=False).status == "success"
        answer = client.chat(model="ai/hook", messages=[{"role": "user", "content": "Hi"}],
                             options={"num_predict": 2}, keep_alive=0)
        assert answer.done
        yield srv
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", str(base)])


def bundle_config_with_the_system_prompt(root):
    configs = [p for p in (root / "bundles" / "sha256").glob("*/config.json")
               if SYSTEM in p.read_text()]
    assert configs, "the created model's bundle holds its system prompt"
    return configs[0]


def test_every_folder_and_file_of_a_used_store_is_its_users_alone(used):
    root = used.models_path
    assert list((root / "blobs" / "sha256").iterdir()) and list(
        (root / "manifests" / "sha256").iterdir())
    bundle_config_with_the_system_prompt(root)
    assert mode(root) == 0o700
    assert loose(root) == {}


@pytest.mark.skipif(os.getuid() != 0, reason="switching to the user nobody needs root")
def test_another_user_reads_neither_the_system_prompt_nor_the_index_nor_a_manifest(used):
    root = used.models_path
    config = bundle_config_with_the_system_prompt(root)
    manifest = next((root / "manifests" / "sha256").iterdir())
    for path in (config, root / "models.json", manifest):
        code, output = read_as_nobody(path)
        assert code != 0 and "Permission denied" in output, (path, output)
        assert SYSTEM not in output and "sha256:" not in output


def test_fsck_finds_a_loosened_store_and_repair_narrows_it_without_following_symlinks(used):
    root = used.models_path
    outside = Path(tempfile.mkdtemp(prefix="mr-outside-")) / "notes.txt"
    outside.write_text("not the store's")
    os.chmod(outside, 0o644)
    os.symlink(outside, root / "link-out")
    config = bundle_config_with_the_system_prompt(root)
    for path, loosened in ((root, 0o755), (root / "models.json", 0o644),
                           (config.parent, 0o755), (config, 0o644),
                           (next((root / "blobs" / "sha256").iterdir()), 0o664)):
        os.chmod(path, loosened)
    try:
        check = used.model("fsck", check=False)
        assert check.returncode == 1, check.stdout
        assert "modes" in check.stdout and "models.json 0644" in check.stdout

        repair = used.model("fsck", "--repair")
        assert "narrowed to 0700/0600" in repair.stdout
        assert used.model("fsck").returncode == 0
        assert loose(root) == {}
        assert mode(outside) == 0o644  # the symlink was not followed
        assert os.path.islink(root / "link-out")
    finally:
        (root / "link-out").unlink()


def test_a_store_an_older_version_left_readable_is_closed_when_it_opens(tmp_path):
    root = tmp_path / "models"
    FilesystemStore(root)
    for path in (root, root / "blobs", root / "blobs" / "sha256", root / "bundles",
                 root / "manifests"):
        os.chmod(path, 0o755)
    os.chmod(root / "models.json", 0o644)
    FilesystemStore(root)  # what the server does when it starts
    assert loose(root) == {} and mode(root) == 0o700


def test_a_pulled_blob_resumed_from_an_older_versions_partial_file_is_private(store):
    data = b"weights" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    partial = store.blob_path(digest).with_name(store.blob_path(digest).name + ".incomplete")
    partial.write_bytes(data[:100])
    os.chmod(partial, 0o644)
    writer = store.blob_writer(digest, len(data))
    assert writer.offset == 100
    writer.write(data[100:])
    assert mode(writer.commit()) == 0o600
