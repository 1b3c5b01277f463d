"""OpenAI's transcription answers, from whisper-server's ``verbose_json``.

The runner is always asked for its verbose JSON (segments with times, tokens with times when
words are wanted) and this renders what the client asked for: ``json`` ``{"text"}``, ``text``,
``srt``, ``vtt`` or ``verbose_json`` (OpenAI's: task, language, duration, text, segments and/or
words as ``timestamp_granularities`` says, usage). One place, so every format tells the same text.
"""

import json
import string
import zlib

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
CONTENT_TYPES = {"json": "application/json", "verbose_json": "application/json",
                 "text": "text/plain; charset=utf-8", "srt": "application/x-subrip",
                 "vtt": "text/vtt"}


def segments(verbose):
    """The runner's segments, their ends (and their words' ends) within the audio: whisper
    stamps the last segment of a window with the window's end, 30 s, whatever the audio's."""
    duration = float(verbose.get("duration") or 0)
    found = [dict(s) for s in verbose.get("segments") or () if isinstance(s, dict)]
    for s in found:
        if duration:
            s["end"] = min(float(s.get("end") or 0), duration)
            s["words"] = [{**w, "end": min(float(w.get("end") or 0), duration)}
                          for w in s.get("words") or () if isinstance(w, dict)]
    return found


def full_text(verbose):
    return "".join(str(s.get("text", "")) for s in segments(verbose)).strip()


def _clock(seconds, sep):
    ms = int(round(float(seconds or 0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt(verbose):
    return "".join(f"{i}\n{_clock(s.get('start'), ',')} --> {_clock(s.get('end'), ',')}\n"
                   f"{str(s.get('text', '')).strip()}\n\n"
                   for i, s in enumerate(segments(verbose), 1))


def vtt(verbose):
    return "WEBVTT\n\n" + "".join(
        f"{_clock(s.get('start'), '.')} --> {_clock(s.get('end'), '.')}\n"
        f"{str(s.get('text', '')).strip()}\n\n" for s in segments(verbose))


def words(verbose):
    """Words with times from whisper's tokens: a token that starts with a space starts a word;
    punctuation stays out of the word, as OpenAI's word list has it."""
    found = []
    for segment in segments(verbose):
        for token in segment.get("words") or ():
            text = str(token.get("word", ""))
            if text.startswith("[_") or text.startswith("<|"):
                continue   # whisper's special tokens, if the runner let any through
            start, end = float(token.get("start") or 0), float(token.get("end") or 0)
            if found and not text.startswith(" ") and not found[-1]["closed"]:
                found[-1]["word"] += text
                found[-1]["end"] = end
            else:
                found.append({"word": text, "start": start, "end": end, "closed": False})
            if text.strip() and all(c in string.punctuation for c in text.strip()):
                found[-1]["closed"] = True
    out = []
    for w in found:
        word = w["word"].strip().strip(string.punctuation.replace("'", ""))
        if word:
            out.append({"word": word, "start": round(w["start"], 2), "end": round(w["end"], 2)})
    return out


def _segment(i, s, temperature):
    text = str(s.get("text", ""))
    raw = text.encode()
    return {"id": i, "seek": int(round(float(s.get("start") or 0) * 100)),
            "start": float(s.get("start") or 0), "end": float(s.get("end") or 0),
            "text": text, "tokens": [int(t) for t in s.get("tokens") or ()],
            "temperature": float(s.get("temperature", temperature) or 0),
            "avg_logprob": float(s.get("avg_logprob") or 0),
            "compression_ratio": len(raw) / max(1, len(zlib.compress(raw))),
            "no_speech_prob": float(s.get("no_speech_prob") or 0)}


def render(verbose, response_format, granularities=("segment",), task="transcribe",
           temperature=0.0):
    """(content type, body bytes) of the answer in ``response_format``."""
    duration = float(verbose.get("duration") or 0)
    usage = {"type": "duration", "seconds": int(-(-duration // 1))}
    text = full_text(verbose)
    if response_format == "text":
        body = text + "\n"
    elif response_format == "srt":
        body = srt(verbose)
    elif response_format == "vtt":
        body = vtt(verbose)
    elif response_format == "verbose_json":
        answer = {"task": task, "language": verbose.get("language") or "english",
                  "duration": duration, "text": text}
        if "word" in granularities:
            answer["words"] = words(verbose)
        if "segment" in granularities or "word" not in granularities:
            answer["segments"] = [_segment(i, s, temperature)
                                  for i, s in enumerate(segments(verbose))]
        answer["usage"] = usage
        body = json.dumps(answer)
    else:
        body = json.dumps({"text": text, "usage": usage})
    return CONTENT_TYPES[response_format], body.encode()


def stream_events(verbose):
    """OpenAI's transcription stream: a ``transcript.text.delta`` per segment, then
    ``transcript.text.done``. whisper-server answers once decoding ends, so the deltas come
    together; a client that streams gets the same text as one that does not."""
    for i, segment in enumerate(segments(verbose)):
        delta = str(segment.get("text", ""))
        yield f"data: {json.dumps({'type': 'transcript.text.delta', 'delta': delta.lstrip() if i == 0 else delta})}\n\n".encode()
    yield f"data: {json.dumps({'type': 'transcript.text.done', 'text': full_text(verbose)})}\n\n".encode()
