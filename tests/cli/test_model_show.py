"""`model show` prints what the server answers, whatever engine or format it comes from: the CLI
names none. An engine installed after the CLI was written (here an ONNX one) gets its metadata
block and its details shown like llama.cpp's GGUF ones."""

from modelrunner.cli.show import format_model

ANSWER = {
    "id": "sha256:" + "ab" * 32, "tags": ["docker.io/ai/resnet:latest"], "created": 0,
    "config": {"format": "onnx", "architecture": "resnet50", "size": "98MB",
               "onnx": {"opset": "17", "producer": "pytorch"},
               "imagenet": {"classes": "1000"}},
    "details": {"execution_provider": "CPUExecutionProvider, the build has no CUDA",
                "batch": 8},
}


def test_show_prints_an_unknown_formats_metadata_and_its_engines_details():
    shown = format_model(ANSWER)
    assert "Format:       onnx" in shown and "Architecture: resnet50" in shown
    assert "Execution provider: CPUExecutionProvider, the build has no CUDA" in shown
    assert "Batch:        8" in shown
    assert "ONNX Metadata:\n  opset: 17\n  producer: pytorch" in shown
    assert "Imagenet Metadata:\n  classes: 1000" in shown


def test_show_keeps_dmrs_layout_for_a_gguf_model():
    shown = format_model({"id": "sha256:" + "cd" * 32, "tags": ["docker.io/ai/smollm2:latest"],
                          "config": {"format": "gguf", "architecture": "llama",
                                     "gguf": {"general.architecture": "llama"}},
                          "details": {"chat_template": "embedded in the GGUF"}})
    assert shown.startswith("Model:       sha256:" + "cd" * 32)
    assert "Chat template: embedded in the GGUF" in shown
    assert "GGUF Metadata:\n  general.architecture: llama" in shown


def test_show_of_a_server_that_sends_no_details_is_dmrs():
    """An older server, or DMR itself: no "details" key, nothing printed for it."""
    shown = format_model({"id": "sha256:" + "ef" * 32, "config": {"format": "dduf",
                                                                  "dduf": {"x": "1"}}})
    assert shown == f"Model:       sha256:{'ef' * 32}\n\nFormat:       dduf\n\nDDUF Metadata:\n  x: 1\n"
