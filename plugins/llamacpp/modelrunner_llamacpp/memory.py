"""What a llama-server runner holds in memory, and the largest context that fits a budget.

Pure arithmetic on GGUF metadata, with fast tests of its own (tests/test_llamacpp_context_fit.py).
The engine's estimate (what the scheduler reserves) and its choice of context (what llama-server
is started with) both come from :func:`memory_parts`, so they cannot disagree.

Why fit the context at all: a model whose GGUF declares 32K-128K tokens, given that context for
each of its slots, wants tens of GiB of KV cache and is refused on a laptop. Ollama picks a
context by the memory there is; so does this, up to the model's maximum and, where the budget
allows, never below :data:`MIN_CONTEXT`. A context the user configured is never fitted.
"""

import re
from dataclasses import dataclass

from modelrunner import engine_args

MIN_CONTEXT = 4096   # the least an unconfigured model gets, unless its maximum is smaller
PAD = 256            # llama.cpp pads its KV cache to a multiple of 256 tokens
UNKNOWN_MAX = 4096   # the context of a model whose GGUF declares none

# Bytes per cached element for llama.cpp's --cache-type-k/-v (block size 32 for quantised ones).
CACHE_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32,
                    "q5_0": 22 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}


def per_layer(value, n_layer):
    """A GGUF value that is a number or a per-layer array; returns the per-layer list of ints."""
    if isinstance(value, (list, tuple)):
        vals = [engine_args.as_int(v) or 0 for v in value]
        return (vals + [vals[-1] if vals else 0] * n_layer)[:n_layer]
    if isinstance(value, str) and ("," in value or value.startswith("[")):
        # an array as the model config renders it ("4, 4, 8") or as a list's repr
        return per_layer([v for v in re.split(r"[\s,\[\]]+", value) if v], n_layer)
    return [engine_args.as_int(value) or 0] * n_layer


@dataclass
class Shape:
    """The numbers of a model that size its caches: per-layer K/V widths, vocabulary, maximum."""

    n_embd: int
    n_vocab: int
    k_width: int        # sum over layers of head_count_kv * key_length
    v_width: int        # sum over layers of head_count_kv * value_length
    max_context: int | None   # <arch>.context_length, None when the GGUF does not say


class BadShape(ValueError):
    """GGUF metadata no real model has (a hostile or broken file): the engine answers 400."""


# Bounds no real model reaches; past them the metadata is refused, not multiplied out (a
# block_count of 2^40 was a list of 2^40 entries; a negative head count a negative estimate).
MAX_LAYERS = 4096
MAX_WIDTH = 1 << 20       # embedding length, heads, key/value lengths, vocabulary
MAX_CONTEXT = (1 << 31) - 1   # llama-server's context is a 32-bit int


def _bounded(name, value, top):
    if value is not None and not 0 <= value <= top:
        raise BadShape(f"the model's GGUF metadata says {name} = {value}: not a model "
                       f"llama.cpp can load")
    return value


def model_shape(meta):
    """:class:`Shape` from GGUF key/values (numbers, or strings as the artifact config has them).
    Raises :class:`BadShape` for values out of any real model's range."""
    arch = str(meta.get("general.architecture", "llama"))

    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    def number(key, top=MAX_WIDTH, value=None):
        return _bounded(key, engine_args.as_int(get(key) if value is None else value), top)

    n_layer = number("block_count", MAX_LAYERS) or 0
    n_embd = number("embedding_length") or 0
    n_head = per_layer(get("attention.head_count", 0), n_layer) if n_layer else []
    n_head_kv_raw = get("attention.head_count_kv")
    n_head_kv = per_layer(n_head_kv_raw, n_layer) if n_head_kv_raw is not None else n_head
    for count in n_head + n_head_kv:
        _bounded("attention.head_count", count, MAX_WIDTH)
    max_head = max(n_head or [0])
    key_len = number("attention.key_length") or (n_embd // max_head if max_head else 0)
    val_len = number("attention.value_length") or key_len
    n_vocab = (number("vocab_size")
               or _bounded("tokenizer.vocab_size",
                           engine_args.as_int(meta.get("tokenizer.vocab_size")), MAX_WIDTH)
               or 32000)
    max_context = engine_args.as_int(get("context_length"))
    if max_context is not None:
        max_context = min(max_context, MAX_CONTEXT)
    return Shape(n_embd=n_embd, n_vocab=n_vocab, k_width=sum(n_head_kv) * key_len,
                 v_width=sum(n_head_kv) * val_len,
                 max_context=max_context if max_context and max_context > 0 else None)


def cache_type_bytes(name):
    """Bytes per element of a --cache-type-k/-v value (f16, the default, when unknown)."""
    return CACHE_TYPE_BYTES.get(str(name or "f16").lower(), 2.0)


def memory_parts(weights, shape, slots, batch_size=None, cache_k="f16", cache_v="f16"):
    """(fixed bytes, KV bytes per token of the pool): the runner holds fixed + pool * per-token.

    Fixed: the weights (mmapped, all touched), graph buffers for one ubatch of activations, the
    logits of each slot and an allowance for the process (HTTP server, tokenizer, templates).
    Measured with SmolLM2-135M on CPU: RSS - weights - KV is about 30 MiB; this gives about 58.
    """
    batch = engine_args.as_int(batch_size) or 2048
    ubatch = min(batch, 512)
    compute = 48 * 2**20 + ubatch * 8 * max(shape.n_embd, 1) * 4 + slots * shape.n_vocab * 4
    per_token = shape.k_width * cache_type_bytes(cache_k) + shape.v_width * cache_type_bytes(cache_v)
    return weights + compute, per_token


def pool_bytes(per_token, pool):
    """KV bytes for a pool of ``pool`` tokens, padded as llama.cpp pads it."""
    return int(-(-pool // PAD) * PAD * per_token)


def fit_context(fixed, per_token, slots, budget, max_context):
    """(context per request, why) for a runner with no configured context.

    The largest multiple of :data:`PAD` whose ``slots`` copies fit ``budget`` beside ``fixed``,
    up to the model's maximum, and at least :data:`MIN_CONTEXT` (or the maximum, if smaller):
    below that a chat model is of little use, and the scheduler's refusal then says what it
    would need. No budget (0) gives the model's maximum.
    """
    top = min(max_context or UNKNOWN_MAX, MAX_CONTEXT // max(slots, 1) // PAD * PAD)
    most = "model maximum" if max_context else "the model declares no maximum"
    if not budget:
        return top, f"{most}; no memory budget"
    per_request = per_token * slots
    fits = int((budget - fixed) // per_request) // PAD * PAD if per_request else top
    room = f"memory budget of {_gib(budget)} with {slots} slot{'s' if slots != 1 else ''}"
    if fits >= top:
        return top, f"{most}; fits {room}"
    floor = min(MIN_CONTEXT, top)
    if fits < floor:
        return floor, (f"minimum {floor}: the {room} holds only {max(fits, 0)}; "
                       f"model max {top}")
    return fits, f"fits {room}; model max {top}"


def _gib(n):
    return f"{n / 1024**3:.2f} GiB"
