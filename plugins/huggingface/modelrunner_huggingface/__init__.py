"""modelrunner's Hugging Face source: ``hf.co/org/repo[:quant]`` pulled natively from the Hub.

Registered through the entry point group ``modelrunner`` (name ``huggingface``). It handles the
registry ``huggingface.co`` (``hf.co`` references are normalised to it by the core) and honours
``HF_ENDPOINT`` (a mirror or a private hub) and ``HF_TOKEN``. See :mod:`.source` for how a pull
works and :mod:`.selection` for which files make the model.
"""

from modelrunner import hookimpl

from .source import HuggingFaceSource

@hookimpl
def register_sources(register, settings):
    register(HuggingFaceSource())
