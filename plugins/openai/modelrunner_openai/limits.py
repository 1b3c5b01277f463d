"""Bounds on what multiplies the size of an answer, checked before a request reaches a runner.

One chat asking for ``"logprobs": true, "top_logprobs": 100000`` made llama-server write 4.6 MB
per generated token (140 MB for 30 tokens) and kept an API worker busy for minutes. The body
goes to the runner as it came, so a runner's own names for the same things (llama-server's
``n_probs``, ``n_cmpl``) are bounded here too. Out of bounds is a 400 in OpenAI's error shape
naming the parameter, as OpenAI answers it.

The bounds, and why:

- ``top_logprobs`` 0..20 (chat; also on completions, where a client may send the chat name):
  OpenAI's schema for chat completions.
- ``logprobs`` 0..5 on completions: OpenAI's legacy schema (an integer there, not a boolean).
- ``n_probs`` 0..20: llama-server's own name for the same thing, passed through as it came.
- ``n`` and ``n_cmpl`` (llama-server's name) 1..8: each choice is a generation of its own, on a
  runner slot of its own (llama.cpp has 4 by default and refuses more than it has); OpenAI
  allows 128, which no local runner serves.
- ``prompt`` on completions: at most 64 prompts, as a runner answers each of them ``n`` times.
- ``n`` 1..10 on images: OpenAI's schema for image generation.
- ``input`` on embeddings: at most 2048 items, OpenAI's documented limit for one request.
- ``logprobs`` on chat is a boolean, as OpenAI's schema has it: llama-server reads an integer
  ``logprobs`` as ``n_probs`` (its alias), so ``"logprobs": 100000`` was the whole vocabulary per
  token (10 MB for a 2-token answer), past the bound on ``top_logprobs`` and ``n_probs``.
- ``grammar`` (llama-server's GBNF) nests at most 64 parentheses: llama-server's grammar parser
  recurses once per ``(`` and a grammar 40,000 deep (80 KB) crashed it, ending every request on
  that runner.
"""

import re

from .params import RequestError, boolean, number

MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
MAX_CHOICES = 8
MAX_PROMPTS = 64
MAX_IMAGES = 10
MAX_EMBEDDING_INPUTS = 2048
MAX_GRAMMAR_DEPTH = 64  # as bodies.MAX_JSON_DEPTH: far past any grammar a person writes


def check(path, data):
    """Raise ``RequestError`` (400, ``param`` set) for a request to the runner route ``path``
    that asks for more than these bounds allow."""
    if path == "/v1/chat/completions":
        boolean(data, "logprobs")  # an integer is llama-server's n_probs
        number(data, "top_logprobs", 0, MAX_TOP_LOGPROBS, integer=True)
        _choices(data)
        number(data, "n_probs", 0, MAX_TOP_LOGPROBS, integer=True)
        _grammar(data)
    elif path == "/v1/completions":
        number(data, "logprobs", 0, MAX_COMPLETION_LOGPROBS, integer=True)
        number(data, "top_logprobs", 0, MAX_TOP_LOGPROBS, integer=True)  # the chat name, sent here
        _choices(data)
        number(data, "n_probs", 0, MAX_TOP_LOGPROBS, integer=True)
        _items(data, "prompt", MAX_PROMPTS, _prompt_count)
        _grammar(data)
    elif path == "/v1/images/generations":
        number(data, "n", 1, MAX_IMAGES, integer=True)
    elif path == "/v1/embeddings":
        _items(data, "input", MAX_EMBEDDING_INPUTS, _input_count)


def _choices(data):
    number(data, "n", 1, MAX_CHOICES, integer=True)
    number(data, "n_cmpl", 1, MAX_CHOICES, integer=True)


def _prompt_count(prompt):
    """A completions prompt is a string, a list of token ids (one prompt), or a list of
    strings or of token lists (one prompt each)."""
    if not isinstance(prompt, list) or all(isinstance(p, int) for p in prompt):
        return 1
    return len(prompt)


def _input_count(value):
    """An embeddings input is a string, a list of token ids (one input), or a list of strings
    or of token lists (one input each)."""
    return _prompt_count(value)


def _items(data, param, most, count):
    value = data.get(param)
    if value is None:
        return
    n = count(value)
    if n > most:
        raise RequestError(f"Invalid '{param}': array too long. Expected an array with maximum "
                           f"length {most}, but got an array with length {n} instead.", param,
                           code="array_above_max_length")


# what a GBNF grammar holds that is not a group: "strings", [classes] (backslash escapes in both)
# and # comments; and the parentheses themselves
_GRAMMAR_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"?|\[(?:\\.|[^\]\\])*\]?|#[^\r\n]*|[()]', re.S)


def _grammar_depth(text):
    """How deeply a GBNF grammar's parentheses nest, outside its "strings", [classes] and
    # comments (where a parenthesis is a character to match, not a group). Linear, the
    scanning in ``re``; a grammar with few parentheses is not scanned."""
    if text.count("(") <= MAX_GRAMMAR_DEPTH:
        return text.count("(")
    depth = deepest = 0
    for token in _GRAMMAR_TOKENS.findall(text):
        if token == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif token == ")":
            depth -= 1
    return deepest


def _grammar(data):
    grammar = data.get("grammar")
    if isinstance(grammar, str) and _grammar_depth(grammar) > MAX_GRAMMAR_DEPTH:
        raise RequestError(f"Invalid 'grammar': parentheses nested deeper than "
                           f"{MAX_GRAMMAR_DEPTH} levels.", "grammar", code="invalid_value")
