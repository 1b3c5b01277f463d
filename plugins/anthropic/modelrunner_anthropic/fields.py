"""Which top-level fields a Messages request may have, as Anthropic's API reference lists them.

Anthropic's API refuses a field it does not know with 400 ``invalid_request_error`` and
"<field>: Extra inputs are not permitted" (its request models forbid extra inputs), so a client
that sends one learns at once instead of having it ignored; this server does the same, with
the same words. The lists are the Messages API's and its betas' (what Claude Code sends rides
on betas: ``context_management``, ``output_config``), written from the SDKs' MessageCreateParams
and MessageCountTokensParams (anthropic-sdk-python 2.17), plus ``temperature``, ``top_p`` and
``top_k``, which the API still takes though recent SDKs dropped them from their types.

Fields that only steer Anthropic's own service (``service_tier``, ``speed``, ``inference_geo``,
``diagnostics``, billing and fallbacks, ``cache_control``, ``container``, ``compaction``,
``context_management``) are accepted and change nothing here: a local runner has one tier, one
place, and keeps the whole context it is given. Fields that would need the server to do
something it cannot (connect to MCP servers, hold a conversation's state) are refused by name.
"""

from modelrunner import ModelRunnerError

SAMPLING = {"temperature", "top_p", "top_k"}
SERVICE = {"service_tier", "speed", "inference_geo", "diagnostics", "billing_policy",
           "fallback_credit_token", "fallbacks", "cache_control", "container", "compaction",
           "context_management", "metadata"}
COUNT_TOKENS = {"model", "messages", "system", "tools", "tool_choice", "thinking",
                "output_config", "output_format", "mcp_servers", "cache_control", "speed",
                "compaction", "context_management", "billing_policy"}
MESSAGES = (COUNT_TOKENS | SAMPLING | SERVICE
            | {"max_tokens", "stop_sequences", "stream", "thread"})
MESSAGE = {"role", "content"}
UNSERVED = {"mcp_servers": "this server connects to no MCP servers: run them as client tools",
            "thread": "this server holds no conversation state: send the whole conversation"}


def invalid(message):
    return ModelRunnerError(message, status=400, kind="invalid_request_error")


def check(body, known=MESSAGES):
    """400 naming every field Anthropic's API would not take, or that this server cannot serve."""
    extra = [f"{key}: Extra inputs are not permitted" for key in body if key not in known]
    messages = body.get("messages")
    for i, m in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(m, dict):
            extra += [f"messages.{i}.{key}: Extra inputs are not permitted"
                      for key in m if key not in MESSAGE]
    if extra:
        raise invalid("; ".join(extra))
    for key, why in UNSERVED.items():
        if body.get(key):
            raise invalid(f"{key}: {why}")


def check_count(body):
    check(body, COUNT_TOKENS)
