"""Shared helpers for packaging tests: tiny GGUF files written with GGUFWriter."""

from pathlib import Path

import gguf
import numpy as np
import pytest


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    context_length: int | None = 256,
    file_type: int | None = int(gguf.LlamaFileType.ALL_F32),
    extra_kv: dict | None = None,
    tensors: dict | None = None,
) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    if context_length is not None:
        w.add_context_length(context_length)
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_name("tiny")
    for key, value in (extra_kv or {}).items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, list):
            w.add_array(key, value)
        else:
            w.add_string(key, value)
    if tensors is None:
        tensors = {"token_embd.weight": np.ones((4, 8), dtype=np.float32)}
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def make_gguf():
    return write_gguf
