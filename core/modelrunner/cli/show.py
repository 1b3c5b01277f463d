"""`model show`: one model's details for people (DMR's show.go layout), where `inspect` prints
the server's JSON for programs.

What it prints is what the server answers, named by no engine: DMR's config lines, then each
line of ``details`` (what the engine serving the model says about running it, such as its chat
template and why), then every metadata map in the config (``gguf``, ``safetensors``, or whatever
map an engine's format puts there) as its own block."""

import json
import time

import click

from .client import Client
from .terminal import echo

CONFIG_LINES = [("format", "Format"), ("architecture", "Architecture"),
                ("parameters", "Parameters"), ("size", "Size"),
                ("quantization", "Quantization"), ("context_size", "Context Size")]


def _title(key):
    """A config map's block title: ``gguf`` -> GGUF (a short name is an acronym: GGUF, DDUF),
    ``safetensors`` -> Safetensors."""
    return key.upper() if len(key) <= 4 else key[:1].upper() + key[1:]


def _text(value):
    return value if isinstance(value, str) else json.dumps(value)


def format_model(model):
    lines = [f"Model:       {model['id']}"]
    if model.get("tags"):
        lines.append(f"Tags:        {', '.join(model['tags'])}")
    if model.get("created"):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(model["created"]))
        lines.append(f"Created:     {stamp}")
    config = model.get("config") or {}
    if config:
        lines.append("")
        for key, label in CONFIG_LINES:
            if config.get(key) not in (None, ""):
                lines.append(f"{label + ':':<13} {config[key]}")
    details = model.get("details") or {}
    if isinstance(details, dict) and details:
        lines.append("")
        for key, value in details.items():
            label = str(key).replace("_", " ").capitalize() + ":"
            lines.append(f"{label:<13} {_text(value)}")
    for key, value in config.items():
        if isinstance(value, dict) and value:
            lines += ["", f"{_title(key)} Metadata:"]
            lines += [f"  {k}: {v}" for k, v in sorted(value.items())]
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("model")
@click.option("-r", "--remote", is_flag=True, help="Show a model in its registry, not the store")
def show(model, remote):
    """Show a model's details in a human-readable form."""
    params = {"remote": "true"} if remote else None
    echo(format_model(Client().json("GET", f"/models/{model}", params=params)), nl=False)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation")
def purge(force):
    """Remove every model from the store."""
    if not force:
        click.confirm("WARNING: This will remove all models from the store. Continue?",
                      abort=True)
    data = Client().json("DELETE", "/models/purge")
    echo(data.get("message", "Purged the model store"))
