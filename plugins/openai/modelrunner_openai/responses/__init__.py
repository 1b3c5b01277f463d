"""The Responses API, served by translating each request into one chat completion for the runner.

The specification is Open Responses (https://www.openresponses.org, OpenAPI document 2026-04-24),
the open description of OpenAI's Responses API: its ``CreateResponseBody``, ``ResponseResource``,
streaming events and ``compactResponse``; the plugin's tests validate every answer against its
schemas (tests/openresponses_schema.json). The routes are registered under every OpenAI prefix
DMR serves (``/responses``, ``/v1/responses``, ``/engines/responses``, ``/engines/v1/responses``,
``/engines/{engine}/v1/responses``). The modules, by job:

- ``resources``: the routes (create, get, delete, input_items) and ``register``;
- ``validation``: the request checked against the specification, 400 in OpenAI's words;
- ``items``: input items to chat messages, and as input_items lists them;
- ``objects``: the ``response`` object built from the runner's chat completion;
- ``store``: stored responses (``previous_response_id``), per API key, 1 hour;
- ``compact``: ``POST .../responses/compact``, a conversation summarised into one item.

``RequestError`` and the type and bound checks are the plugin's ``params``, which the chat routes
share; the forced tool choice is the plugin's ``forced_tools``, also shared.
"""

from .resources import register

__all__ = ["register"]
