"""The store's cache area: prompt caches that outlive the runner that made them.

An engine whose runner can write its prompts' KV state to files (llama.cpp's slot save) gets a
private folder per model here, ``<store>/cache/prompts/<model hex>/``, from the scheduler
(``Bundle.cache_dir``). What goes in a folder is the engine's business; this module only knows
that an *entry* is the files sharing a stem (``<stem>.bin`` and its sidecar ``<stem>.json``, or
a save still under way, ``tmp-<stem>.bin``), that its last use is the newest modification time
among them (an engine touches what it restores), and that all entries together stay within a
byte budget (the ``prompt_cache_budget`` setting), the least recently used going first.

Everything here is a prompt's KV state, i.e. the users' data: folders 0700, files 0600
(modelrunner.private). Nothing here is referenced by a model, so ``model prune`` leaves it unless
asked (``--caches``), and the store's collection never looks inside.
"""

import contextlib
import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import private

DEFAULT_BUDGET = 4 * 1024**3
OFF = (None, "", 0, "0", "none", "off", "false", "no", False)
_MODEL_HEX = re.compile(r"[0-9a-f]{64}")

log = logging.getLogger("modelrunner.prompt_caches")


@dataclass
class Entry:
    """One cached prompt: its files (data and sidecar) in one model's folder."""

    folder: Path
    stem: str
    files: list = field(default_factory=list)
    size: int = 0
    last_used: float = 0.0

    def remove(self):
        for path in self.files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:   # never stops the budget or a prune: the next run tries again
                log.warning("could not remove the prompt cache file %s: %s", path, e)


def entry_stem(name):
    """The stem that groups a file with its sidecar: ``tmp-abc.bin`` and ``abc.json`` both
    belong to ``abc``."""
    return name.removeprefix("tmp-").split(".", 1)[0]


class PromptCaches:
    """The cache area of a store rooted at ``root`` (the ``models_path``)."""

    def __init__(self, root, budget=DEFAULT_BUDGET):
        self.root = Path(root) / "cache" / "prompts"
        self.budget = int(budget or 0)

    @classmethod
    def from_settings(cls, settings):
        """The area as ``prompt_cache_budget`` says: a size, or off (0, "off", "none",
        false). A value that is neither turns the caches off and says so: a typo in one setting
        must not stop the server."""
        from ..scheduler.durations import parse_bytes
        value = settings.get("prompt_cache_budget", "4GiB")
        if isinstance(value, str) and value.strip().lower() in OFF or value in OFF:
            return cls(settings.models_path, 0)
        try:
            budget = parse_bytes(value)
        except (TypeError, ValueError):
            log.error("prompt_cache_budget %r is not a size (such as 4GiB) nor off: prompt "
                      "caches are off", value)
            budget = 0
        return cls(settings.models_path, budget)

    @property
    def enabled(self):
        """A budget of 0 turns the cache area off: no folder is handed out."""
        return self.budget > 0

    def folder(self, model_id):
        """The private folder of ``model_id``'s caches (created, 0700); OSError (NotPrivate
        among them) when the area cannot be made or is not ours."""
        name = str(model_id).split(":")[-1]
        if not _MODEL_HEX.fullmatch(name):   # a store of another kind may name models freely
            raise ValueError(f"not a model digest: {model_id!r}")
        private.private_dir(self.root.parent)
        private.private_dir(self.root)
        return private.private_dir(self.root / name)

    def entries(self):
        """Every entry of every model, oldest use first."""
        found = {}
        if not self.root.is_dir():
            return []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for path in sorted(folder.iterdir()):
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):   # only files are entries: a folder or a link
                    continue                       # put there is nobody's cache
                key = (folder, entry_stem(path.name))
                entry = found.setdefault(key, Entry(folder, key[1]))
                entry.files.append(path)
                entry.size += st.st_size
                entry.last_used = max(entry.last_used, st.st_mtime)
        return sorted(found.values(), key=lambda e: e.last_used)

    def usage(self):
        """Bytes held by the cache area."""
        return sum(e.size for e in self.entries())

    def enforce(self, now=None, grace=60.0):
        """Remove the least recently used entries until the area fits the budget; returns the
        bytes freed. An entry touched in the last ``grace`` seconds is never taken: it may be a
        save still being published."""
        if not self.enabled:
            return 0
        now = time.time() if now is None else now
        entries = self.entries()
        total = sum(e.size for e in entries)
        freed = 0
        for entry in entries:
            if total <= self.budget:
                break
            if now - entry.last_used < grace and any(p.name.startswith("tmp-")
                                                     for p in entry.files):
                continue
            entry.remove()
            total -= entry.size
            freed += entry.size
        return freed

    def forget_models(self, model_ids):
        """Remove the caches of models the store no longer has (``model prune``): a deleted
        model's users' prompts must not stay on disk. Returns (entries, bytes)."""
        keep = {str(m).split(":")[-1] for m in model_ids}
        gone = [e for e in self.entries() if e.folder.name not in keep]
        for entry in gone:
            entry.remove()
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.name not in keep and folder.is_dir() and not folder.is_symlink():
                    with contextlib.suppress(OSError):
                        folder.rmdir()
        return len(gone), sum(e.size for e in gone)

    def clear(self):
        """``model prune --caches``: remove every cached prompt; returns (entries, bytes)."""
        entries = self.entries()
        for entry in entries:
            entry.remove()
        return len(entries), sum(e.size for e in entries)


def touch(path):
    """Mark a cache file as used now (the LRU order is by modification time)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)
