"""One public SDK name for a family of helpers: ``modelrunner.media_types.GGUF``.

Why: a plugin author reads ``modelrunner.__all__`` to learn the SDK, and twelve media type
constants or five argv helpers as top-level names would bury the few names every plugin needs.
A family keeps its members' own names (except media types, shortened) so a grep finds the core
function behind each. Members load on first use, as the top-level names do, so that
``import modelrunner`` stays cheap for the CLI.
"""

import importlib


class Namespace:
    """A read-only, lazily loaded group of SDK names, documented by its ``__doc__``."""

    def __init__(self, name, doc, members):
        # members: attribute -> "module:name" (module relative to the modelrunner package)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", dict(members))
        object.__setattr__(self, "__doc__", doc)

    def __getattr__(self, attr):
        target = self._members.get(attr)
        if target is None:
            raise AttributeError(f"modelrunner.{self._name} has no attribute {attr!r}")
        module, _, name = target.partition(":")
        value = getattr(importlib.import_module(module, "modelrunner"), name)
        object.__setattr__(self, attr, value)
        return value

    def __setattr__(self, attr, value):
        raise AttributeError(f"modelrunner.{self._name} is read-only")

    def __dir__(self):
        return sorted(self._members)

    def __repr__(self):
        return f"<modelrunner.{self._name}: {', '.join(sorted(self._members))}>"
