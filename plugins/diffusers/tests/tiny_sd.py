"""A tiny random-weight Stable Diffusion pipeline, built from configs (nothing downloaded).

    python -m plugins.diffusers.tests.tiny_sd OUT_DIR [--dduf FILE]

UNet (32, 64) channels, one layer per block, cross-attention 32, latent 32x32; VAE (32, 64)
channels, 4 latent channels (scale factor 2, so images default to 64x64); a 2-layer CLIP text
encoder (hidden 32, 2 heads, vocab 1000) with a character-level CLIP tokenizer made here; DDIM.
About 6 MB of float32 safetensors; a 64x64 image in 2 steps takes well under a second on CPU.

It runs in a subprocess of the tests so that torch is never imported into pytest itself.
"""

import argparse
import json
import os
import string
import sys
import tempfile
from pathlib import Path

FIXED_MTIME = 1_700_000_000


def vocab():
    """A byte-level-BPE vocab for CLIPTokenizer: single characters, each also with "</w>"."""
    tokens = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + ".,!?'-":
        tokens[ch] = len(tokens)
        tokens[ch + "</w>"] = len(tokens)
    return tokens


def build(out_dir, seed=0):
    from modelrunner_diffusers.runner import hide_broken_torch_extensions

    hide_broken_torch_extensions()
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=32)
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4,
        norm_num_groups=32, sample_size=64)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-5, num_attention_heads=2, num_hidden_layers=2, vocab_size=1000,
        max_position_embeddings=77))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab()))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                                  model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder,
                                   tokenizer=tokenizer, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    out = Path(out_dir)
    pipe.save_pretrained(out, safe_serialization=True)
    # fixed times: the same build packages to the same model ID
    for root, _, files in os.walk(out):
        for name in files:
            os.utime(os.path.join(root, name), (FIXED_MTIME, FIXED_MTIME))
    return out


def export_dduf(folder, dduf_path):
    """Write ``folder`` as a DDUF file (huggingface_hub's exporter); False if unavailable."""
    try:
        from huggingface_hub import export_folder_as_dduf
    except ImportError:
        return False
    export_folder_as_dduf(str(dduf_path), folder_path=str(folder))
    os.utime(dduf_path, (FIXED_MTIME, FIXED_MTIME))
    return True


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--dduf", help="also export the pipeline as this .dduf file")
    args = parser.parse_args(argv)
    build(args.out_dir)
    if args.dduf and not export_dduf(args.out_dir, args.dduf):
        print("no-dduf: huggingface_hub has no export_folder_as_dduf")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
