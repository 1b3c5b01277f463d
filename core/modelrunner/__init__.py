"""modelrunner: pull, package, run and serve AI models, wire-compatible with Docker Model Runner."""

from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
