"""What of a prompt a runner may already hold: a chain of hashes over its prefixes.

An agent sends its whole conversation each turn: the tools and system prompt, then every message
so far, grown by the last answer and a tool result. Turn N+1's first messages are turn N's
messages exactly, so a hash over each prefix (the tools, then message by message) finds, without
tokenizing anything, how much of a new prompt was sent whole before: the part the runner's prompt
cache (its slots, its host-memory cache, or a cache saved at an unload) can skip. A completions
prompt (a string, or token ids and strings in their JSON) is chained in blocks of :data:`BLOCK`
characters.

The scheduler keeps the last two hashes of the prompts whose answers have begun (scheduler.py:
the last block of a text is a part block, which its next turn extends) and queues only long
prompts whose uncached part is long: a returning session does not wait behind them.
"""

import hashlib
import json
import logging

BLOCK = 4096      # characters per link of a completions prompt's chain
MAX_LINKS = 4096  # a longer chain ends in one link of all the rest (new whenever any of it is)


def long_prompt_bytes(settings):
    """The ``long_prompt_bytes`` setting in bytes (``4096``, ``"8KiB"``; 0, ``"off"`` or false:
    no prompt is long). One that cannot be read is logged and the default used: a typo must not
    keep the server from starting."""
    from .scheduler.durations import parse_bytes  # here: the scheduler imports this module
    value = settings.get("long_prompt_bytes", 4096)
    if value in (None, False, "", "off", "false", "no"):
        return 0
    try:
        return max(0, parse_bytes(value))
    except ValueError:
        logging.getLogger("modelrunner").warning(
            "long_prompt_bytes = %r is not a size (4096, \"8KiB\", 0): using 4096", value)
        return 4096


def _digest(previous, part):
    return hashlib.blake2b(previous + part, digest_size=8).digest()


def _bytes(text):
    # JSON may escape half a UTF-16 pair ("\ud800"), which strict UTF-8 cannot encode
    return text.encode("utf-8", "surrogatepass")


def _canonical(value):
    return _bytes(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def prompt_chain(request):
    """``{"chain": [hex, ...], "sizes": [bytes, ...]}`` of an OpenAI-shaped request (a dict):
    ``chain[i]`` identifies the prompt's first ``i + 1`` links (the tools, then each message; or
    each block of a ``prompt``: a string, or token ids and strings in their JSON) and
    ``sizes[i]`` is how many bytes they hold. None for a request with no prompt of either shape
    (it does not wait its turn)."""
    if not isinstance(request, dict):
        return None
    messages, prompt = request.get("messages"), request.get("prompt")
    if isinstance(messages, list):
        links = [_canonical([request.get("tools"), request.get("tool_choice")])]
        links += [_canonical(message) for message in messages[:MAX_LINKS - 2]]
        if len(messages) > MAX_LINKS - 2:
            links.append(_canonical(messages[MAX_LINKS - 2:]))
    elif isinstance(prompt, (str, list)):
        text = prompt if isinstance(prompt, str) else json.dumps(prompt, separators=(",", ":"))
        links = [_bytes(text[i:i + BLOCK]) for i in range(0, len(text), BLOCK)]
        if len(links) > MAX_LINKS:
            links[MAX_LINKS - 1:] = [b"".join(links[MAX_LINKS - 1:])]
    else:
        return None
    chain, sizes, previous, size = [], [], b"", 0
    for link in links:
        previous = _digest(previous, link)
        size += len(link)
        chain.append(previous.hex())
        sizes.append(size)
    return {"chain": chain, "sizes": sizes}


def uncached_bytes(prompt, seen):
    """How many bytes of ``prompt`` (:func:`prompt_chain`'s) follow its longest prefix whose hash
    is in ``seen`` (a container of the chains' last hashes of earlier prompts)."""
    chain, sizes = prompt["chain"], prompt["sizes"]
    for i in range(len(chain) - 1, -1, -1):
        if chain[i] in seen:
            return sizes[-1] - sizes[i]
    return sizes[-1] if sizes else 0
