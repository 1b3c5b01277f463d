"""`package --from`'s manifest arithmetic (packaging/repackage.py): the weights' layers are the
same digests, only the config and a new template are new blobs."""

import json

import pytest

from modelrunner.packaging import PackagingError
from modelrunner.packaging.artifact import (ANNOTATION_FILEPATH, MEDIA_TYPE_CHAT_TEMPLATE,
                                            MEDIA_TYPE_CNCF_CONFIG_V1, build_gguf_artifact)
from modelrunner.packaging.repackage import repackage
from modelrunner.testing import write_small_gguf


@pytest.fixture
def artifact(tmp_path):
    template = tmp_path / "old.jinja"
    template.write_text("{{ messages }}")
    return build_gguf_artifact(write_small_gguf(tmp_path / "m.gguf"), chat_template=template)


def test_a_new_context_size_is_a_new_config_and_nothing_else(artifact):
    made = repackage(artifact.manifest, artifact.config, context_size=1024)
    manifest = json.loads(made.manifest_bytes)
    assert manifest["layers"] == artifact.manifest["layers"]
    [(digest, data)] = made.blobs.items()
    assert manifest["config"]["digest"] == digest != artifact.config_digest
    assert json.loads(data)["config"]["context_size"] == 1024
    assert made.model_id != artifact.model_id
    # the same change twice is the same model (deterministic bytes)
    assert repackage(artifact.manifest, artifact.config, context_size=1024).model_id == made.model_id


def test_a_new_chat_template_replaces_the_old_one_under_its_name(artifact):
    made = repackage(artifact.manifest, artifact.config, chat_template="{{ 'hi' }}")
    manifest = json.loads(made.manifest_bytes)
    templates = [d for d in manifest["layers"] if d["mediaType"] == MEDIA_TYPE_CHAT_TEMPLATE]
    assert len(templates) == 1 and made.blobs[templates[0]["digest"]] == b"{{ 'hi' }}"
    assert templates[0]["annotations"][ANNOTATION_FILEPATH] == "old.jinja"
    weights = [d for d in manifest["layers"] if d["mediaType"] != MEDIA_TYPE_CHAT_TEMPLATE]
    assert weights == [d for d in artifact.manifest["layers"]
                       if d["mediaType"] != MEDIA_TYPE_CHAT_TEMPLATE]
    config = json.loads(made.blobs[manifest["config"]["digest"]])
    assert config["rootfs"]["diff_ids"] == [d["digest"] for d in manifest["layers"]]


@pytest.mark.parametrize("change", [{}, {"context_size": 0}, {"context_size": "4k"},
                                    {"context_size": True}, {"chat_template": ""},
                                    {"chat_template": 3}])
def test_no_change_or_a_bad_value_is_refused(artifact, change):
    with pytest.raises(PackagingError):
        repackage(artifact.manifest, artifact.config, **change)


def test_a_cncf_model_has_no_context_size_to_change(artifact):
    manifest = dict(artifact.manifest, config=dict(artifact.manifest["config"],
                                                   mediaType=MEDIA_TYPE_CNCF_CONFIG_V1))
    with pytest.raises(PackagingError, match="cannot be repackaged"):
        repackage(manifest, artifact.config, context_size=10)
