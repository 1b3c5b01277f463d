"""modelrunner: pull, package, run and serve AI models, wire-compatible with Docker Model Runner.

``import modelrunner`` is the whole plugin API: a plugin imports these names and nothing else
from the core (a test walks every plugin's imports). The names load on first use, so
``import modelrunner`` stays cheap for the CLI. The guide is docs/plugins.md.

Hooks          hookimpl (the contract itself is modelrunner.hookspecs, documented in the guide)
Errors         ModelRunnerError and its kinds: raise them, the route's Dialect shapes them;
               Unsupported and ContextExceeded: what a model cannot do (the gateway finds it)
Dialects       Dialect (register_dialects): one error renderer per API surface; a resource
               names its own with ``dialect = "NAME"``
Engines        Engine, Bundle, RunnerConfig, RunnerCommand, MODES, ConfigureOption; what an
               engine's build_argv uses: as_int, truthy, split_flags, take_flags, listen_args
Sources        Source, SearchResult, Progress, fetch_blob and BlobBody, chunks_readinto, format_size,
               read_capped (an untrusted answer's body, capped after decoding)
Store          Store (the protocol), Model, BlobWriter, store_operation (what a write relies on is
               never collected meanwhile; a full disk takes back what it wrote), bundle_files
Runtime        Runtime (what register_routes gets), RunnerResponse, runner_connection,
               listen_on, runner_healthy
Placement      Placement, Placed, RunnerSpec, LoadError, LocalPlacement, runner_environment,
               read_log_tail, stop_process_group, terminate_process_group (where runner processes start: the make_placement hook)
Runner servers UnixHTTPServer, JSONRequestHandler (a runner written in Python, on its socket)
References     Reference, parse_reference, normalize_reference, HF_REGISTRY
Request bodies read_json_body, parse_json_body, parse_json (client JSON, nesting capped),
               chat_has_images
Callers        caller(req): who is asking (.admin, .may_change_state, .owner, .may_see(owner))
Streams        sse_events, reassemble, StreamError, runner_error_message
Error bodies   hide_paths (no path of the machine in what a client reads; the app's error path
               applies it, a dialect's own in-stream error writer calls it)
Forced calls   call_format, forced_call_schema, parse_forced_call (a JSON schema holds a forced tool call)
Model files    read_gguf, read_safetensors_header, build_gguf_artifact, build_safetensors_artifact,
               media types (MEDIA_TYPE_*)
Durations      parse_keep_alive, format_keep_alive
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it (relative to this package)
_EXPORTS = {
    "hookimpl": ".hookspecs",
    # errors
    "ModelRunnerError": ".errors",
    "Unsupported": ".errors",
    "ContextExceeded": ".errors",
    "Dialect": ".dialects",
    "EngineError": ".engines",
    "SourceError": ".sources",
    "StoreError": ".store.errors",
    "NotFound": ".store.errors",
    "Conflict": ".store.errors",
    "DigestMismatch": ".store.errors",
    "InvalidModel": ".store.errors",
    "BrokenModel": ".store.errors",
    "StoreFull": ".store.errors",
    "GatewayError": ".gateway",
    "SchedulerError": ".scheduler.scheduler",
    "PackagingError": ".packaging.errors",
    "InvalidReference": ".reference",
    # engines
    "Engine": ".engines",
    "Bundle": ".engines",
    "RunnerConfig": ".engines",
    "RunnerCommand": ".engines",
    "MODES": ".engines",
    "ConfigureOption": ".engines",
    # an engine's pure argument builder (its args.py) is made of these
    "as_int": ".runner_args",
    "truthy": ".runner_args",
    "split_flags": ".runner_args",
    "take_flags": ".runner_args",
    "listen_args": ".runner_args",
    # sources
    "Source": ".sources",
    "SearchResult": ".sources",
    "Progress": ".sources",
    "fetch_blob": ".sources",
    "read_capped": ".sources",
    "BlobBody": ".sources",
    "chunks_readinto": ".sources",
    "format_size": ".packaging.units",
    # store
    "Store": ".store.protocol",
    "Model": ".store.filesystem",
    "BlobWriter": ".store.filesystem",
    "bundle_files": ".store.validate",
    "store_operation": ".store.operation",
    # runtime
    "Runtime": ".runtime",
    "RunnerResponse": ".gateway",
    "MODE_BY_PATH": ".gateway",
    "runner_connection": ".runners",
    "listen_on": ".runners",
    "runner_healthy": ".runners",
    "UnixHTTPServer": ".unix_http",
    # placement: where runner processes start
    "Placement": ".scheduler.placement",
    "Placed": ".scheduler.placement",
    "RunnerSpec": ".scheduler.placement",
    "LoadError": ".scheduler.placement",
    "LocalPlacement": ".scheduler.local",
    "runner_environment": ".scheduler.environment",
    "read_log_tail": ".scheduler.local",
    "stop_process_group": ".scheduler.local",
    "terminate_process_group": ".scheduler.local",
    "JSONRequestHandler": ".unix_http",
    # references
    "Reference": ".reference",
    "parse_reference": ".reference",
    "normalize_reference": ".reference",
    "HF_REGISTRY": ".reference",
    "DEFAULT_REGISTRY": ".reference",
    "DEFAULT_NAMESPACE": ".reference",
    "DEFAULT_TAG": ".reference",
    "display_reference": ".reference",
    "is_model_id": ".reference",
    # files only the server's user may read (0700 folders, 0600 files)
    "private_dir": ".private",
    "write_private": ".private",
    # request bodies and streams
    "UPLOAD": ".uploads",
    "read_json_body": ".bodies",
    "parse_json_body": ".bodies",
    "parse_json": ".bodies",
    "chat_has_images": ".bodies",
    "hide_paths": ".machine_paths",
    # who is asking (the trust boundary's record: key scope, owner id)
    "caller": ".trust",
    "sse_events": ".streams",
    "StreamError": ".streams",
    "runner_error_message": ".streams",
    # forced tool calls
    "call_format": ".forced_calls",
    "forced_call_schema": ".forced_calls",
    "parse_forced_call": ".forced_calls",
    "reassemble": ".streams",
    # model files
    "read_gguf": ".packaging.gguf_metadata",
    "read_safetensors_header": ".packaging.artifact",
    "build_gguf_artifact": ".packaging.artifact",
    "build_safetensors_artifact": ".packaging.artifact",
    "make_layer": ".packaging.artifact",
    "canonical_json": ".packaging.artifact",
    "rfc3339": ".packaging.artifact",
    "format_parameters": ".packaging.units",
    "MEDIA_TYPE_GGUF": ".packaging.artifact",
    "MEDIA_TYPE_SAFETENSORS": ".packaging.artifact",
    "MEDIA_TYPE_DDUF": ".packaging.artifact",
    "MEDIA_TYPE_LICENSE": ".packaging.artifact",
    "MEDIA_TYPE_MMPROJ": ".packaging.artifact",
    "MEDIA_TYPE_CHAT_TEMPLATE": ".packaging.artifact",
    "MEDIA_TYPE_CONFIG_V01": ".packaging.artifact",
    "MEDIA_TYPE_CONFIG_V02": ".packaging.artifact",
    "MEDIA_TYPE_CNCF_CONFIG_V1": ".packaging.artifact",
    "MEDIA_TYPE_OCI_MANIFEST": ".packaging.artifact",
    "MEDIA_TYPE_MODEL_FILE": ".packaging.artifact",
    "SUPPORTED_CONFIG_MEDIA_TYPES": ".packaging.artifact",
    "GGUF_MEDIA_TYPES": ".packaging.artifact",
    # durations
    "parse_keep_alive": ".scheduler.durations",
    "format_keep_alive": ".scheduler.durations",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelrunner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
