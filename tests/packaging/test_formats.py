"""A plugin's model format: `model package --format NAME --file F` packages any files as a DMR
artifact whose config names the format, so the engine that declares it serves the model."""

import json

import pytest

from modelrunner.packaging import PackagingError, build_format_artifact, parse_config_items
from modelrunner.packaging.artifact import (ANNOTATION_FILEPATH, MEDIA_TYPE_CHAT_TEMPLATE,
                                            MEDIA_TYPE_CONFIG_V02, MEDIA_TYPE_LICENSE)
from modelrunner.packaging.formats import format_media_type
from modelrunner.store import FilesystemStore
from modelrunner.testing import Server


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"what is modelrunner": "a model runner"}))
    return path


def test_files_become_layers_named_by_their_file_and_the_config_names_the_format(table, tmp_path):
    (tmp_path / "LICENSE").write_text("MIT")
    (tmp_path / "notes.txt").write_text("read me")
    artifact = build_format_artifact("faq", [table, tmp_path / "notes.txt"],
                                     config={"language": "en", "context_size": 64},
                                     licenses=[tmp_path / "LICENSE"])
    # size: the model files' bytes (41 + 7), the license aside
    assert artifact.config["config"] == {"format": "faq", "language": "en", "context_size": 64,
                                         "size": "48B"}
    assert artifact.config_media_type == MEDIA_TYPE_CONFIG_V02
    assert [(layer.media_type, layer.annotations[ANNOTATION_FILEPATH]) for layer in artifact.layers] \
        == [("application/vnd.docker.ai.faq", "answers.json"),
            ("application/vnd.docker.ai.faq", "notes.txt"), (MEDIA_TYPE_LICENSE, "LICENSE")]
    assert format_media_type("whisper") == "application/vnd.docker.ai.whisper"
    # a file DMR classifies keeps DMR's type: a chat template packed beside a format's files
    (tmp_path / "chat.jinja").write_text("{{ messages }}")
    with_template = build_format_artifact("faq", [table, tmp_path / "chat.jinja"])
    assert MEDIA_TYPE_CHAT_TEMPLATE in [layer.media_type for layer in with_template.layers]


def test_the_same_files_give_the_same_model_id(table):
    assert build_format_artifact("faq", [table]).model_id == \
        build_format_artifact("faq", [table]).model_id
    assert build_format_artifact("faq", [table]).model_id != \
        build_format_artifact("faq2", [table]).model_id


@pytest.mark.parametrize("name, message", [
    ("gguf", "packaged with --gguf"), ("safetensors", "--safetensors-dir"),
    ("diffusers", "--safetensors-dir"), ("dduf", "--dduf"),
    ("FAQ", "invalid format name"), ("", "invalid format name"), ("a/b", "invalid format name"),
    ("x" * 65, "invalid format name"),
])
def test_dmr_formats_and_odd_names_are_refused(table, name, message):
    with pytest.raises(PackagingError, match=message):
        build_format_artifact(name, [table])


def test_files_with_one_name_or_none_at_all_are_refused(table, tmp_path):
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / table.name
    twin.write_text("{}")
    with pytest.raises(PackagingError, match="distinct names"):
        build_format_artifact("faq", [table, twin])
    with pytest.raises(PackagingError, match="at least one --file"):
        build_format_artifact("faq", [])
    with pytest.raises(PackagingError, match="does not exist"):
        build_format_artifact("faq", [tmp_path / "missing.json"])


def test_config_items_are_json_when_they_parse_and_text_otherwise():
    assert parse_config_items(["context_size=4096", "greedy=true", "name=smol", 'id="007"',
                               "empty=", 'extra={"a": [1]}']) == \
        {"context_size": 4096, "greedy": True, "name": "smol", "id": "007", "empty": "",
         "extra": {"a": [1]}}


@pytest.mark.parametrize("item, message", [
    ("novalue", "KEY=VALUE"), ("=x", "KEY=VALUE"), ("a b=1", "KEY=VALUE"),
    ("format=gguf", "written by the packager"), ("size=1GiB", "written by the packager"),
])
def test_bad_config_items_are_refused(item, message):
    with pytest.raises(PackagingError, match=message):
        parse_config_items([item])


@pytest.mark.parametrize("size", [0, -1, True, "big", 2**31])
def test_a_bad_context_size_is_refused(table, size):
    with pytest.raises(PackagingError, match="invalid context size"):
        build_format_artifact("faq", [table], config={"context_size": size})


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    # no engine at all (the OCI source only, for push and pull): none serves faq models here
    with Server(tmp_path_factory.mktemp("formats") / "models",
                env={"MODELRUNNER_PLUGINS": "oci"}) as server:
        yield server


def test_model_package_format_stores_the_files_for_the_formats_engine(srv, table):
    result = srv.model("package", "--format", "faq", "--file", str(table),
                       "--config", "language=en", "--context-size", "128", "ai/faq")
    assert "Model packaged as" in result.stdout
    # no engine of this server serves faq models: said, and the model is stored all the same
    assert "no engine installed on the server serves faq models" in result.stderr
    info = json.loads(srv.model("inspect", "ai/faq").stdout)
    assert info["config"] == {"format": "faq", "language": "en", "context_size": 128,
                              "size": info["config"]["size"]}
    bundle = FilesystemStore(srv.models_path).bundle(FilesystemStore(srv.models_path).get("ai/faq"))
    assert (bundle.model_dir / "answers.json").read_text() == table.read_text()
    assert bundle.format == "faq"


@pytest.mark.parametrize("args, message", [
    (["--format", "gguf", "--file", "{table}"], "gguf models are packaged with --gguf"),
    (["--gguf", "{table}", "--file", "{table}"], "--file and --config go with --format"),
    (["--format", "faq"], "needs at least one --file"),
    (["--format", "faq", "--file", "{table}", "--config", "format=x"], "written by the packager"),
    (["--format", "faq", "--file", "{table}", "--chat-template", "{table}"],
     "--chat-template and --mmproj go with --gguf"),
    (["--format", "faq", "--dduf", "{table}", "--file", "{table}"], "exactly one of"),
])
def test_bad_format_packaging_is_a_one_line_error_and_stores_nothing(srv, table, args, message):
    before = srv.model("ls", "-q").stdout
    result = srv.model("package", *[a.format(table=table) for a in args], "ai/bad", check=False)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert srv.model("ls", "-q").stdout == before


def test_a_format_model_pushes_and_pulls_back_as_the_same_model(srv, table, tmp_path):
    from plugins.oci.tests.oci_registry import start_registry, stop_registry
    registry = start_registry(tmp_path / "registry")
    try:
        ref = f"{registry.host}/tests/faq:v1"
        srv.model("package", "--format", "faq", "--file", str(table), ref)
        before = json.loads(srv.model("inspect", ref).stdout)
        srv.model("push", ref)
        srv.model("rm", ref)
        srv.model("pull", ref)
        after = json.loads(srv.model("inspect", ref).stdout)
        assert (after["id"], after["config"]) == (before["id"], before["config"])
        assert after["config"]["format"] == "faq"
    finally:
        stop_registry(registry)
