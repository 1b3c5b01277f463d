"""Hostile uploads: what ffmpeg may open, how long an upload may decode to, how big a form may
grow without a Content-Length. Each is refused with OpenAI's 400, before whisper-server works."""

import struct
import subprocess

import httpx

from plugins.whisper.tests.conftest import MAX_SECONDS, MODEL


def post(srv, name, data, timeout=60):
    return httpx.post(srv.url + "/v1/audio/transcriptions", timeout=timeout,
                      files={"file": (name, data)}, data={"model": MODEL})


def playlist(path):
    return (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:{path}\n#EXT-X-ENDLIST\n"
            .encode())


def test_an_uploaded_playlist_cannot_read_the_servers_files(whisper_server, speech, tmp_path):
    secret = tmp_path / "secret.m4a"   # someone's recording on the server's disk
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(speech), "-c:a", "aac",
                    str(secret)], check=True)
    present = post(whisper_server, "list.m3u8", playlist(secret))
    missing = post(whisper_server, "list.m3u8", playlist(tmp_path / "none.m4a"))
    assert present.status_code == missing.status_code == 400
    # not read, and not even told apart from a file that does not exist
    assert present.json() == missing.json(), (present.text, missing.text)
    assert str(tmp_path) not in present.text


def wav(rate, bits, samples):
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(samples), b"WAVE", b"fmt ", 16, 1,
                       1, rate, rate * bits // 8, bits // 8, bits, b"data", len(samples)) + samples


def test_audio_longer_than_the_setting_is_refused(whisper_server):
    # 8-bit mono at 1 Hz: 4 minutes in 240 bytes; and whisper's own 16 kHz WAV, just too long
    for audio in (wav(1, 8, b"\x80" * MAX_SECONDS * 4),
                  wav(16000, 16, bytes(32000 * (MAX_SECONDS + 2)))):
        answer = post(whisper_server, "long.wav", audio)
        assert answer.status_code == 400, answer.text
        assert "whisper_max_seconds" in answer.json()["error"]["message"]


def test_a_chunked_form_is_refused_in_openais_shape(whisper_server, speech):
    def body():   # no Content-Length: the body limit cannot judge it before reading (was a 500)
        for _ in range(200):
            yield (b'--b\r\nContent-Disposition: form-data; name="timestamp_granularities[]"'
                   b"\r\n\r\nsegment\r\n")
        yield b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n' + MODEL.encode()
        yield (b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
               + speech.read_bytes() + b"\r\n--b--\r\n")
    answer = httpx.post(whisper_server.url + "/v1/audio/transcriptions", content=body(),
                        headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=60)
    assert answer.status_code == 411, answer.text
    assert "Content-Length" in answer.json()["error"]["message"]


def test_a_video_without_sound_is_told_so(whisper_server, tmp_path):
    video = tmp_path / "silent.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=s=16x16:d=1",
                    "-c:v", "mjpeg", str(video)], check=True)
    answer = post(whisper_server, video.name, video.read_bytes())
    assert answer.status_code == 400
    assert "no audio stream" in answer.json()["error"]["message"], answer.text
