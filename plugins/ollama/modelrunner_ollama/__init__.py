"""The Ollama dialect: Ollama's /api routes, translated to the runners' OpenAI API.

    GET  /api/version, /api/tags (also HEAD), /api/ps
    POST /api/show, /api/chat, /api/generate, /api/embed, /api/embeddings
    POST /api/pull, /api/push, /api/create, /api/copy; DELETE /api/delete
    POST|HEAD /api/blobs/{digest}

Chat and generate stream NDJSON by default (``"stream": false`` gives one object); the final line
carries done_reason and the measured durations (nanoseconds). Errors are ``{"error": "..."}``
with Ollama's status codes, or one such line inside a stream that already started.
``HEAD|GET /`` stays the core's.
"""

from modelrunner import hookimpl

from .errors import OllamaDialect
from .inference import ChatResource, EmbeddingsResource, EmbedResource, GenerateResource
from .models import (BlobResource, CopyResource, CreateResource, DeleteResource, PsResource,
                     ShowResource, TagsResource, VersionResource)
from .transfer import PullResource, PushResource


@hookimpl
def register_routes(app, runtime):
    app.add_route("/api/version", VersionResource())
    app.add_route("/api/tags", TagsResource(runtime))
    app.add_route("/api/show", ShowResource(runtime))
    app.add_route("/api/ps", PsResource(runtime))
    app.add_route("/api/delete", DeleteResource(runtime))
    app.add_route("/api/copy", CopyResource(runtime))
    app.add_route("/api/create", CreateResource(runtime))
    app.add_route("/api/blobs/{digest}", BlobResource(runtime))
    app.add_route("/api/pull", PullResource(runtime))
    app.add_route("/api/push", PushResource(runtime))
    app.add_route("/api/chat", ChatResource(runtime))
    app.add_route("/api/generate", GenerateResource(runtime))
    app.add_route("/api/embed", EmbedResource(runtime))
    app.add_route("/api/embeddings", EmbeddingsResource(runtime))


@hookimpl
def register_dialects(register):
    register(OllamaDialect())
