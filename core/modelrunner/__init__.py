"""modelrunner: pull, package, run and serve AI models, wire-compatible with Docker Model Runner.

``import modelrunner`` is the whole plugin API: a plugin imports these names and nothing else
from the core, and a plugin's tests only these and ``modelrunner.testing`` (a test walks every
plugin's imports, tests included). Only what plugins use is here; the rest of the core stays in
its own modules, for the core. The names load on first use, so ``import modelrunner`` stays
cheap for the CLI. The guide is docs/plugins.md; its "The SDK reference" lists every name.

Hooks          hookimpl (the contract itself is modelrunner.hookspecs, documented in the guide)
Errors         ModelRunnerError: raise it (or a kind), the route's Dialect shapes it; Unsupported
               and ContextExceeded (what a model cannot do: the gateway finds it), EngineError,
               SourceError, StoreError and BrokenModel, GatewayError and SchedulerError (what a
               Runtime call raises)
Dialects       Dialect (register_dialects), caller(req), read_json_body, parse_json_body,
               parse_json, sse_events, StreamError, hide_paths, cached_prompt_tokens,
               MODE_BY_PATH, UPLOAD
Engines        Engine, Bundle, RunnerConfig, RunnerCommand, ConfigureOption, RunnerHandle (what
               an engine's after_ready and before_stop get); UnixHTTPServer and
               JSONRequestHandler (a runner written in Python, on its socket)
Sources        Source, SearchResult, Progress
Store          Store (the protocol), store_operation (what a write relies on is never collected
               meanwhile; a full disk takes back what it wrote)
Runtime        Runtime (what register_routes gets)

Families, one name each, their members read as attributes (see _namespaces.py):
engine_args (build_argv's helpers), downloads (a source's verified fetch), model_files,
media_types, references, units, placement (the make_placement hook's parts), private_files,
tool_forcing (a forced tool call held by a JSON schema).
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it (relative to this package). Only what a plugin uses; the
# rest of the core stays importable from its own module for the core's use, not re-exported.
_EXPORTS = {
    "hookimpl": ".hookspecs",
    # errors: raise them (a route's Dialect shapes them) or catch them around a Runtime call
    "ModelRunnerError": ".errors",
    "Unsupported": ".errors",
    "ContextExceeded": ".errors",
    "EngineError": ".engines",
    "SourceError": ".sources",
    "StoreError": ".store.errors",
    "BrokenModel": ".store.errors",
    "GatewayError": ".gateway",
    "SchedulerError": ".scheduler.scheduler",
    # dialects and routes
    "Dialect": ".dialects",
    "caller": ".trust",
    "read_json_body": ".bodies",
    "parse_json_body": ".bodies",
    "parse_json": ".bodies",
    "sse_events": ".streams",
    "StreamError": ".streams",
    "hide_paths": ".machine_paths",
    "cached_prompt_tokens": ".usage",
    "MODE_BY_PATH": ".gateway",
    "UPLOAD": ".uploads",
    # engines
    "Engine": ".engines",
    "Bundle": ".engines",
    "RunnerConfig": ".engines",
    "RunnerCommand": ".engines",
    "ConfigureOption": ".engines",
    "RunnerHandle": ".engines",
    # a runner written in Python: its HTTP server on the scheduler's socket
    "UnixHTTPServer": ".unix_http",
    "JSONRequestHandler": ".unix_http",
    # sources
    "Source": ".sources",
    "SearchResult": ".sources",
    "Progress": ".sources",
    # store
    "Store": ".store.protocol",
    "store_operation": ".store.operation",
    # runtime: what register_routes gets
    "Runtime": ".runtime",
}

# families: one public name each (modelrunner.media_types.GGUF); see _namespaces.py
_NAMESPACES = {
    "engine_args": ("what an engine's pure build_argv (its args.py) is made of", {
        "as_int": ".runner_args:as_int",
        "truthy": ".runner_args:truthy",
        "split_flags": ".runner_args:split_flags",
        "take_flags": ".runner_args:take_flags",
        "listen_args": ".runner_args:listen_args",
    }),
    "downloads": ("a source's verified, resumable fetch of blobs and its capped reads of "
                  "untrusted answers", {
        "fetch_blob": ".sources:fetch_blob",
        "BlobBody": ".sources:BlobBody",
        "chunks_readinto": ".sources:chunks_readinto",
        "read_capped": ".sources:read_capped",
    }),
    "model_files": ("reading model files and building the store's artifacts from them", {
        "read_gguf": ".packaging.gguf_metadata:read_gguf",
        "read_safetensors_header": ".packaging.artifact:read_safetensors_header",
        "build_gguf_artifact": ".packaging.artifact:build_gguf_artifact",
        "build_safetensors_artifact": ".packaging.artifact:build_safetensors_artifact",
        "make_layer": ".packaging.artifact:make_layer",
        "canonical_json": ".packaging.artifact:canonical_json",
        "bundle_files": ".store.validate:bundle_files",
        "PackagingError": ".packaging.errors:PackagingError",
    }),
    "media_types": ("the OCI media types of model artifacts (DMR's and the CNCF model spec's)", {
        "GGUF": ".packaging.artifact:MEDIA_TYPE_GGUF",
        "SAFETENSORS": ".packaging.artifact:MEDIA_TYPE_SAFETENSORS",
        "DDUF": ".packaging.artifact:MEDIA_TYPE_DDUF",
        "LICENSE": ".packaging.artifact:MEDIA_TYPE_LICENSE",
        "MMPROJ": ".packaging.artifact:MEDIA_TYPE_MMPROJ",
        "CHAT_TEMPLATE": ".packaging.artifact:MEDIA_TYPE_CHAT_TEMPLATE",
        "MODEL_FILE": ".packaging.artifact:MEDIA_TYPE_MODEL_FILE",
        "of_format": ".packaging.formats:format_media_type",
        "CONFIG_V01": ".packaging.artifact:MEDIA_TYPE_CONFIG_V01",
        "CONFIG_V02": ".packaging.artifact:MEDIA_TYPE_CONFIG_V02",
        "CNCF_CONFIG_V1": ".packaging.artifact:MEDIA_TYPE_CNCF_CONFIG_V1",
        "OCI_MANIFEST": ".packaging.artifact:MEDIA_TYPE_OCI_MANIFEST",
    }),
    "references": ("model references: parse and normalise them as DMR does", {
        "Reference": ".reference:Reference",
        "parse": ".reference:parse",
        "normalize": ".reference:normalize",
        "is_model_id": ".reference:is_model_id",
        "InvalidReference": ".reference:InvalidReference",
        "DEFAULT_REGISTRY": ".reference:DEFAULT_REGISTRY",
        "DEFAULT_NAMESPACE": ".reference:DEFAULT_NAMESPACE",
        "DEFAULT_TAG": ".reference:DEFAULT_TAG",
        "HF_REGISTRY": ".reference:HF_REGISTRY",
    }),
    "units": ("sizes, parameter counts, durations and times as the API writes them", {
        "format_size": ".packaging.units:format_size",
        "format_parameters": ".packaging.units:format_parameters",
        "parse_keep_alive": ".scheduler.durations:parse_keep_alive",
        "parse_bytes": ".scheduler.durations:parse_bytes",
        "rfc3339": ".packaging.artifact:rfc3339",
    }),
    "placement": ("where runner processes start (the make_placement hook) and how to reach "
                  "a runner", {
        "Placement": ".scheduler.placement:Placement",
        "Placed": ".scheduler.placement:Placed",
        "RunnerSpec": ".scheduler.placement:RunnerSpec",
        "LoadError": ".scheduler.placement:LoadError",
        "LocalPlacement": ".scheduler.local:LocalPlacement",
        "runner_environment": ".scheduler.environment:runner_environment",
        "read_log_tail": ".scheduler.local:read_log_tail",
        "stop_process_group": ".scheduler.local:stop_process_group",
        "terminate_process_group": ".scheduler.local:terminate_process_group",
        "runner_healthy": ".runners:runner_healthy",
        "runner_connection": ".runners:runner_connection",
    }),
    "private_files": ("files only the server's user may read: 0700 folders, 0600 files", {
        "private_dir": ".private:private_dir",
        "write_private": ".private:write_private",
    }),
    "tool_forcing": ("a forced tool call held by a JSON schema: the runner's response_format "
                    "for it, and its answer parsed back", {
        "call_format": ".forced_calls:call_format",
        "forced_call_schema": ".forced_calls:forced_call_schema",
        "parse_forced_call": ".forced_calls:parse_forced_call",
    }),
}

__all__ = ["__version__", *_EXPORTS, *_NAMESPACES]


def __getattr__(name):
    if name in _NAMESPACES:
        from ._namespaces import Namespace
        doc, members = _NAMESPACES[name]
        value = Namespace(name, doc, members)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        raise AttributeError(f"module 'modelrunner' has no attribute {name!r}")
    globals()[name] = value
    return value

def __dir__():
    return sorted(__all__)
