"""Uploaded audio as whisper-server reads it: WAV, MP3 and FLAC go as they are (whisper.cpp
decodes them itself, with miniaudio); anything else (Ogg, Opus, WebM from a browser's recorder,
M4A/MP4, AAC...) is converted by ffmpeg to 16 kHz mono WAV first, here in the API worker, so the
runner never shells out. Audio that neither can read is the caller's 400."""

import os
import shutil
import subprocess
import tempfile

from modelrunner import ModelRunnerError

FFMPEG_TIMEOUT = 300  # seconds: far more than decoding 25 MB of any format takes


def native(data):
    """True for what whisper.cpp reads itself: WAV (RIFF/WAVE), FLAC, MP3 (ID3 or frame sync)."""
    return ((data[:4] == b"RIFF" and data[8:12] == b"WAVE") or data[:4] == b"fLaC"
            or data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0))


def bad_audio(message):
    return ModelRunnerError(message, status=400, param="file", code="invalid_audio")


def prepare(data, filename="audio"):
    """(bytes, filename) to send to whisper-server: the upload itself, or ffmpeg's WAV of it."""
    if not data:
        raise bad_audio("the audio file is empty")
    if native(data):
        return data, filename
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise bad_audio("this audio is not WAV, MP3 or FLAC, and converting it needs ffmpeg, "
                        "which the server does not have (apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory(prefix="mr-audio-") as tmp:
        source, target = os.path.join(tmp, "in"), os.path.join(tmp, "out.wav")
        with open(source, "wb") as f:
            f.write(data)
        try:
            done = subprocess.run(
                [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", source,
                 "-vn", "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", target],
                capture_output=True, timeout=FFMPEG_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise bad_audio("the audio took too long to decode") from None
        converted = os.path.exists(target) and os.path.getsize(target) > 44  # more than a header
        if done.returncode != 0 or not converted:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1].replace(source, "the file") if detail else "no audio stream"
            raise bad_audio(f"could not read the audio ({filename}): {reason[:200]}")
        with open(target, "rb") as f:
            return f.read(), os.path.splitext(filename)[0] + ".wav"
