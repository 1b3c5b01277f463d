"""modelrunner-whisper: speech to text, whisper.cpp's ``whisper-server`` as an engine.

The format ``whisper`` (a whisper.cpp ggml file, ``model package --format whisper``), its
engine (engine.py: argv in args.py, the binary built in build.py) and OpenAI's audio routes
(routes.py, with audio conversion in audio.py and the answer formats in formats.py).
"""

from modelrunner import hookimpl

from . import routes
from .engine import WhisperEngine


@hookimpl
def register_engines(register, settings):
    register(WhisperEngine(settings))


@hookimpl
def register_routes(app, runtime):
    routes.register(app, runtime)
