"""References are normalised exactly as Docker Model Runner does (distribution/normalize_test.go)."""

import pytest

from modelrunner import reference as refs

NORMALISED = [
    ("smollm2", "docker.io/ai/smollm2:latest"),
    ("  smollm2  ", "docker.io/ai/smollm2:latest"),
    ("ai/smollm2", "docker.io/ai/smollm2:latest"),
    ("smollm2:135M-Q4_K_M", "docker.io/ai/smollm2:135M-Q4_K_M"),
    ("SmolLM2:Q4_K_M", "docker.io/ai/smollm2:Q4_K_M"),
    ("docker.io/ai/smollm2", "docker.io/ai/smollm2:latest"),
    ("index.docker.io/ai/smollm2:v1", "docker.io/ai/smollm2:v1"),
    ("myorg/mymodel", "docker.io/myorg/mymodel:latest"),
    ("localhost:5000/org/model:v2", "localhost:5000/org/model:v2"),
    ("registry.example.com/a/b/c:tag", "registry.example.com/a/b/c:tag"),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
     "huggingface.co/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M"),
    ("huggingface.co/Org/Repo", "huggingface.co/org/repo:latest"),
    ("ai/smollm2@sha256:" + "a" * 64, "docker.io/ai/smollm2@sha256:" + "a" * 64),
]


@pytest.mark.parametrize("text, expected", NORMALISED)
def test_reference_is_normalised_as_dmr_does(text, expected):
    assert refs.normalize(text) == expected


def test_hugging_face_reference_keeps_the_original_case_for_api_calls():
    ref = refs.parse("hf.co/Org/Repo-GGUF:UD-Q4_K_XL")
    assert ref.is_huggingface
    assert ref.original_name == "Org/Repo-GGUF"
    assert ref.tag == "UD-Q4_K_XL"


INVALID = ["", "   ", "/etc/passwd", "../../etc/passwd", "ai/../x", "a b", "UPPER/../x:tag",
           "model:bad tag", "model:-x", "ai/smollm2@sha256:short", "hf.co/onlyorg", "x\\y",
           "ai//smollm2", "ai/smollm2:" + "t" * 200]


@pytest.mark.parametrize("text", INVALID)
def test_malformed_reference_is_rejected_with_a_reason(text):
    with pytest.raises(refs.InvalidReference) as error:
        refs.parse(text)
    assert str(error.value)


@pytest.mark.parametrize("text, is_id", [
    ("0123456789ab", True), ("a" * 64, True), ("sha256:" + "b" * 64, True),
    ("0123456789abc", False), ("smollm2", False), ("sha256:" + "b" * 12, True), ("", False),
])
def test_hex_ids_and_digests_name_models_in_the_store(text, is_id):
    assert refs.is_model_id(text) is is_id


@pytest.mark.parametrize("tag, shown", [
    ("docker.io/ai/smollm2:latest", "smollm2"),
    ("docker.io/ai/smollm2:Q4", "smollm2:Q4"),
    ("docker.io/myorg/m:latest", "myorg/m"),
    ("huggingface.co/org/repo:Q4_K_M", "huggingface.co/org/repo:Q4_K_M"),
    ("localhost:5000/a/b:latest", "localhost:5000/a/b"),
])
def test_model_ls_shows_names_as_dmr_does(tag, shown):
    assert refs.display(tag) == shown
