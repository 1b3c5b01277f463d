"""The Anthropic dialect: the Messages API, translated to the runners' OpenAI chat API.

    POST /anthropic/v1/messages, /v1/messages, /engines/v1/messages, /engines/{engine}/v1/messages
    POST the same paths + /count_tokens

So tools written for the Anthropic SDK (coding agents among them) run on local models, on every
engine that chats. Errors are ``{"type": "error", "error": {"type", "message"}}`` with the HTTP
status; a stream that already started ends with an ``error`` event.
"""

from modelrunner import hookimpl

from .errors import AnthropicDialect
from .routes import register


@hookimpl
def register_routes(app, runtime):
    register(app, runtime)


@hookimpl
def register_dialects(register):
    register(AnthropicDialect())
