"""The Responses API, served by translating each request into one chat completion for the runner.

The specification is Open Responses (https://www.openresponses.org, OpenAPI document 2026-04-24),
the open description of OpenAI's Responses API: its ``CreateResponseBody``, ``ResponseResource``,
streaming events and ``compactResponse``; the plugin's tests validate every answer against its
schemas (tests/openresponses_schema.json). The routes are registered under every OpenAI prefix
DMR serves (``/responses``, ``/v1/responses``, ``/engines/responses``, ``/engines/v1/responses``,
``/engines/{engine}/v1/responses``). The modules, by job:

- ``resources``: the routes (create, get, delete, input_items), registered below;
- ``validation``: the request checked against the specification, 400 in OpenAI's words;
- ``chat_request``: the request as one ``/v1/chat/completions`` body for the runner;
- ``items``: input items to chat messages, and as input_items lists them;
- ``tools``: function, custom and namespace tools as chat functions, the model's calls back as
  their items; hosted tools left out (web search) or refused;
- ``objects``: the ``response`` object built from the runner's chat completion;
- ``stream``: the runner's chat chunks as the specification's streaming events;
- ``store``: stored responses (``previous_response_id``), per API key, 1 hour;
- ``compact``: ``POST .../responses/compact``, a conversation summarised into one item.

Responses are stateless unless ``previous_response_id`` names an earlier one: each stored response
keeps the whole conversation (messages, without the instructions, which are not carried over) for
one hour. With ``store: false`` nothing is kept.

``RequestError`` and the type and bound checks are the plugin's ``params``, which the chat routes
share; the forced tool choice is the plugin's ``forced_tools``, also shared.
"""

from pathlib import Path

from .compact import CompactResource
from .resources import InputItemsResource, ResponseResource, ResponsesResource
from .store import ResponseStore

PREFIXES = ("/responses", "/v1/responses", "/engines/responses", "/engines/v1/responses",
            "/engines/{engine}/v1/responses")


def register(app, runtime):
    """Add the Responses API's routes under every prefix, sharing one store; returns the store."""
    models_path = runtime.settings.get("models_path", None)
    store = ResponseStore(Path(str(models_path)) / "responses" if models_path else None,
                          max_bytes=int(runtime.settings.get("responses_max_bytes", 1 << 30)))
    for prefix in PREFIXES:
        app.add_route(prefix, ResponsesResource(runtime, store))
        app.add_route(prefix + "/compact", CompactResource(runtime, store))
        app.add_route(prefix + "/{response_id}", ResponseResource(store))
        app.add_route(prefix + "/{response_id}/input_items", InputItemsResource(store))
    return store


__all__ = ["register"]
