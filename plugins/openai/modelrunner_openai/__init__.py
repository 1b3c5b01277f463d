"""The OpenAI dialect: DMR's OpenAI routes, passed to the runner as they are.

    POST /engines/{engine}/v1/{chat/completions,completions,embeddings}, also under /engines/v1/
    and /v1/; POST .../rerank and .../score; GET .../v1/models[/{id}] with DMR's `dmr` block.

The runner already speaks OpenAI, so nothing is translated: the body goes through byte for byte
and the answer (Server-Sent Events when streaming) comes back as the runner writes it.

Two exceptions. The Responses API (POST .../responses, GET/DELETE .../responses/{id}) is
translated to chat completions, see ``modelrunner_openai.responses``. A forced tool choice
("required" or a named function) is held with a JSON schema and read back as tool calls, because
llama-server does not enforce it, see ``modelrunner_openai.forced_tools``.
"""

from modelrunner import hookimpl

from .errors import OpenAIDialect
from .resources import register as register_resources
from .responses import register as register_responses

@hookimpl
def register_routes(app, runtime):
    register_resources(app, runtime)
    register_responses(app, runtime)


@hookimpl
def register_dialects(register):
    register(OpenAIDialect())
