"""`model run` on an image model: generate, write PNG file(s) in the current directory.

``run.py`` calls :func:`is_image_model` first and, for a model whose engine generates images and
does not chat, hands the prompt to :func:`run_image` instead of chatting. What an engine does is
the server's to say (GET /engines/options: each engine's formats and modes); the CLI names no
engine nor format.
"""

import base64
import re
import sys
import time
from pathlib import Path

import click

from .model_modes import serves_only


def is_image_model(client, model):
    """Whether the stored ``model`` is for image generation: its engines draw, none chats."""
    return serves_only(client, model, "image-generation")


def image_filename(prompt, when=None, index=None, directory="."):
    """``<slug of the prompt>-<YYYYmmdd-HHMMSS>[-i].png`` in ``directory``, never an existing file."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-").lower()[:48].rstrip("-") or "image"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when if when is not None else time.time()))
    base = f"{slug}-{stamp}" + (f"-{index}" if index is not None else "")
    path = Path(directory) / f"{base}.png"
    n = 1
    while path.exists():
        n += 1
        path = Path(directory) / f"{base}_{n}.png"
    return path


def run_image(client, model, prompt, *, n=1, size=None, seed=None, steps=None,
              negative_prompt=None, directory="."):
    """Generate ``n`` image(s) for ``prompt`` with ``model``; write them as PNG, print the paths.

    Returns the list of paths written. Errors (400 for a bad size, 412 engine not installed...)
    exit with the server's message, as every `model` command does.
    """
    if isinstance(prompt, (list, tuple)):
        prompt = " ".join(prompt)
    prompt = (prompt or "").strip()
    if not prompt:
        if sys.stdin is not None and not sys.stdin.isatty():
            prompt = sys.stdin.read().strip()
        if not prompt:
            prompt = click.prompt("Describe the image")
    body = {"model": model, "prompt": prompt, "n": n, "response_format": "b64_json"}
    for key, value in (("size", size), ("seed", seed), ("num_inference_steps", steps),
                       ("negative_prompt", negative_prompt)):
        if value is not None:
            body[key] = value
    click.echo(f"Generating {n} image{'s' if n > 1 else ''} with {model}...", err=True)
    started = time.time()
    data = client.json("POST", "/engines/v1/images/generations", json=body)
    paths = []
    images = data.get("data") or []
    for i, item in enumerate(images):
        path = image_filename(prompt, started, i + 1 if len(images) > 1 else None, directory)
        path.write_bytes(base64.b64decode(item["b64_json"]))
        paths.append(path)
        click.echo(str(path))
    return paths
