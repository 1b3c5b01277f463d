"""Which chat template a llama-server runner uses, and why.

A GGUF normally carries its template (``tokenizer.chat_template``). One without it was answered
with llama-server's ChatML fallback whatever the model: a Gemma 3 GGUF got ``<|im_start|>``
prompts, answered ``...<|im_end|>\\n<|im_start|>admin ...`` and never produced the
``<end_of_turn>`` that would have stopped it. llama.cpp has the common formats built in
(``--chat-template NAME``); this module picks the one the model was trained on, from its special
tokens first (they name the format exactly: ``<start_of_turn>`` is Gemma's, ``<|im_start|>``
ChatML's) and from ``general.architecture`` second. :func:`resolve` is pure; :func:`vocab_markers`
reads the only thing the artifact config lacks, the token list (the config's ``gguf`` map drops
arrays longer than 50, as DMR's does).

The order of precedence (``model ps`` shows which one won): a template configured for the model
(``model configure --chat-template``, or the ``--chat-template`` runtime flag), the template file
packaged with the model, the template embedded in the GGUF, the built-in one for the model's
tokens or architecture, else llama-server's own ChatML fallback.
"""

import mmap
import struct
from collections import namedtuple

# llama.cpp's built-in templates (``llama_chat_builtin_templates``, LLM_CHAT_TEMPLATES in
# src/llama-chat.cpp of the llama-cpp-python 0.3.36 sdist the plugin builds from; ``llama-server
# --help`` lists them). tests/test_templates.py checks them against the built binary.
BUILTIN = frozenset("""
    bailing bailing-think bailing2 chatglm3 chatglm4 chatml command-r deepseek deepseek-ocr
    deepseek2 deepseek3 exaone-moe exaone3 exaone4 falcon3 gemma gigachat glmedge gpt-oss granite
    granite-4.0 granite-4.1 grok-2 hunyuan-dense hunyuan-moe hunyuan-vl kimi-k2 llama2 llama2-sys
    llama2-sys-bos llama2-sys-strip llama3 llama4 megrez minicpm mistral-v1 mistral-v3
    mistral-v3-tekken mistral-v7 mistral-v7-tekken monarch openchat orion pangu-embedded phi3 phi4
    rwkv-world seed_oss smolvlm solar-open vicuna vicuna-orca yandex zephyr
""".split())

# Special tokens that name a format, most specific first: (tokens that must all be in the
# vocabulary, template). Phi-4 has ChatML's <|im_start|> plus <|im_sep|>; Llama 4 and Llama 3
# differ in their header tokens; Mistral v7 added [SYSTEM_PROMPT] to v3's [INST].
TOKEN_RULES = (
    (("<start_of_turn>", "<end_of_turn>"), "gemma"),
    (("<|header_start|>", "<|eot|>"), "llama4"),
    (("<|start_header_id|>", "<|eot_id|>"), "llama3"),
    (("<|im_start|>", "<|im_sep|>"), "phi4"),
    (("<|im_assistant|>", "<|im_middle|>"), "kimi-k2"),
    (("<|im_start|>", "<|im_end|>"), "chatml"),
    (("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"), "command-r"),
    (("<|start_of_role|>", "<|end_of_role|>"), "granite"),
    (("<|user|>", "<|assistant|>", "<|end|>"), "phi3"),
    (("<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>"), "deepseek3"),
    (("<|start|>", "<|channel|>", "<|message|>"), "gpt-oss"),
    (("[SYSTEM_PROMPT]", "[INST]"), "mistral-v7"),
    (("[INST]", "[/INST]"), "mistral-v3"),
    (("<seed:bos>",), "seed_oss"),
)
MARKERS = frozenset(t for tokens, _ in TOKEN_RULES for t in tokens)

# general.architecture -> template, for a vocabulary whose tokens said nothing.
ARCH_RULES = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "qwen": "chatml", "qwen2": "chatml", "qwen2moe": "chatml", "qwen2vl": "chatml",
    "qwen3": "chatml", "qwen3moe": "chatml", "smollm3": "chatml",
    "phi3": "phi3", "phimoe": "phi3",
    "llama4": "llama4",
    "command-r": "command-r", "cohere2": "command-r",
    "granite": "granite", "granitemoe": "granite",
    "deepseek": "deepseek", "deepseek2": "deepseek3",
    "chatglm": "chatglm4", "glm4": "chatglm4",
    "exaone": "exaone3", "exaone4": "exaone4",
    "minicpm": "minicpm", "orion": "orion", "mistral3": "mistral-v7",
    "hunyuan-moe": "hunyuan-moe", "hunyuan-dense": "hunyuan-dense", "gpt-oss": "gpt-oss",
    "bailingmoe": "bailing", "bailingmoe2": "bailing2", "seed_oss": "seed_oss",
    "llama": "llama2",  # reached only when no Llama 3 / ChatML / Mistral token is in the vocab
}

# What one runner uses. source: "configured", "packaged", "embedded", "built-in" or "default";
# name: a BUILTIN name (or None), text: a configured template's own text (or None).
Choice = namedtuple("Choice", "source name text why")

MAX_TEXT = 64 * 1024  # a configured template's text: what fits one environment variable well


def builtin_for(meta, tokens):
    """(name, why) of llama.cpp's built-in template for a model: from ``tokens`` (the special
    tokens of :data:`MARKERS` its vocabulary has), else from its ``general.architecture``;
    (None, why) when neither says."""
    tokens = set(tokens or ())
    arch = str((meta or {}).get("general.architecture", "")).strip()
    for needed, name in TOKEN_RULES:
        if all(t in tokens for t in needed):
            return name, f"{arch or 'unknown'} architecture, its vocabulary has {needed[0]}"
    if arch in ARCH_RULES:
        return ARCH_RULES[arch], f"{arch} architecture"
    return None, f"nothing in the {arch or 'unknown'} architecture or its tokens names a format"


def configured(config):
    """The template configured for a runner: the ``--chat-template`` runtime flag (a built-in
    name), else the ``llamacpp`` block's ``chat-template`` (a name, or a template's text), else
    None. ``auto`` means none: the automatic choice."""
    flags = list(getattr(config, "runtime_flags", None) or [])
    for i, flag in enumerate(flags):
        if flag == "--chat-template" and i + 1 < len(flags):
            value = flags[i + 1]
        elif flag.startswith("--chat-template="):
            value = flag.split("=", 1)[1]
        else:
            continue
        return None if value == "auto" else value
    block = (getattr(config, "extra", None) or {}).get("llamacpp") or {}
    value = block.get("chat-template") if isinstance(block, dict) else None
    return None if value in (None, "", "auto") else value


def check(value, *, text_allowed=True):
    """Raise ValueError unless ``value`` is a built-in name, ``auto``, or (``text_allowed``) a
    Jinja template's text of at most :data:`MAX_TEXT` bytes."""
    if not isinstance(value, str):
        raise ValueError(f"chat-template must be a string, not {type(value).__name__}")
    if value in BUILTIN or value == "auto":
        return
    if text_allowed and ("{{" in value or "{%" in value):
        if len(value.encode("utf-8")) > MAX_TEXT:
            raise ValueError(f"chat-template text is larger than {MAX_TEXT} bytes")
        if "\0" in value:
            raise ValueError("chat-template text may not contain NUL")
        return
    raise ValueError(f"chat template {value[:60]!r} is not one of llama.cpp's built-in templates "
                     f"(auto, {', '.join(sorted(BUILTIN))})"
                     + ("; a template file is sent as its text (`model configure MODEL "
                        "--chat-template FILE`)" if text_allowed else ""))


def resolve(config, *, packaged, embedded, meta, tokens):
    """The :class:`Choice` for a runner: ``packaged`` (the bundle has a template file),
    ``embedded`` (the GGUF has ``tokenizer.chat_template``), ``meta`` its GGUF key/values and
    ``tokens`` the :data:`MARKERS` in its vocabulary."""
    value = configured(config)
    if value is not None:
        if value in BUILTIN:
            return Choice("configured", value, None, f"built-in {value}, configured")
        return Choice("configured", None, value, "configured template text")
    if packaged:
        return Choice("packaged", None, None, "packaged with the model")
    if embedded:
        return Choice("embedded", None, None, "embedded in the GGUF")
    name, why = builtin_for(meta, tokens)
    if name:
        return Choice("built-in", name, None, f"built-in {name}: the GGUF has none; {why}")
    return Choice("default", None, None, f"llama-server's chatml fallback: the GGUF has none "
                                         f"and {why}")


_TOKENS_KEY = b"tokenizer.ggml.tokens"
_STRING, _ARRAY = 8, 9  # GGUFValueType
_SEARCH = 64 * 1024 * 1024  # the key is in the metadata, which precedes the tensors


def vocab_markers(path, wanted=MARKERS):
    """The tokens of ``wanted`` that the GGUF file at ``path`` has in ``tokenizer.ggml.tokens``.

    Walks that one array with ``struct`` over an mmap (a 262k-token Gemma vocabulary in tens of
    ms); the gguf package's reader would build a numpy view per token. A big-endian file, or
    one without the key, gives an empty set: the architecture then decides."""
    wanted_bytes = {w.encode("utf-8"): w for w in wanted}
    lengths = {len(b) for b in wanted_bytes}
    found = set()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        size = len(mm)
        at = mm.find(struct.pack("<Q", len(_TOKENS_KEY)) + _TOKENS_KEY, 0, min(size, _SEARCH))
        if at < 0:
            return found
        pos = at + 8 + len(_TOKENS_KEY)
        if pos + 16 > size:
            return found
        vtype, itype, count = struct.unpack_from("<IIQ", mm, pos)
        if vtype != _ARRAY or itype != _STRING:
            return found
        pos += 16
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            if pos + 8 > size:
                break
            (n,) = unpack(mm, pos)
            pos += 8
            if n in lengths:
                token = mm[pos:pos + n]
                if token in wanted_bytes:
                    found.add(wanted_bytes[token])
            pos += n
    return found
