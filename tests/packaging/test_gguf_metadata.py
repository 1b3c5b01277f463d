import time

import gguf
import numpy as np
import pytest

from modelrunner.packaging import PackagingError, format_parameters, format_size, read_gguf
from modelrunner.testing import smollm2_gguf


def test_smollm2_metadata():
    meta = read_gguf(smollm2_gguf())
    assert meta["architecture"] == "llama"
    assert meta["context_size"] == 8192
    assert meta["quantization"] == "Q4_1"  # general.file_type == 3 (MOSTLY_Q4_1)
    assert meta["gguf"]["general.file_type"] == "3"
    assert meta["parameters"] == "134.52M"
    assert 130e6 < meta["parameter_count"] < 140e6
    kv = meta["gguf"]
    assert kv["general.architecture"] == "llama"
    assert kv["llama.context_length"] == "8192"
    assert kv["general.languages"] == "en"  # short arrays are joined with ", "
    assert kv["llama.rope.freq_base"] == "100000.000000"  # Go %f
    assert kv["tokenizer.ggml.add_bos_token"] == "false"
    assert "<|im_start|>" in kv["tokenizer.chat_template"]
    # arrays longer than 50 elements are dropped, as DMR does
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert key not in kv


def test_smollm2_read_is_fast():
    path = smollm2_gguf()
    read_gguf(path)
    start = time.perf_counter()
    read_gguf(path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "file_type, tensors, expected",
    [
        (int(gguf.LlamaFileType.MOSTLY_Q4_K_M), None, "Q4_K_M"),
        (int(gguf.LlamaFileType.MOSTLY_F16), None, "F16"),
        (int(gguf.LlamaFileType.ALL_F32), None, "F32"),
        (int(gguf.LlamaFileType.MOSTLY_Q8_0), None, "Q8_0"),
        # no general.file_type: the most common tensor type
        (None, {"a": np.ones((2, 8), np.float16), "b": np.ones((2, 8), np.float16), "c": np.ones(8, np.float32)}, "F16"),
    ],
)
def test_quantization(tmp_path, make_gguf, file_type, tensors, expected):
    path = make_gguf(tmp_path / "m.gguf", file_type=file_type, tensors=tensors)
    assert read_gguf(path)["quantization"] == expected


def test_tiny_gguf_fields(tmp_path, make_gguf):
    long_list = list(range(51))
    path = make_gguf(
        tmp_path / "m.gguf",
        arch="qwen2",
        context_length=4096,
        extra_kv={"x.flag": True, "x.text": "héllo ✓", "x.short": [1, 2, 3], "x.long": long_list, "x.f": 0.5},
        tensors={"a": np.zeros((3, 5), np.float32), "b": np.zeros(7, np.float32)},
    )
    meta = read_gguf(path)
    assert meta["architecture"] == "qwen2"
    assert meta["context_size"] == 4096
    assert meta["parameter_count"] == 22
    assert meta["parameters"] == "22"
    kv = meta["gguf"]
    assert kv["x.flag"] == "true"
    assert kv["x.text"] == "héllo ✓"
    assert kv["x.short"] == "1, 2, 3"
    assert kv["x.f"] == "0.500000"
    assert "x.long" not in kv
    assert "GGUF.version" not in kv


def test_no_context_length(tmp_path, make_gguf):
    assert read_gguf(make_gguf(tmp_path / "m.gguf", context_length=None))["context_size"] is None


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a GGUF file"),
        (b"PK\x03\x04 definitely a zip", "not a GGUF file"),
        (b"\x00" * 1024, "not a GGUF file"),
        (b"GGUF", "truncated"),
        (b"GGUF\x03\x00\x00\x00\x01", "truncated"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(PackagingError, match=message):
        read_gguf(path)


@pytest.mark.parametrize("cut", ["header", "tensor_data", "one_byte"])
def test_truncated(tmp_path, make_gguf, cut):
    path = make_gguf(tmp_path / "m.gguf", tensors={"a": np.ones((64, 64), np.float32)})
    data = path.read_bytes()
    keep = {"header": 40, "tensor_data": len(data) - 4096, "one_byte": len(data) - 1}[cut]
    path.write_bytes(data[:keep])
    with pytest.raises(PackagingError, match="truncated"):
        read_gguf(path)


def test_missing_file(tmp_path):
    with pytest.raises(PackagingError, match="cannot open"):
        read_gguf(tmp_path / "nope.gguf")


def test_packaging_error_is_value_error():
    assert issubclass(PackagingError, ValueError)


@pytest.mark.parametrize(
    "n, expected",
    [(0, "0"), (999, "999"), (1_500, "1.50K"), (134_515_008, "134.52M"), (361_820_000, "361.82M"),
     (7_241_732_096, "7.24B"), (1_000_000_000_000, "1.00T")],
)
def test_format_parameters(n, expected):
    assert format_parameters(n) == expected


@pytest.mark.parametrize(
    "n, expected",
    [(0, "0B"), (1023, "1023B"), (1024, "1.00KiB"), (268_802_048, "256.35MiB"), (5 * 1024**3, "5.00GiB")],
)
def test_format_size(n, expected):
    assert format_size(n) == expected


def test_metadata_arrays_nested_past_eight_levels_are_refused(tmp_path):
    """llama.cpp loads no array of arrays; gguf-py writes a few levels. 5000 levels were a
    RecursionError (a 500 from /api/create, a traceback from `model package`)."""
    from modelrunner.testing.crafted import nested_array_gguf

    ok = tmp_path / "eight.gguf"
    ok.write_bytes(nested_array_gguf(8))
    assert read_gguf(ok)["gguf"] == {"hostile.nested": ""}  # DMR renders nested arrays empty
    for depth in (9, 5000, 200_000):
        path = tmp_path / f"nested-{depth}.gguf"
        path.write_bytes(nested_array_gguf(depth))
        with pytest.raises(PackagingError, match="nested deeper than 8 levels"):
            read_gguf(path)


def _gguf_with_strings(pairs):
    """A GGUF v3 file's bytes with these (key, string value) pairs and no tensors."""
    import struct
    kv = b""
    for key, value in pairs:
        kv += struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)  # GGUFValueType.STRING
        kv += struct.pack("<Q", len(value)) + value
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs)) + kv


def test_a_hostile_mirrors_huge_metadata_string_is_left_out_of_the_config(tmp_path):
    """A 2 MiB string would be copied into config.json and every listing; real ones (chat
    templates) are tens of KB."""
    path = tmp_path / "long.gguf"
    path.write_bytes(_gguf_with_strings([(b"general.architecture", b"llama"),
                                         (b"hostile.blob", b"x" * (2 << 20))]))
    gguf = read_gguf(path)["gguf"]
    assert gguf["general.architecture"] == "llama" and "hostile.blob" not in gguf


def test_a_metadata_key_of_megabytes_is_refused(tmp_path):
    path = tmp_path / "key.gguf"
    path.write_bytes(_gguf_with_strings([(b"k" * (1 << 20), b"v")]))
    with pytest.raises(PackagingError, match="key longer than"):
        read_gguf(path)


def test_arrays_of_arrays_are_walked_not_built(tmp_path):
    """Eight levels of six items each: 1.7 million values, rendered empty as DMR does."""
    import struct
    width, depth = 6, 8

    def array(level):
        if level == depth:
            return struct.pack("<IQ", 0, width) + bytes(width)  # UINT8 x width
        return struct.pack("<IQ", 9, width) + array(level + 1) * width
    name = b"hostile.wide"
    kv = struct.pack("<Q", len(name)) + name + struct.pack("<I", 9) + array(1)
    path = tmp_path / "wide.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv)
    assert read_gguf(path)["gguf"] == {"hostile.wide": ""}
