"""A diffusers pipeline directory packages as format "diffusers", not as a safetensors text model."""

import json
import shutil

import pytest

from modelrunner import model_files


def test_pipeline_directory_is_format_diffusers(tiny_sd_dir):
    a = model_files.build_safetensors_artifact(tiny_sd_dir)
    c = json.loads(a.config_bytes)["config"]
    assert c["format"] == "diffusers"
    assert c["architecture"] == "StableDiffusionPipeline"
    assert c["diffusers"]["_class_name"] == "StableDiffusionPipeline"
    assert c["diffusers"]["_diffusers_version"]
    assert "context_size" not in c  # the text encoder's 77 tokens are not a context window
    assert c["quantization"] == "F32"
    assert c["parameters"].endswith("M") or c["parameters"].endswith("K")
    paths = sorted(layer.filepath for layer in a.layers)
    assert "model_index.json" in paths and "unet/diffusion_pytorch_model.safetensors" in paths
    assert a.model_id == model_files.build_safetensors_artifact(tiny_sd_dir).model_id


def test_text_model_directory_stays_safetensors(tmp_path, tiny_sd_dir):
    text = tmp_path / "text"
    shutil.copytree(tiny_sd_dir / "text_encoder", text)
    c = json.loads(model_files.build_safetensors_artifact(text).config_bytes)["config"]
    assert c["format"] == "safetensors"
    assert c["architecture"] == "CLIPTextModel"


def test_bad_model_index(tmp_path, tiny_sd_dir):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_sd_dir, bad)
    (bad / "model_index.json").write_text('{"unet": ["diffusers", "UNet2DConditionModel"]}')
    with pytest.raises(model_files.PackagingError, match="_class_name"):
        model_files.build_safetensors_artifact(bad)
    (bad / "model_index.json").write_text("{not json")
    with pytest.raises(model_files.PackagingError, match="model_index.json"):
        model_files.build_safetensors_artifact(bad)
