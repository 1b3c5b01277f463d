"""Model management in Ollama's shapes: version, tags, show, ps, delete, copy, blobs, create."""

import json
import re
import time

import falcon

import modelrunner
from modelrunner import (BrokenModel, SchedulerError, StoreError, UPLOAD, __version__, media_types,
                         model_files, references, store_operation, units)

from .errors import OllamaError, not_found
from .util import model_name, ollama_name, read_json, rfc3339

EMBEDDING_ARCHITECTURES = ("bert", "nomic-bert", "jina-bert-v2", "t5encoder", "xlm-roberta",
                           "modern-bert", "neo-bert")


def find(runtime, name):
    """The stored model for an Ollama name; 404 ``model 'x' not found``, 400 for junk names."""
    try:
        return runtime.store.get(name)
    except references.InvalidReference as e:
        raise OllamaError(400, str(e)) from None
    except BrokenModel as e:
        raise OllamaError(e.status, str(e)) from None
    except StoreError:
        raise not_found(name) from None


def ollama_settings(model):
    """What /api/create recorded: {system, template, parameters, messages, license, parent}."""
    return model.inner_config.get("ollama") or {}


def details(model):
    config = model.inner_config
    arch = config.get("architecture") or ""
    return {"parent_model": ollama_settings(model).get("parent", ""),
            "format": config.get("format") or "gguf",
            "family": arch, "families": [arch] if arch else None,
            "parameter_size": config.get("parameters") or "",
            "quantization_level": config.get("quantization") or ""}


def digest_hex(model):
    return model.id.split(":", 1)[1]


def tag_entry(model, tag):
    name = ollama_name(tag)
    return {"name": name, "model": name, "modified_at": rfc3339(model.created or time.time()),
            "size": model.size, "digest": digest_hex(model), "details": details(model)}


def layer_text(runtime, model, media_type):
    for layer in model.manifest.get("layers", []):
        if layer.get("mediaType") == media_type:
            try:
                return runtime.store.blob_path(layer["digest"]).read_text(errors="replace")
            except OSError:
                return None
    return None


def has_projector(model):
    return any(layer.get("mediaType", "").endswith(".mmproj")
               for layer in model.manifest.get("layers", []))


def chat_template(runtime, model):
    """The Jinja chat template the runner applies: a template layer, else the GGUF's."""
    return (layer_text(runtime, model, media_types.CHAT_TEMPLATE)
            or (model.inner_config.get("gguf") or {}).get("tokenizer.chat_template") or "")


def capabilities(runtime, model):
    config = model.inner_config
    gguf = config.get("gguf") or {}
    arch = config.get("architecture") or gguf.get("general.architecture") or ""
    if arch in EMBEDDING_ARCHITECTURES or f"{arch}.pooling_type" in gguf:
        return ["embedding"]
    caps = ["completion"]
    template = chat_template(runtime, model)
    if "tools" in template or "tool_call" in template:
        caps.append("tools")
    if "<think>" in template or "enable_thinking" in template or "reasoning" in template:
        caps.append("thinking")
    if has_projector(model):
        caps.append("vision")
    if "fim_prefix" in template or "suffix" in template:
        caps.append("insert")
    return caps


def _typed(value):
    """GGUF values are stored as strings in the config; give numbers and booleans back."""
    if not isinstance(value, str):
        return value
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d*(e[-+]?\d+)?", value, re.I):
        return float(value)
    return value


def model_info(model, verbose=False):
    gguf = model.inner_config.get("gguf") or {}
    info = {}
    for key, value in gguf.items():
        if key == "tokenizer.chat_template":
            continue
        if not verbose and key.startswith("tokenizer.ggml.") and isinstance(value, list):
            continue
        info[key] = _typed(value)
    count = _parameter_count(model.inner_config.get("parameters"))
    if count:
        info.setdefault("general.parameter_count", count)
    return info


def _parameter_count(text):
    match = re.fullmatch(r"([\d.]+)\s*([KMBT]?)", str(text or "").strip())
    if not match:
        return None
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]
    return int(float(match.group(1)) * scale)


def _param_value(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameters_text(params):
    lines = []
    for key, value in (params or {}).items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {_param_value(item)}")
    return "\n".join(lines)


def modelfile(name, settings, template, params):
    lines = ['# Modelfile generated by "ollama show"', f"FROM {name}"]
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    if settings.get("system"):
        lines.append(f'SYSTEM """{settings["system"]}"""')
    for key, value in (params or {}).items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {_param_value(item)}")
    for msg in settings.get("messages") or []:
        lines.append(f"MESSAGE {msg.get('role')} {json.dumps(msg.get('content', ''))}")
    if settings.get("license"):
        lines.append(f'LICENSE """{settings["license"]}"""')
    return "\n".join(lines) + "\n"


class VersionResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)

    def on_get(self, req, resp):
        resp.media = {"version": __version__}

    def on_head(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON


class TagsResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)

    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        entries = []
        for model in self.runtime.store.models():
            for tag in model.tags:
                entries.append(tag_entry(model, tag))
        resp.media = {"models": entries}

    def on_head(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON


class ShowResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        body = read_json(req)
        name = model_name(body)
        model = find(self.runtime, name)
        settings = ollama_settings(model)
        template = settings.get("template") or chat_template(self.runtime, model)
        params = dict(settings.get("parameters") or {})
        license_text = settings.get("license") or layer_text(self.runtime, model,
                                                             media_types.LICENSE) or ""
        result = {
            "license": license_text,
            "modelfile": modelfile(name, settings, template, params),
            "parameters": parameters_text(params),
            "template": template,
            "details": details(model),
            "model_info": model_info(model, bool(body.get("verbose"))),
            "capabilities": capabilities(self.runtime, model),
            "modified_at": rfc3339(model.created or time.time()),
        }
        if settings.get("system"):
            result["system"] = settings["system"]
        if settings.get("messages"):
            result["messages"] = settings["messages"]
        if has_projector(model):
            result["projector_info"] = {}
        resp.media = result


class PsResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)

    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        try:
            runners = self.runtime.runners()
        except SchedulerError as e:
            raise OllamaError(e.status, str(e)) from None
        models = []
        for runner in runners:
            if runner.get("loading"):
                continue
            try:
                model = self.runtime.store.get(runner["model_id"])
            except (StoreError, references.InvalidReference):
                continue
            name = ollama_name(runner.get("model_name") or model.id)
            expires = runner.get("expires_at")
            if expires is None:
                # in use (expires after the request) or kept forever: Ollama shows a far date
                keep = runner.get("keep_alive")
                expires = (time.time() + keep) if keep is not None and keep >= 0 else \
                    time.time() + 100 * 365 * 86400
            models.append({"name": name, "model": name, "size": int(runner.get("memory") or 0),
                           "digest": digest_hex(model), "details": details(model),
                           "expires_at": rfc3339(expires), "size_vram": 0,
                           "context_length": runner.get("context_size") or 0})
        resp.media = {"models": models}


class DeleteResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    def __init__(self, runtime):
        self.runtime = runtime

    def on_delete(self, req, resp):
        body = read_json(req)
        name = model_name(body)
        try:
            model = find(self.runtime, name)
        except OllamaError as e:
            if e.status_code_int != BrokenModel.status:
                raise
            model = None  # a broken entry is removed, never loaded
        if model is None or len(model.tags) <= 1:  # the model itself goes, not only a name
            try:
                if model is not None:
                    self.runtime.unload(models=[model.id])
            except SchedulerError:
                pass
        try:
            self.runtime.store.delete(name)
        except StoreError as e:
            raise OllamaError(e.status, str(e)) from None
        resp.media = {}


class CopyResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        body = read_json(req)
        source = model_name(body, "source")
        destination = body.get("destination")
        if not isinstance(destination, str) or not destination.strip():
            raise OllamaError(400, "destination is required")
        model = find(self.runtime, source)
        try:
            self.runtime.store.tag(model.id, destination.strip())
        except references.InvalidReference as e:
            raise OllamaError(400, str(e)) from None
        except StoreError as e:
            raise OllamaError(e.status, str(e)) from None
        resp.media = {}


def _digest(text):
    """Ollama writes blob digests as sha256:<hex> (and sha256-<hex> in file names)."""
    value = (text or "").strip().lower().replace("sha256-", "sha256:", 1)
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise OllamaError(400, f"invalid digest {text!r}: expected sha256:<64 hex>")
    return value


class BlobResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    max_body = UPLOAD  # a model upload: max_upload and the free disk space

    def __init__(self, runtime):
        self.runtime = runtime

    def on_head(self, req, resp, digest):
        resp.status = falcon.HTTP_200 if self.runtime.store.has_blob(_digest(digest)) \
            else falcon.HTTP_404

    def on_post(self, req, resp, digest):
        """The body goes to a temp file of its own, verified before it takes the digest's
        name; an upload that finds the blob published meanwhile checks its copy and drops it.
        The blob is kept although no model names it yet: a create names it next."""
        digest = _digest(digest)
        if not self.runtime.store.has_blob(digest):
            try:
                with store_operation(self.runtime.store, keep_unreferenced=True) as store:
                    store.write_blob(digest, req.bounded_stream)
            except StoreError as e:
                if e.status in (400, 422):
                    raise OllamaError(400, f"digest mismatch: {e}") from None
                raise OllamaError(e.status, str(e)) from None
        resp.status = falcon.HTTP_201


class CreateResource:
    """POST /api/create: a new model from an existing one (system, template, parameters,
    messages, license recorded in the config), or from uploaded GGUF blobs ("files")."""
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        body = read_json(req)
        name = model_name(body)
        try:
            target = references.normalize(name)
        except references.InvalidReference as e:
            raise OllamaError(400, str(e)) from None
        if body.get("quantize"):
            raise OllamaError(400, "quantize is not supported: quantize the GGUF before creating")
        if body.get("adapters"):
            raise OllamaError(400, "adapters are not supported")
        with store_operation(self.runtime.store) as store:
            return self._create(req, resp, body, target, store)

    def _create(self, req, resp, body, target, store):
        statuses = []
        if body.get("files"):
            layers, config = self._from_files(body["files"], statuses)
            parent = ""
        elif body.get("from"):
            base = find(self.runtime, body["from"])
            layers = [dict(layer) for layer in base.manifest.get("layers", [])]
            config = dict(base.inner_config)
            parent = body["from"]
            for layer in layers:
                statuses.append(f"using existing layer {layer['digest']}")
        else:
            raise OllamaError(400, "neither 'from' nor 'files' was specified")
        settings = dict(config.get("ollama") or {})
        settings["parent"] = parent or settings.get("parent", "")
        for key in ("system", "template", "license"):
            value = body.get(key)
            if isinstance(value, list):
                value = "\n".join(str(v) for v in value)
            if value:
                settings[key] = value
        if body.get("parameters"):
            if not isinstance(body["parameters"], dict):
                raise OllamaError(400, "parameters must be an object")
            params = dict(settings.get("parameters") or {})
            params.update(body["parameters"])
            settings["parameters"] = params
        if body.get("messages"):
            if not isinstance(body["messages"], list):
                raise OllamaError(400, "messages must be a list")
            settings["messages"] = [{"role": m.get("role"), "content": m.get("content", "")}
                                    for m in body["messages"] if isinstance(m, dict)]
        config["ollama"] = {k: v for k, v in settings.items() if v not in (None, "", [], {})}
        if not config["ollama"]:
            del config["ollama"]
        num_ctx = (settings.get("parameters") or {}).get("num_ctx")
        if isinstance(num_ctx, int) and num_ctx > 0:
            config["context_size"] = num_ctx
        created = units.rfc3339(time.time())
        full = {"config": {k: v for k, v in config.items() if v not in (None, "", {})},
                "descriptor": {"created": created},
                "rootfs": {"type": "rootfs", "diff_ids": [layer["digest"] for layer in layers]}}
        config_bytes = model_files.canonical_json(full)
        try:
            config_digest = store.write_blob_bytes(config_bytes)
        except StoreError as e:
            raise OllamaError(e.status, str(e)) from None
        statuses.append(f"writing config {config_digest}")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": media_types.CONFIG_V01, "size": len(config_bytes),
                               "digest": config_digest},
                    "layers": layers}
        statuses.append("writing manifest")
        try:
            store.add_model(model_files.canonical_json(manifest), tags=[target])
        except StoreError as e:
            raise OllamaError(e.status, str(e)) from None
        statuses.append("success")
        if body.get("stream") is False:
            resp.media = {"status": "success"}
            return
        resp.content_type = "application/x-ndjson"
        resp.data = "".join(json.dumps({"status": s}) + "\n" for s in statuses).encode()

    def _from_files(self, files, statuses):
        if not isinstance(files, dict):
            raise OllamaError(400, "files must be an object of {name: digest}")
        store = self.runtime.store
        weights, projectors, extra = [], [], []
        for filename, digest in sorted(files.items()):
            digest = _digest(digest)
            if not store.has_blob(digest):
                raise OllamaError(400, f"blob {digest} for {filename} was not uploaded: "
                                       f"POST it to /api/blobs/{digest} first")
            path = store.blob_path(digest)
            lower = filename.lower()
            if lower.endswith(".gguf"):
                try:
                    meta = modelrunner.model_files.read_gguf(path)  # gguf loads only for a create
                except model_files.PackagingError as e:
                    raise OllamaError(400, f"{filename}: {e}") from None
                (projectors if meta["architecture"] == "clip" else weights).append(
                    (filename, path, meta))
            elif lower.endswith((".jinja",)):
                extra.append((filename, path, media_types.CHAT_TEMPLATE))
            elif lower.startswith(("license", "licence")):
                extra.append((filename, path, media_types.LICENSE))
            elif lower.endswith(".safetensors"):
                raise OllamaError(400, "creating from safetensors is not supported: convert to "
                                       "GGUF or use `model package`")
            else:
                raise OllamaError(400, f"unsupported file {filename!r}")
        if not weights:
            raise OllamaError(400, "files has no GGUF model weights")
        named = {}
        for filename, *_ in weights + extra:
            other = named.setdefault(_base(filename), filename)
            if other != filename:  # one bundle file each: the second would overwrite the first
                raise OllamaError(400, f"files {other!r} and {filename!r} would both be named "
                                       f"{_base(filename)!r} in the model: rename one")
        if len(projectors) > 1:
            raise OllamaError(400, "more than one multimodal projector")
        statuses.append("parsing GGUF")
        created = units.rfc3339(time.time())
        layers = []
        for filename, path, _ in weights:
            layers.append(model_files.make_layer(path, media_types.GGUF, relative_path=_base(filename),
                                                 mtime=created))
        for filename, path, media in extra:
            layers.append(model_files.make_layer(path, media, relative_path=_base(filename), mtime=created))
        for _, path, _ in projectors:
            layers.append(model_files.make_layer(path, media_types.MMPROJ, relative_path="model.mmproj",
                                                 mtime=created))
        first = weights[0][2]
        config = {"format": "gguf", "quantization": first["quantization"],
                  "parameters": units.format_parameters(sum(m["parameter_count"] for *_, m in weights)),
                  "architecture": first["architecture"],
                  "size": units.format_size(sum(m["file_size"] for *_, m in weights)),
                  "gguf": first["gguf"], "context_size": first["context_size"]}
        descriptors = []
        for layer in layers:
            statuses.append(f"using layer {layer.digest}")
            descriptors.append(layer.descriptor())
        return descriptors, config


def _base(filename):
    return filename.replace("\\", "/").rsplit("/", 1)[-1]

