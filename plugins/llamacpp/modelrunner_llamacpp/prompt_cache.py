"""Prompt caches that outlive the runner: llama-server's slot save and restore.

A coding agent's conversation returns after a coffee break, long after the keep-alive unloaded
its runner; without its KV cache it pays its whole prompt again (minutes on a CPU). So before a
runner stops (``LlamaCppEngine.before_stop``) each slot that holds a prompt is saved with
``POST /slots/{id}?action=save`` into the model's folder of the store's cache area (llama-server
runs with ``--slot-save-path`` there), and once a new runner is healthy (``after_ready``) the
most recent saves are restored into its free slots (``?action=restore``). llama-server's own
slot choice (the longest common prefix, ``--slot-prompt-similarity``) then sends a returning
conversation to the slot that holds its prefix, and only its new tokens are processed.

A saved file is only as good as what it was made with: it is KV state, meaningful only to the
same weights, the same llama-server build and the same KV-shaping flags (context per slot, cache
types, flash attention, RoPE...). Each file ``<stem>.bin`` is published with a sidecar
``<stem>.json`` that binds it to them (:func:`binding`) and records its size. A save goes to
``tmp-<stem>.bin`` first; the sidecar is written next, then the data renamed into place, so a
crash at any point leaves either a complete pair or files that :func:`scan` discards. A file
whose sidecar is missing, unreadable, for another binding or another size is deleted, never
loaded.
"""

import json
import logging
import os
import secrets
import time
from pathlib import Path

import modelrunner

log = logging.getLogger("modelrunner.llamacpp")

SIDECAR_FORMAT = 1

# llama-server flags that shape the KV cache a slot file holds (short spellings mapped to the
# long ones): a file saved under other values of these is not restored
KV_FLAGS = {
    "--ctx-size": "--ctx-size", "-c": "--ctx-size",
    "--parallel": "--parallel", "-np": "--parallel",
    "--kv-unified": "--kv-unified", "-kvu": "--kv-unified",
    "--no-kv-unified": "--no-kv-unified", "--kv-unified-per-slot": "--kv-unified-per-slot",
    "--cache-type-k": "--cache-type-k", "-ctk": "--cache-type-k",
    "--cache-type-v": "--cache-type-v", "-ctv": "--cache-type-v",
    "--flash-attn": "--flash-attn", "-fa": "--flash-attn",
    "--swa-full": "--swa-full", "--no-kv-offload": "--no-kv-offload", "-nkvo": "--no-kv-offload",
    "--n-gpu-layers": "--n-gpu-layers", "-ngl": "--n-gpu-layers", "--gpu-layers": "--n-gpu-layers",
    "--split-mode": "--split-mode", "-sm": "--split-mode",
    "--tensor-split": "--tensor-split", "-ts": "--tensor-split",
    "--rope-scaling": "--rope-scaling", "--rope-scale": "--rope-scale",
    "--rope-freq-base": "--rope-freq-base", "--rope-freq-scale": "--rope-freq-scale",
    "--yarn-orig-ctx": "--yarn-orig-ctx", "--yarn-ext-factor": "--yarn-ext-factor",
    "--yarn-attn-factor": "--yarn-attn-factor", "--yarn-beta-slow": "--yarn-beta-slow",
    "--yarn-beta-fast": "--yarn-beta-fast",
    "--model-draft": "--model-draft", "--mmproj": "--mmproj",
    "--embeddings": "--embeddings", "--reranking": "--reranking", "--pooling": "--pooling",
}


def kv_shape(argv):
    """{flag: value (True for a switch)} of the KV-shaping flags in a llama-server ``argv``, the
    last one given winning, as llama-server reads them."""
    words = modelrunner.engine_args.split_flags([str(a) for a in argv[1:]])
    shape, i = {}, 0
    while i < len(words):
        word = words[i]
        has_value = i + 1 < len(words) and not _is_flag(words[i + 1])
        if word in KV_FLAGS:
            shape[KV_FLAGS[word]] = words[i + 1] if has_value else True
        i += 2 if _is_flag(word) and has_value else 1
    return shape


def _is_flag(word):
    if not word.startswith("-"):
        return False
    try:
        float(word)
        return False  # a negative number is a value
    except ValueError:
        return True


def binding(model_id, build, argv):
    """What a slot file is bound to: the model's digest, the llama-server build (its build_info,
    less where it lies on disk) and the KV-shaping flags it ran with."""
    build = {k: v for k, v in (build or {}).items() if k != "path"}
    return {"model": str(model_id), "build": build, "kv": kv_shape(argv)}


def scan(folder, bound):
    """The files of ``folder`` that may be restored, newest first, as [(stem, sidecar)]; every
    other file there (another binding, no sidecar, a wrong size, a save that never finished) is
    deleted."""
    folder = Path(folder)
    groups = {}
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            stem = path.name.removeprefix("tmp-").split(".", 1)[0]
            groups.setdefault(stem, []).append(path)
    good = []
    for stem, paths in groups.items():
        data, side = folder / f"{stem}.bin", folder / f"{stem}.json"
        reason = _refuse(paths, data, side, bound)
        if reason:
            log.info("discarding saved prompt cache %s: %s", stem, reason)
            for path in paths:
                _unlink(path)
            continue
        good.append((data.stat().st_mtime, stem, json.loads(side.read_text())))
    return [(stem, sidecar) for _, stem, sidecar in sorted(good, key=lambda g: g[:2],
                                                           reverse=True)]


def _refuse(paths, data, side, bound):
    """Why this group of files may not be restored (None: it may)."""
    if sorted(paths) != sorted([data, side]):
        return "an unfinished save (no sidecar, or data not published)"
    try:
        sidecar = json.loads(side.read_text())
    except (OSError, ValueError):
        return "an unreadable sidecar"
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        return "a sidecar of another format"
    for key in ("model", "build", "kv"):
        if sidecar.get(key) != bound[key]:
            return f"saved for another {key}"
    try:
        if data.stat().st_size != sidecar.get("bytes"):
            return "truncated (its size is not the one saved)"
    except OSError:
        return "unreadable"
    return None


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def save(runner, bound, timeout=60.0):
    """Save each slot of ``runner`` (a modelrunner.RunnerHandle) that took a request into its
    cache folder, published with its sidecar; returns the stems published."""
    folder = Path(runner.cache_dir)
    status, slots = runner.request("GET", "/slots", timeout=timeout)
    if status != 200 or not isinstance(slots, list):
        log.warning("cannot list the slots to save (HTTP %s)", status)
        return []
    published = []
    for slot in slots:
        if not isinstance(slot, dict) or not slot.get("n_prompt_tokens"):
            continue  # never used by this runner: nothing new to keep
        stem = f"{int(time.time() * 1000):013x}-{slot['id']}-{secrets.token_hex(4)}"
        tmp = folder / f"tmp-{stem}.bin"
        status, answer = runner.request("POST", f"/slots/{slot['id']}?action=save",
                                        {"filename": tmp.name}, timeout=timeout)
        if status != 200 or not isinstance(answer, dict) or not answer.get("n_saved"):
            _unlink(tmp)
            if status != 200:
                log.warning("llama-server did not save slot %s: HTTP %s %s", slot["id"], status,
                            answer)
            continue
        try:
            os.chmod(tmp, 0o600)
            size = tmp.stat().st_size
            if size != answer.get("n_written"):
                raise OSError(f"wrote {size} bytes, said {answer.get('n_written')}")
            sidecar = {"format": SIDECAR_FORMAT, **bound, "tokens": answer["n_saved"],
                       "bytes": size, "saved_at": time.time()}
            side_tmp = folder / f"tmp-{stem}.json"
            modelrunner.private_files.write_private(side_tmp, json.dumps(sidecar))
            os.replace(side_tmp, folder / f"{stem}.json")
            os.replace(tmp, folder / f"{stem}.bin")  # published: both halves are there
        except OSError as exc:
            log.warning("could not publish the saved slot %s: %s", slot["id"], exc)
            for path in (tmp, folder / f"tmp-{stem}.json", folder / f"{stem}.json"):
                _unlink(path)
            continue
        published.append(stem)
    return published


def restore(runner, bound, timeout=60.0):
    """Restore the newest matching saves into ``runner``'s free slots (all of them, on a runner
    that just started), discarding what does not match; returns [(slot id, stem)]."""
    folder = Path(runner.cache_dir)
    candidates = scan(folder, bound)
    if not candidates:
        return []
    status, slots = runner.request("GET", "/slots", timeout=timeout)
    if status != 200 or not isinstance(slots, list):
        log.warning("cannot list the slots to restore into (HTTP %s)", status)
        return []
    free = [s["id"] for s in slots if isinstance(s, dict) and not s.get("is_processing")]
    restored = []
    for slot_id, (stem, _) in zip(free, candidates):
        status, answer = runner.request("POST", f"/slots/{slot_id}?action=restore",
                                        {"filename": f"{stem}.bin"}, timeout=timeout)
        if status != 200:  # a file this llama-server cannot read: never offered again
            log.info("discarding saved prompt cache %s: llama-server refused it (%s)", stem,
                     answer)
            _unlink(folder / f"{stem}.bin")
            _unlink(folder / f"{stem}.json")
            continue
        for name in (f"{stem}.bin", f"{stem}.json"):  # its last use, for the LRU budget
            try:
                os.utime(folder / name)
            except FileNotFoundError:
                pass
        restored.append((slot_id, stem))
    return restored
