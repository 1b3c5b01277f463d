"""`model run` on a speech-to-text model: transcribe the audio file(s) given, print the text.

``run.py`` asks :func:`is_transcription_model` after the image check and, for a model whose
engines transcribe and do not chat, hands the arguments to :func:`run_audio`: each is an audio
file, sent to OpenAI's ``/engines/v1/audio/transcriptions`` as any client would. As for images,
what an engine does is the server's to say (GET /engines/options: formats and modes); the CLI
names no engine nor format.
"""

import secrets
from pathlib import Path

import click

from .client import fail
from .model_modes import serves_only

MODE = "transcription"


def is_transcription_model(client, model):
    """Whether the stored ``model`` transcribes: its engines transcribe, none chats."""
    return serves_only(client, model, MODE)


def form(fields, path):
    """(content type, body) of a multipart form with ``fields`` and the file at ``path``: the
    CLI's own HTTP client sends bytes, not forms."""
    boundary = "model-run-" + secrets.token_hex(12)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    name = path.name.replace('"', "").replace("\r", "").replace("\n", "")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                 + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def run_audio(client, model, paths):
    """Print the transcript of each audio file in ``paths`` (a blank line between files)."""
    if not paths:
        fail(f"{model} transcribes speech: give it audio files (model run {model} FILE...)")
    for i, name in enumerate(paths):
        path = Path(name)
        if not path.is_file():
            fail(f"{name}: no such audio file")
        content_type, body = form({"model": model, "response_format": "text"}, path)
        resp = client.request("POST", "/engines/v1/audio/transcriptions", content=body,
                              headers={"Content-Type": content_type}, timeout=None)
        if i:
            click.echo()
        click.echo(resp.text.strip())
