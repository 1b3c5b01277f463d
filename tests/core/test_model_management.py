"""A user packages, lists, inspects, tags, removes and exports models with `model`, as with DMR."""

import io
import json
import os
import tarfile

import httpx
import pytest

from modelrunner.testing import snapshot, write_small_gguf
from modelrunner.testing import Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("mgmt") / "models").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def packaged(srv, smollm2):
    srv.package(smollm2, "ai/smollm2")
    return srv


def _ls_rows(srv):
    out = srv.model("ls").stdout.splitlines()
    header = out[0].split()
    return header, [line.split() for line in out[1:]]


def test_package_smollm2_then_ls_shows_dmr_columns(packaged):
    header, rows = _ls_rows(packaged)
    assert " ".join(header) == ("MODEL NAME PARAMETERS QUANTIZATION ARCHITECTURE MODEL ID "
                                "CREATED CONTEXT SIZE")
    row = next(r for r in rows if r[0] == "smollm2")
    assert row[1] == "134.52M" and row[2] == "Q4_1" and row[3] == "llama"
    assert len(row[4]) == 12
    assert row[-2] == "8192" and row[-1] == "93.81MiB"


def test_package_twice_gives_the_same_model_id(packaged, smollm2):
    first = packaged.model("ls", "-q").stdout.split()
    packaged.package(smollm2, "ai/smollm2")
    assert packaged.model("ls", "-q").stdout.split() == first


def test_ls_json_is_the_servers_models_list(packaged):
    models = json.loads(packaged.model("ls", "--json").stdout)
    model = next(m for m in models if "docker.io/ai/smollm2:latest" in m["tags"])
    assert model["id"].startswith("sha256:") and model["config"]["format"] == "gguf"
    assert model["config"]["context_size"] == 8192


def test_inspect_finds_a_model_by_partial_name_and_by_id(packaged):
    by_name = json.loads(packaged.model("inspect", "smollm2").stdout)
    short = by_name["id"].split(":")[1][:12]
    by_id = json.loads(packaged.model("inspect", short).stdout)
    assert by_id == by_name
    assert by_name["config"]["gguf"]["general.architecture"] == "llama"


def test_tag_then_rm_untags_and_rm_by_id_needs_force(packaged):
    packaged.model("tag", "smollm2", "myorg/smol:v1")
    assert "myorg/smol:v1" in packaged.model("ls").stdout
    result = packaged.model("rm", "myorg/smol:v1")
    assert "Untagged: myorg/smol:v1" in result.stdout
    packaged.model("tag", "smollm2", "smol:extra")
    model_id = packaged.model("ls", "-q").stdout.split()[0]
    refused = packaged.model("rm", model_id, check=False)
    assert refused.returncode == 1 and "must be forced" in refused.stderr
    packaged.model("rm", "smol:extra")


def test_df_reports_the_bytes_of_the_stored_blobs(packaged, smollm2):
    data = httpx.get(packaged.url + "/engines/df").json()
    assert data["models_disk_usage"] >= smollm2.stat().st_size
    assert "Models" in packaged.model("df").stdout


def test_export_then_load_round_trips_a_model(packaged, tmp_path):
    with httpx.stream("GET", packaged.url + "/models/smollm2/export") as resp:
        assert resp.status_code == 200
        data = b"".join(resp.iter_bytes())
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "manifest.json" in names and any(n.startswith("blobs/sha256/") for n in names)
    other = Server(tmp_path / "other").start()
    try:
        loaded = httpx.post(other.url + "/models/load", params={"tag": "ai/copy"}, content=data)
        assert loaded.status_code == 201
        original = httpx.get(packaged.url + "/models/smollm2").json()["id"]
        assert loaded.json()["id"] == original
    finally:
        other.stop()


def test_status_version_and_plugins_answer(packaged):
    assert "llama.cpp" in packaged.model("status").stdout
    assert "Server: modelrunner" in packaged.model("version").stdout
    plugins = json.loads(packaged.model("plugins", "--json").stdout)
    assert {"modelrunner.store.plugin", "modelrunner.api.plugin"} <= {p["name"] for p in plugins}


def test_dmr_routes_answer_in_dmr_shapes(packaged):
    assert httpx.get(packaged.url + "/").text == "Docker Model Runner is running"
    assert "version" in httpx.get(packaged.url + "/version").json()
    tagged = httpx.post(packaged.url + "/models/smollm2/tag", params={"repo": "x/y", "tag": "t"})
    assert tagged.status_code == 201 and tagged.json()["target"] == "docker.io/x/y:t"
    assert httpx.delete(packaged.url + "/models/x/y:t").json() == [{"Untagged": "docker.io/x/y:t"}]


BAD_PACKAGES = [
    ("not-gguf", "ai/bad", "not a gguf"),
    ("truncated", "ai/bad", "truncated"),
    ("good", "../escape", "invalid"),
    ("good", "/abs/path", "invalid"),
    ("good", "Bad Name", "invalid"),
]


@pytest.mark.parametrize("kind, name, message", BAD_PACKAGES)
def test_bad_package_input_is_one_line_error_and_store_unchanged(packaged, tmp_path, kind, name,
                                                                  message):
    path = tmp_path / f"{kind}.gguf"
    if kind == "not-gguf":
        path.write_bytes(os.urandom(4096))
    else:
        write_small_gguf(path, values=4096)
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:-5000])
    before = snapshot(packaged.models_path)
    result = packaged.model("package", "--gguf", str(path), name, check=False)
    assert result.returncode == 1
    assert message in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1
    assert {k: v for k, v in snapshot(packaged.models_path).items() if "logs/" not in k
            and not k.endswith(".log")} == {k: v for k, v in before.items() if "logs/" not in k
                                             and not k.endswith(".log")}


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/models/nope", 404),
    ("DELETE", "/models/nope", 404),
    ("GET", "/models/Bad%20Ref", 400),
    ("POST", "/models/nope/tag?repo=a&tag=b", 404),
    ("POST", "/models/load?tag=ai/x", 400),
    ("POST", "/models/create", 400),
])
def test_bad_api_input_gets_a_clear_4xx_and_store_unchanged(packaged, method, path, status):
    before = snapshot(packaged.models_path / "blobs")
    resp = httpx.request(method, packaged.url + path, content=b"garbage")
    assert resp.status_code == status
    assert resp.text.strip()
    assert snapshot(packaged.models_path / "blobs") == before


def test_cli_says_one_line_when_the_server_is_not_running(tmp_path):
    server = Server(tmp_path / "none")
    result = server.model("ls", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: modelrunner is not running at {server.url} (start it with: model serve)"]


def test_purge_removes_every_model(tmp_path, smollm2):
    with Server(tmp_path / "purge") as server:
        server.package(write_small_gguf(tmp_path / "a.gguf"), "ai/a")
        assert httpx.delete(server.url + "/models/purge").status_code == 200
        assert httpx.get(server.url + "/models").json() == []
        assert list((server.models_path / "blobs" / "sha256").iterdir()) == []
