"""OpenAI's ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (also under
/engines/v1/ and /engines/{engine}/v1/, like the OpenAI dialect's routes).

A multipart form, as OpenAI's clients send it: ``file`` (the audio), ``model``, and optionally
``language`` (ISO 639-1), ``prompt``, ``temperature`` (0 to 1), ``response_format`` (json, text,
srt, vtt, verbose_json), ``timestamp_granularities[]`` (segment, word; for verbose_json) and
``stream``. The route checks them (each bad one is a 400 in OpenAI's error shape, naming the
field), converts audio whisper.cpp cannot read (audio.py), and sends the model's runner
whisper-server's own form through the core's gateway (``runtime.open``: load on demand,
keep-alive, the request inspector and metrics). The upload's size is bounded by the
``whisper_max_upload`` setting (413 above it).
"""

import secrets

from modelrunner import GatewayError, ModelRunnerError, parse_json

from . import audio, formats
from .engine import MODE, WhisperEngine
from .ggml_file import LANGUAGES

PREFIXES = ("/engines/{engine}/v1", "/engines/v1", "/v1")
MAX_UPLOAD = WhisperEngine.defaults["whisper_max_upload"]
FORM_OVERHEAD = 1 << 20  # the form's other fields, bounded by Falcon's part buffer (1 MiB)
MAX_PARTS = 32           # OpenAI's form has ten fields; a chunked body has no Content-Length
MAX_FIELDS_BYTES = 256 << 10   # all fields but the file together (the prompt is the longest)
FALSE, TRUE = ("0", "false", "no", "off", ""), ("1", "true", "yes", "on")


def bad(message, param):
    return ModelRunnerError(message, status=400, param=param, kind="invalid_request_error")


def _form(req, limit):
    """{field: text} and (filename, bytes) of the upload, read once and bounded."""
    if (req.content_type or "").split(";")[0].strip().lower() != "multipart/form-data":
        raise bad("send the audio as multipart/form-data, with the audio in the field 'file'",
                  "file")
    if req.content_length is None:   # chunked: neither the body limit nor Falcon's parser
        raise ModelRunnerError("send the form with a Content-Length (not chunked)", status=411,
                               kind="invalid_request_error")
    fields, upload, parts, size = {}, None, 0, 0
    for part in req.get_media():
        parts += 1
        if parts > MAX_PARTS:
            raise bad(f"the form has more than {MAX_PARTS} fields", None)
        part_name = part.name or ""   # a part without a name: an unknown field, ignored
        if part_name == "file":
            if upload is not None:
                raise bad("send one audio file per request", "file")
            data = part.stream.read(limit + 1)
            if len(data) > limit:
                raise ModelRunnerError(f"the audio file is larger than {limit} bytes (the "
                                       f"whisper_max_upload setting)", status=413, param="file")
            upload = (part.secure_filename if part.filename else "audio", data)
        else:
            name = part_name[:-2] if part_name.endswith("[]") else part_name
            text = part.get_text() or ""
            size += len(text)
            if size > MAX_FIELDS_BYTES:
                raise ModelRunnerError(f"the form's fields are larger than {MAX_FIELDS_BYTES} "
                                       f"bytes", status=413, param=name[:40])
            if name == "timestamp_granularities":
                fields.setdefault(name, []).append(text)
            else:
                fields[name] = text
    if upload is None:
        raise bad("the audio file is missing: send it in the form field 'file'", "file")
    return fields, upload


def _options(fields):
    """The request's options, checked: (model, response_format, granularities, form for the
    runner, stream)."""
    model = fields.get("model")
    if not model:
        raise bad("model is required", "model")
    response_format = fields.get("response_format") or "json"
    if response_format not in formats.FORMATS:
        raise bad(f"response_format must be one of {', '.join(formats.FORMATS)}, not "
                  f"{response_format[:40]!r}", "response_format")
    granularities = []
    for value in fields.get("timestamp_granularities") or ["segment"]:
        # a JSON list in one field (some clients) or one value per field (OpenAI's)
        values = parse_json(value) if value.startswith("[") else [value]
        for item in values if isinstance(values, list) else [values]:
            if item not in ("segment", "word"):
                raise bad(f"timestamp_granularities takes 'segment' and 'word', not {item!r}",
                          "timestamp_granularities")
            granularities.append(item)
    runner = {"response_format": "verbose_json", "no_language_probabilities": "true",
              "token_timestamps": "true" if "word" in granularities else "false"}
    language = (fields.get("language") or "").strip().lower()
    if language and language not in LANGUAGES:
        raise bad(f"language must be an ISO-639-1 code whisper knows (en, fr, de...), not "
                  f"{language[:20]!r}", "language")
    runner["language"] = language or "auto"
    if fields.get("temperature"):
        try:
            temperature = float(fields["temperature"])
        except ValueError:
            temperature = -1.0
        if not 0.0 <= temperature <= 1.0:
            raise bad("temperature must be a number from 0 to 1", "temperature")
        runner["temperature"] = repr(temperature)
    if fields.get("prompt"):
        runner["prompt"] = fields["prompt"]
    stream = (fields.get("stream") or "").strip().lower()
    if stream not in FALSE + TRUE:
        raise bad("stream must be true or false", "stream")
    return model, response_format, granularities, runner, stream in TRUE


def multipart(fields, filename, data):
    """(content type, body): whisper-server's form."""
    boundary = "mr-" + secrets.token_hex(16)
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   .encode() + str(value).encode() + b"\r\n")
    safe = filename.replace('"', "").replace("\r", "").replace("\n", "") or "audio"
    out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
               f'filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
               + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(out)


class AudioResource:
    """One of OpenAI's audio routes; ``task`` "transcribe" or "translate"."""

    scope = "inference"        # API keys: an inference key may transcribe
    dialect = "openai"         # errors in OpenAI's shape (the openai plugin's renderer)
    accepts_multipart = True   # the trust layer lets this route take multipart/form-data

    def __init__(self, runtime, task):
        self.runtime = runtime
        self.task = task
        self.limit = int(runtime.settings.get("whisper_max_upload", None) or MAX_UPLOAD)
        self.max_body = self.limit + FORM_OVERHEAD   # 413 before anything is read
        self.max_seconds = int(runtime.settings.get("whisper_max_seconds", None)
                               or audio.MAX_SECONDS)

    def on_post(self, req, resp, engine=None):
        fields, (filename, data) = _form(req, self.limit)
        model, response_format, granularities, runner, stream = _options(fields)
        if self.task == "translate":
            runner["translate"] = "true"
        # what the model, engine and mode are is checked before any audio is converted
        self.runtime.check(model, "/inference", b"", engine=engine, mode=MODE)
        data, filename = audio.prepare(data, filename, self.max_seconds)
        content_type, body = multipart(runner, filename, data)
        # the runner's errors come back as answers; the gateway's own (before sending) raise
        answer = self.runtime.open(model, "/inference", body, engine=engine, mode=MODE,
                                   headers={"Content-Type": content_type}, request=req,
                                   raise_for_status=False)
        if answer.status == 400:   # whisper-server's one 400 for a form it accepts: the audio
            answer.close()
            raise audio.bad_audio(f"could not read the audio ({filename}): whisper.cpp cannot "
                                  f"decode it as WAV, MP3 or FLAC")
        if answer.status >= 400:
            text = answer.read().decode("utf-8", "replace")[:300]
            raise GatewayError(f"whisper-server answered {answer.status}: {text}",
                               status=answer.status)
        verbose = answer.json()
        if stream:
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.data = b"".join(formats.stream_events(verbose))
            return
        resp.content_type, resp.data = formats.render(
            verbose, response_format, granularities, task=self.task,
            temperature=float(runner.get("temperature", 0.0)))


def register(app, runtime):
    for prefix in PREFIXES:
        app.add_route(prefix + "/audio/transcriptions", AudioResource(runtime, "transcribe"))
        app.add_route(prefix + "/audio/translations", AudioResource(runtime, "translate"))
