"""Uploaded audio as whisper-server reads it, bounded. A plain WAV (PCM or float, mono or
stereo, 8 to 48 kHz: its length is its size over its byte rate) goes as it is; everything else
(MP3, FLAC, Ogg, Opus, WebM from a browser's recorder, M4A/MP4, AAC...) is converted by ffmpeg
to 16 kHz mono WAV first, here in the API worker, so the runner never shells out. Audio that
neither can read is the caller's 400.

Why convert even what whisper.cpp could decode itself: an upload is hostile. Its size says
nothing of its length (a 20 kB WAV whose header says 1 Hz is 5 hours at 16 kHz; FLAC or Ogg of
silence are hours per megabyte), and whisper.cpp decodes all of it into memory and works through
it. ffmpeg stops at ``max_seconds`` (the ``whisper_max_seconds`` setting), and a longer audio is
a 400. And ffmpeg itself reads only the upload: only the ``file`` protocol (for its own temporary
file) and only the audio containers in :data:`FORMATS`: an HLS playlist or ffconcat list naming
``file:/home/...`` or ``http://169.254.169.254/...`` would otherwise be read into the transcript.
"""

import os
import shutil
import struct
import subprocess
import tempfile

from modelrunner import ModelRunnerError

FFMPEG_TIMEOUT = 300  # seconds: far more than decoding 25 MB of any format takes
MAX_SECONDS = 2 * 3600  # the whisper_max_seconds default: 230 MB of 16 kHz 16-bit WAV
RATE, WAV_HEADER = 16000, 44
# ffmpeg's demuxers for the audio (and audio-in-video) files people upload; none of them opens
# another file or URL (HLS, DASH, concat, image sequences, tee... are left out on purpose)
FORMATS = ("wav,w64,mp3,flac,ogg,matroska,webm,mov,mp4,m4a,3gp,aac,asf,avi,mpeg,mpegts,amr,"
           "aiff,caf")


def _wav_format(data):
    """(format, channels, rate, bits) of a WAV's first chunk when it is 'fmt ', else None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or data[12:16] != b"fmt " or len(data) < 36:
        return None
    audio_format, channels, rate = struct.unpack("<HHI", data[20:28])
    return audio_format, channels, rate, struct.unpack("<H", data[34:36])[0]


def wav_seconds(data):
    """The most seconds a plain WAV whisper.cpp reads as it is can last (its size over its byte
    rate): PCM or float, mono or stereo, 8 to 48 kHz; None for any other file."""
    found = _wav_format(data)
    if found is None:
        return None
    audio_format, channels, rate, bits = found
    if audio_format not in (1, 3) or channels not in (1, 2) or not 8000 <= rate <= 48000 \
            or bits not in (8, 16, 24, 32):
        return None
    return (len(data) - WAV_HEADER) / (rate * channels * bits // 8)


def native(data):
    """True for what whisper.cpp reads itself: WAV (RIFF/WAVE), FLAC, MP3 (ID3 or an MPEG audio
    frame sync with a layer: ADTS AAC has the same sync and layer 0)."""
    return ((data[:4] == b"RIFF" and data[8:12] == b"WAVE") or data[:4] == b"fLaC"
            or data[:3] == b"ID3"
            or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06))


def bad_audio(message):
    return ModelRunnerError(message, status=400, param="file", code="invalid_audio")


def too_long(max_seconds):
    return bad_audio(f"the audio is longer than {max_seconds} seconds (the whisper_max_seconds "
                     f"setting)")


def prepare(data, filename="audio", max_seconds=MAX_SECONDS):
    """(bytes, filename) to send to whisper-server: the upload itself, or ffmpeg's WAV of it."""
    if not data:
        raise bad_audio("the audio file is empty")
    seconds = wav_seconds(data)
    if seconds is not None:
        if seconds > max_seconds:
            raise too_long(max_seconds)
        return data, filename
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        if native(data) and data[:4] != b"RIFF":
            return data, filename  # unbounded in length: install ffmpeg (see the docstring)
        raise bad_audio("this audio is not a PCM WAV, MP3 or FLAC, and converting it needs "
                        "ffmpeg, which the server does not have (apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory(prefix="mr-audio-") as tmp:
        source, target = os.path.join(tmp, "in"), os.path.join(tmp, "out.wav")
        with open(source, "wb") as f:
            f.write(data)
        try:
            done = subprocess.run(
                [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
                 "-protocol_whitelist", "file", "-format_whitelist", FORMATS, "-i", source,
                 "-vn", "-map", "0:a:0", "-t", str(max_seconds + 1), "-ar", str(RATE), "-ac", "1",
                 "-c:a", "pcm_s16le", "-f", "wav", target],
                capture_output=True, timeout=FFMPEG_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise bad_audio("the audio took too long to decode") from None
        size = os.path.getsize(target) if os.path.exists(target) else 0
        if done.returncode != 0 or size <= WAV_HEADER:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1].replace(source, "the file") if detail else "no audio stream"
            if tmp in reason or "whitelist" in reason:  # a path or what ffmpeg refused to open
                reason = "not an audio file"
            elif any("matches no streams" in line for line in detail):
                reason = "it has no audio stream"
            raise bad_audio(f"could not read the audio ({filename}): {reason[:200]}")
        if size > WAV_HEADER + 2 * RATE * max_seconds:
            raise too_long(max_seconds)
        with open(target, "rb") as f:
            return f.read(), os.path.splitext(filename)[0] + ".wav"
