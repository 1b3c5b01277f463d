"""What a whisper ggml file says of itself: its header (hyperparameters) and its tensors' sizes.

Read without loading anything (a few hundred small reads, seeking past the weights), for the
engine's memory estimate and for what `model inspect` shows: parameters, model size class and
the languages it transcribes. The layout is whisper.cpp's ``whisper_model_load``: magic, eleven
int32 hyperparameters, the mel filters, the vocabulary, then each tensor's header and data.
"""

import struct
from pathlib import Path

MAGIC = 0x67676D6C
HPARAMS = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
           "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype")
# bytes per element for ggml types (F32, F16, Q4_0, Q4_1, -, -, Q5_0, Q5_1, Q8_0): block sizes
_TYPE_SIZE = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
              8: (32, 34)}
SIZES = {4: "tiny", 6: "base", 12: "small", 24: "medium", 32: "large"}
# whisper's languages (whisper.cpp's g_lang), in its order; large-v3 added "yue"
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th "
    "ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr "
    "pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt "
    "haw ln ha ba jw su yue").split()


class NotWhisperGGML(ValueError):
    """The file is not a whisper ggml model."""


def is_whisper_ggml(path):
    try:
        with open(path, "rb") as f:
            head = f.read(4 * (1 + len(HPARAMS)))
    except OSError:
        return False
    if len(head) < 48 or struct.unpack_from("<I", head)[0] != MAGIC:
        return False
    hp = dict(zip(HPARAMS, struct.unpack_from("<11i", head, 4)))
    return 0 < hp["n_mels"] <= 256 and hp["n_vocab"] > 50000 and hp["n_audio_layer"] > 0


def read(path):
    """{hparams..., "parameters": int, "tensors": int, "multilingual": bool, "size_class"}."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(48)
        if len(head) < 48 or struct.unpack_from("<I", head)[0] != MAGIC:
            raise NotWhisperGGML(f"{path.name} is not a whisper ggml file (no ggml magic)")
        info = dict(zip(HPARAMS, struct.unpack_from("<11i", head, 4)))
        n_mel, n_fft = struct.unpack("<2i", f.read(8))
        f.seek(4 * n_mel * n_fft, 1)
        (n_tokens,) = struct.unpack("<i", f.read(4))
        for _ in range(n_tokens):
            (length,) = struct.unpack("<i", f.read(4))
            f.seek(length, 1)
        parameters = tensors = 0
        while True:
            head = f.read(12)
            if len(head) < 12:
                break
            n_dims, name_len, ttype = struct.unpack("<3i", head)
            if not 0 < n_dims <= 4 or not 0 < name_len < 256 or ttype not in _TYPE_SIZE:
                raise NotWhisperGGML(f"{path.name}: a broken tensor header after {tensors} tensors")
            dims = struct.unpack(f"<{n_dims}i", f.read(4 * n_dims))
            f.seek(name_len, 1)
            count = 1
            for d in dims:
                count *= d
            block, size = _TYPE_SIZE[ttype]
            f.seek(count // block * size, 1)
            parameters += count
            tensors += 1
    info.update(parameters=parameters, tensors=tensors,
                multilingual=info["n_vocab"] >= 51865,
                size_class=SIZES.get(info["n_audio_layer"], f"{info['n_audio_layer']} layers"))
    return info


def languages(info):
    """The language codes a model transcribes: English only for the .en models."""
    if not info.get("multilingual"):
        return ["en"]
    return LANGUAGES if info["n_vocab"] >= 51866 else LANGUAGES[:-1]
