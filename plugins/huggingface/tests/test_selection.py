"""Which files of a repository listing make the model: DMR's SelectGGUFFiles rules, no Hub needed."""

import pytest

from modelrunner_huggingface.selection import (
    QuantNotFound, RemoteFile, available_quants, contains_quant, keep, quant_label, select_chat_template,
    select_gguf, select_safetensors)


def listing(*paths):
    return [RemoteFile(p, 10) for p in paths]


def names(files):
    return [f.path for f in files]


def test_keep_weights_and_configs_only():
    kept = [p for p in ("model.gguf", "a/model-00001-of-00002.safetensors", "config.json", "merges.txt",
                        "README.md", "spm.vocab", "tokenizer.model", "chat_template.jinja", "chat_template.json",
                        ".gitattributes", ".cache/x.json", "train.py", "pytorch_model.bin", "LICENSE",
                        "original/params.json") if keep(p)]
    assert kept == ["model.gguf", "a/model-00001-of-00002.safetensors", "config.json", "merges.txt", "README.md",
                    "spm.vocab", "tokenizer.model", "chat_template.jinja", "chat_template.json",
                    "original/params.json"]


@pytest.mark.parametrize("filename,quant,expected", [
    ("model-Q4_K_M.gguf", "Q4_K_M", True),
    ("model.q4_k_m.gguf", "Q4_K_M", True),
    ("model_Q4_K_M-00001-of-00003.gguf", "q4_k_m", True),
    ("model-Q4_K_M.gguf", "Q4_K", True),       # "_" after it is a separator, as in DMR
    ("model-Q4_K_M.gguf", "Q4_K_", False),
    ("model-IQ4_XS.gguf", "Q4_XS", False),     # must follow a separator
    ("model-UD-Q4_K_XL.gguf", "UD-Q4_K_XL", True),
    ("model-UD-Q4_K_XL.gguf", "Q4_K_XL", True),
])
def test_quant_matching_follows_dmr(filename, quant, expected):
    assert contains_quant(filename, quant) is expected


@pytest.mark.parametrize("tag", [None, "", "latest", "main"])
def test_default_tags_mean_Q4_K_M(tag):
    files = listing("m-F16.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf")
    weights, mmproj = select_gguf(files, tag)
    assert names(weights) == ["m-Q4_K_M.gguf"] and mmproj is None


def test_default_without_Q4_K_M_is_the_alphabetically_first_with_its_shards():
    files = listing("m-Q8_0.gguf", "B/m-BF16-00002-of-00002.gguf", "B/m-BF16-00001-of-00002.gguf", "m-F16.gguf")
    weights, _ = select_gguf(files, "latest")
    assert names(weights) == ["B/m-BF16-00001-of-00002.gguf", "B/m-BF16-00002-of-00002.gguf"]


def test_single_model_file_is_taken_whatever_the_default():
    weights, _ = select_gguf(listing("only-Q6_K.gguf", "mmproj-Q8_0.gguf"), "latest")
    assert names(weights) == ["only-Q6_K.gguf"]


def test_shards_come_in_order_from_any_matching_shard():
    files = listing("Q3/m-Q3_K_M-00003-of-00003.gguf", "Q3/m-Q3_K_M-00001-of-00003.gguf",
                    "Q3/m-Q3_K_M-00002-of-00003.gguf", "m-Q4_K_M.gguf")
    weights, _ = select_gguf(files, "Q3_K_M")
    assert names(weights) == ["Q3/m-Q3_K_M-00001-of-00003.gguf", "Q3/m-Q3_K_M-00002-of-00003.gguf",
                              "Q3/m-Q3_K_M-00003-of-00003.gguf"]


def test_mmproj_is_apart_and_F16_preferred():
    files = listing("m-Q4_K_M.gguf", "m-F16.gguf", "mmproj-BF16.gguf", "mmproj-F16.gguf", "mmproj-F32.gguf")
    weights, mmproj = select_gguf(files, "F16")
    assert names(weights) == ["m-F16.gguf"]
    assert mmproj.path == "mmproj-F16.gguf"


def test_explicit_missing_quant_lists_what_the_repo_has():
    files = listing("m-Q4_K_M.gguf", "UD-Q4_K_XL/m-UD-Q4_K_XL.gguf", "Q2_K/m-Q2_K-00001-of-00002.gguf",
                    "Q2_K/m-Q2_K-00002-of-00002.gguf", "mmproj-F16.gguf", "m-IQ4_XS.gguf", "m.Q5_K_S.gguf")
    with pytest.raises(QuantNotFound) as err:
        select_gguf(files, "Q9_K")
    assert err.value.available == ["IQ4_XS", "Q2_K", "Q4_K_M", "Q5_K_S", "UD-Q4_K_XL"]


@pytest.mark.parametrize("filename,label", [
    ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
    ("model-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
    ("model-bf16-00001-of-00004.gguf", "bf16"),
    ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
    ("weird-name.gguf", "name"),
])
def test_quant_labels(filename, label):
    assert quant_label(filename) == label


def test_chat_template_preference():
    assert select_chat_template(listing("a.jinja", "sub/chat_template.jinja", "template.jinja")).path == "sub/chat_template.jinja"
    assert select_chat_template(listing("z.jinja", "template.jinja")).path == "template.jinja"
    assert select_chat_template(listing("config.json")) is None


def test_safetensors_selection_keeps_configs_and_subfolders():
    files = listing("model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors", "config.json",
                    "tokenizer.json", "vae/diffusion.safetensors", "train.py", ".gitattributes")
    assert names(select_safetensors(files)) == ["config.json", "model-00001-of-00002.safetensors",
                                                "model-00002-of-00002.safetensors", "tokenizer.json",
                                                "vae/diffusion.safetensors"]
    assert available_quants(files) == []


@pytest.mark.parametrize("path", ["/etc/cron.d/x.json", "a/../../x.txt", "./config.json",
                                  "sub//model.safetensors", "..\\x.json", ".git/config.json"])
def test_a_hostile_listing_cannot_name_a_file_outside_the_model(path):
    assert not keep(path)
