"""Tiny GGUF files for fast tests, written with the `gguf` package.

``write_tiny_llama_gguf`` writes a random-weight llama model (2 layers, hidden size 64) with a
byte-level BPE ("gpt2") tokenizer and a ChatML chat template. llama-server loads it in well under a
second and generates (meaningless) tokens from it, so it exercises the real load/generate path
without real weights. ``write_not_gguf`` and ``write_truncated_gguf`` make broken files.
"""

from pathlib import Path

import numpy as np

import gguf

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Common English pairs, merged in this order (rank = position) after the 256 byte tokens.
_MERGE_SEED = "the quick brown fox jumps over lazy dog paris france capital what is of hello world"


def _bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character mapping."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _vocab_and_merges(vocab):
    """Byte tokens, then merged tokens up to ``vocab - len(SPECIAL_TOKENS)``, then specials."""
    byte_map = _bytes_to_unicode()
    tokens = [byte_map[b] for b in range(256)]
    seen = set(tokens)
    merges = []
    target = max(vocab - len(SPECIAL_TOKENS), 256)
    # Merge adjacent pieces of each seed word (with GPT-2's leading-space marker), left to right.
    words = ["Ġ" + w for w in _MERGE_SEED.split()] + _MERGE_SEED.split()
    for word in words:
        left = word[0]
        for ch in word[1:]:
            if len(tokens) >= target:
                break
            merged = left + ch
            if merged not in seen:
                merges.append(f"{left} {ch}")
                tokens.append(merged)
                seen.add(merged)
            left = merged
    tokens.extend(SPECIAL_TOKENS)
    return tokens, merges


def write_tiny_llama_gguf(path, *, seed=0, n_ctx=256, vocab=320, n_layer=2, n_embd=64,
                          n_head=4, n_head_kv=2, n_ff=128, chat_template=CHATML_TEMPLATE):
    """Write a random-weight llama GGUF (all f32) to ``path`` and return the path.

    ``vocab`` is the total vocabulary size (>= 259: 256 byte tokens + 3 special tokens).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, merges = _vocab_and_merges(vocab)
    n_vocab = len(tokens)
    head_dim = n_embd // n_head

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    types = [gguf.TokenType.NORMAL] * (n_vocab - len(SPECIAL_TOKENS)) + \
        [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|im_start|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)

    def tensor(name, *shape, scale=0.02):
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def ones(name, n):
        writer.add_tensor(name, np.ones((n,), dtype=np.float32))

    # numpy shape is (rows=out, cols=in); GGUF stores the reversed dims llama.cpp expects.
    tensor("token_embd.weight", n_vocab, n_embd, scale=1.0)
    for i in range(n_layer):
        ones(f"blk.{i}.attn_norm.weight", n_embd)
        tensor(f"blk.{i}.attn_q.weight", n_head * head_dim, n_embd)
        tensor(f"blk.{i}.attn_k.weight", n_head_kv * head_dim, n_embd)
        tensor(f"blk.{i}.attn_v.weight", n_head_kv * head_dim, n_embd)
        tensor(f"blk.{i}.attn_output.weight", n_embd, n_head * head_dim)
        ones(f"blk.{i}.ffn_norm.weight", n_embd)
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    ones("output_norm.weight", n_embd)
    tensor("output.weight", n_vocab, n_embd, scale=0.5)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_not_gguf(path, *, size=4096, seed=0):
    """Random bytes with a .gguf name: not a GGUF file at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def write_truncated_gguf(path, **kwargs):
    """A real tiny GGUF cut in half: the header parses, the tensor data is missing."""
    path = Path(path)
    write_tiny_llama_gguf(path, **kwargs)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
