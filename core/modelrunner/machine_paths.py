"""No path of the server's machine in what a client is answered: :func:`hide_paths`.

Error messages carry paths: a failed load ends with the runner's log (llama-server's command line
names its binary and the bundle's GGUF file, its own lines name them again), a GGUF or tar read
names the blob's file, an ``OSError`` names what it could not open. A client learns nothing it
needs from them, and a lot about the machine (user names, where the store and the software live).
So every error body goes through :func:`hide_paths` (the app's one error path, and the few
dialect writers of errors inside a stream); the server log keeps the whole message.

What it does: the store's folder (each app registers its ``models_path`` with :func:`add_root`)
becomes ``<store>``, so ``<store>/bundles/sha256/<id>/model/model.gguf`` still says which model;
any other absolute path under one of this machine's top-level folders (``/home/...``,
``/usr/...``, ``/tmp/...``) keeps only its last name, ``…/llama-server``. Paths of URLs, and
absolute names that are no folder of this machine (API routes such as ``/v1/chat/completions``),
stay as they are.
"""

import os
import re
import threading

_roots = {}  # path -> label, longest first when replaced
_lock = threading.Lock()
_pattern = None

_PART = r"[^\s/'\"`,;:()\[\]{}<>|=*?]"
# An absolute path: at the start of a word (not inside a URL or a relative path), or a unix:// URL's
_PATH = re.compile(rf"(?:(?<=unix://)|(?<![\w.~:/<>@%+-]))"
                   rf"/(?P<first>{_PART}+)(?P<rest>(?:/{_PART}*)+)")


def _top_folders():
    try:
        return frozenset(name for name in os.listdir("/") if os.path.isdir("/" + name))
    except OSError:
        return frozenset()


_TOP = _top_folders()


def add_root(path, label="<store>"):
    """Show ``path`` (and what it resolves to) as ``label`` in answers from now on."""
    global _pattern
    names = {str(path).rstrip("/")}
    try:
        names.add(os.path.realpath(path).rstrip("/"))
    except (OSError, ValueError):
        pass
    with _lock:
        for name in names:
            if len(name) > 1:  # never "/" itself
                _roots[name] = label
        ordered = sorted(_roots, key=len, reverse=True)
        _pattern = re.compile("|".join(rf"{re.escape(r)}(?=/|$|[^\w.-])" for r in ordered))


def _short(match):
    if match.group("first") not in _TOP:
        return match.group(0)
    last = [part for part in match.group("rest").split("/") if part]
    return "…/" + last[-1] if last else "…"


def hide_paths(text):
    """``text`` without this machine's paths (see the module's doc); anything else unchanged."""
    if not isinstance(text, str) or "/" not in text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(lambda m: _roots[m.group(0)], text)
    return _PATH.sub(_short, text)
