"""The prompt tokens a runner took from its prompt cache, read one way for every dialect.

Each dialect reports them in its own field (OpenAI's ``usage.prompt_tokens_details
.cached_tokens``, the Responses API's ``usage.input_tokens_details.cached_tokens``, Anthropic's
``cache_read_input_tokens``, Ollama's ``prompt_eval_cached_count``), and every one of them is
read from the same OpenAI-compatible answer of the runner. Runners say it in two ways:
``usage.prompt_tokens_details.cached_tokens`` (llama-server's newer builds, vLLM) and
llama-server's ``timings.cache_n`` (every build). One reader keeps the dialects from disagreeing.
"""


def cached_prompt_tokens(usage, timings=None):
    """How many of the answer's prompt tokens the runner reused from its cache: the chat
    answer's ``usage.prompt_tokens_details.cached_tokens``, else llama-server's
    ``timings.cache_n``, else 0; never more than ``usage.prompt_tokens`` when that is known, so
    a dialect may subtract it from the prompt."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if not _count(cached):
        cached = (timings if isinstance(timings, dict) else {}).get("cache_n")
    if not _count(cached):
        return 0
    prompt = usage.get("prompt_tokens")
    return min(cached, prompt) if _count(prompt) else cached


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
