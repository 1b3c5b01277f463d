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
same weights, the same llama-server build and the same KV-shaping settings (context per slot,
cache types, flash attention, RoPE..., given as flags or as ``LLAMA_ARG_*`` variables). Each file
``<stem>.bin`` is published with a sidecar ``<stem>.json`` that binds it to them (:func:`binding`,
computed once from what started the runner, never from the binary on disk at save time) and
records its size, its checksum and a hash of the tokens it holds. A save goes to
``tmp-<stem>.bin`` first; the sidecar is written next, then the data renamed into place, each
fsynced, so a crash at any point leaves either a complete pair or files that :func:`scan`
discards. A file whose sidecar is missing or unreadable, whose size or checksum is not the one
saved, is deleted, never loaded; one saved under another build or other settings is only
skipped (the runner may be configured back; the budget's LRU removes it if not).

The folder holds one copy of a conversation: a new save deletes the older saves whose tokens
are a prefix of its own (the same conversation, shorter), a restore skips a save that is a
prefix of one already restored, and a slot whose save would not fit the budget is not saved.
"""

import hashlib
import json
import logging
import os
import re
import secrets
import struct
import time
from pathlib import Path

import modelrunner

log = logging.getLogger("modelrunner.llamacpp")

SIDECAR_FORMAT = 2  # 2: with the data's checksum and the tokens' hash (1's files are deleted)

# a slot file (llama.cpp's llama_state_seq_save_file): magic "ggsq", version, token count, tokens
SEQ_MAGIC = 0x67677371
# a save that never finished is only deleted once this old: another runner of the same model may
# be writing it now
UNFINISHED_GRACE = 300.0
# llama-server's environment variables that do not shape the KV cache; every other LLAMA_ARG_*
# (and LLAMA_ARGS) is part of the binding
HARMLESS_ENV = frozenset({
    "LLAMA_ARG_CHAT_TEMPLATE", "LLAMA_ARG_CHAT_TEMPLATE_FILE", "LLAMA_ARG_CHAT_TEMPLATE_KWARGS",
    "LLAMA_ARG_JINJA", "LLAMA_ARG_THINK", "LLAMA_ARG_REASONING_FORMAT",
    "LLAMA_ARG_REASONING_BUDGET", "LLAMA_ARG_HOST", "LLAMA_ARG_PORT", "LLAMA_ARG_ALIAS",
    "LLAMA_ARG_THREADS", "LLAMA_ARG_THREADS_BATCH", "LLAMA_ARG_TIMEOUT", "LLAMA_ARG_N_PREDICT",
    "LLAMA_ARG_SLOT_SAVE_PATH", "LLAMA_ARG_ENDPOINT_METRICS", "LLAMA_ARG_ENDPOINT_SLOTS",
    "LLAMA_ARG_ENDPOINT_PROPS", "LLAMA_ARG_NO_WEBUI", "LLAMA_ARG_LOG_FILE", "LLAMA_ARG_LOG_COLORS",
    "LLAMA_ARG_LOG_VERBOSITY", "LLAMA_ARG_LOG_PREFIX", "LLAMA_ARG_LOG_TIMESTAMPS",
})
_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|SSL", re.I)  # never written to a sidecar

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


def kv_env(environ):
    """The part of a runner's environment that shapes its KV cache: every ``LLAMA_ARG_*`` but
    the known-harmless ones (chat template, host, threads...) and ``LLAMA_ARGS``, as one digest
    (None when there is none): a value may be anything the user put there, and only equality
    matters."""
    shaping = sorted((name, str(value)) for name, value in (environ or {}).items()
                     if (name.startswith("LLAMA_ARG_") or name == "LLAMA_ARGS")
                     and name not in HARMLESS_ENV and not _SECRET.search(name))
    if not shaping:
        return None
    return hashlib.blake2b(json.dumps(shaping).encode(), digest_size=16).hexdigest()


def binding(model_id, build, argv, environ=None):
    """What a slot file is bound to: the model's digest, the llama-server build (its build_info,
    less where it lies on disk), the KV-shaping flags it ran with and the KV-shaping part of its
    environment (:func:`kv_env`). Computed once from what started the runner."""
    build = {k: v for k, v in (build or {}).items() if k != "path"}
    return {"model": str(model_id), "build": build, "kv": kv_shape(argv), "env": kv_env(environ)}


BOUND_KEYS = ("build", "kv", "env")


def read_saved(path):
    """(blake2b hex digest of the whole file, the bytes of the token ids it holds or None when
    its header is not a slot file's): one pass over the file."""
    digest = hashlib.blake2b()
    with open(path, "rb") as f:
        head = f.read(12)
        digest.update(head)
        tokens = None
        if len(head) == 12:
            magic, _, count = struct.unpack("<III", head)
            if magic == SEQ_MAGIC:
                packed = f.read(4 * count)
                digest.update(packed)
                tokens = _unpack_tokens(packed) if len(packed) == 4 * count else None
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest(), tokens


def _unpack_tokens(packed):
    """The token ids of a slot file's prompt record: llama-server writes either the plain ids or
    (newer builds) a record marked by a first id of -1: version 1, a count, the ids, then media."""
    if len(packed) >= 12 and struct.unpack_from("<i", packed)[0] == -1:
        version, count = struct.unpack_from("<II", packed, 4)
        if version == 1 and 12 + 4 * count <= len(packed):
            return packed[12:12 + 4 * count]
    return packed


def tokens_hash(tokens):
    return hashlib.blake2b(tokens, digest_size=16).hexdigest()


def _is_prefix(sidecar, tokens):
    """Whether the tokens a ``sidecar`` describes are a prefix of ``tokens`` (bytes)."""
    count = sidecar.get("tokens")
    return (isinstance(count, int) and 4 * count <= len(tokens)
            and sidecar.get("tokens_hash") == tokens_hash(tokens[:4 * count]))


def scan(folder, bound, now=None):
    """The files of ``folder`` that may be restored under ``bound``, newest first, as
    [(stem, sidecar)]. Deleted: what can never load (no sidecar, an unreadable one, a wrong size,
    another model, a save that never finished). Kept but not offered: saves of another build or
    other KV settings."""
    folder = Path(folder)
    now = time.time() if now is None else now
    groups = {}
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            stem = path.name.removeprefix("tmp-").split(".", 1)[0]
            groups.setdefault(stem, []).append(path)
    good = []
    for stem, paths in groups.items():
        data, side = folder / f"{stem}.bin", folder / f"{stem}.json"
        reason, sidecar = _refuse(paths, data, side, bound)
        if reason == "unfinished" and _newest(paths) > now - UNFINISHED_GRACE:
            continue  # perhaps being written by another runner of this model: not yet
        if reason in BOUND_KEYS:
            log.debug("skipping saved prompt cache %s: saved for another %s", stem, reason)
            continue
        if reason:
            log.info("discarding saved prompt cache %s: %s", stem, reason)
            for path in paths:
                _unlink(path)
            continue
        good.append((data.stat().st_mtime, stem, sidecar))
    return [(stem, sidecar) for _, stem, sidecar in sorted(good, key=lambda g: g[:2],
                                                           reverse=True)]


def _newest(paths):
    times = []
    for path in paths:
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def _refuse(paths, data, side, bound):
    """(why this group of files may not be restored, None when it may; its sidecar). The reason
    is one of BOUND_KEYS for a good save of another binding, "unfinished" for a save under way
    or cut off."""
    if sorted(paths) != sorted([data, side]):
        return "unfinished", None
    try:
        sidecar = json.loads(side.read_text())
    except (OSError, ValueError):
        return "an unreadable sidecar", None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        return "a sidecar of another format", None
    if sidecar.get("model") != bound["model"]:
        return "saved for another model", None
    try:
        if data.stat().st_size != sidecar.get("bytes"):
            return "truncated (its size is not the one saved)", None
    except OSError:
        return "unreadable", None
    for key in BOUND_KEYS:
        if sidecar.get(key) != bound.get(key):
            return key, sidecar
    return None, sidecar


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _used(slot):
    """Whether a slot of GET /slots took a request in this runner (a restored slot that took
    none has nothing new). Builds without ``n_prompt_tokens`` say it with ``id_task``/prompt."""
    if not isinstance(slot, dict):
        return False
    if "n_prompt_tokens" in slot:
        return bool(slot["n_prompt_tokens"])
    return bool(slot.get("prompt")) or slot.get("id_task", -1) not in (-1, None)


def bytes_per_token(folder, bound, kv_per_token=None):
    """What a saved token costs on disk: the model's KV bytes per token (``kv_per_token``, from
    its shape) plus its id and cell, else the most any earlier save of this binding cost."""
    if kv_per_token:
        return kv_per_token + 16
    rates = []
    for side in Path(folder).glob("*.json"):
        try:
            sidecar = json.loads(side.read_text())
            if all(sidecar.get(k) == bound.get(k) for k in ("model", *BOUND_KEYS)) and \
                    sidecar.get("tokens"):
                rates.append(sidecar["bytes"] / sidecar["tokens"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
    return max(rates, default=None)


def save(runner, bound, timeout=60.0, budget=None, kv_per_token=None):
    """Save each slot of ``runner`` (a modelrunner.RunnerHandle) that took a request into its
    cache folder, the most recently used first, published with its sidecar; a slot whose save
    would not fit in ``budget`` bytes (what this round already wrote counted) is skipped. An
    older save that the new one extends is deleted. Returns the stems published."""
    folder = Path(runner.cache_dir)
    status, slots = runner.request("GET", "/slots", timeout=timeout)
    if status != 200 or not isinstance(slots, list):
        log.warning("cannot list the slots to save (HTTP %s)", status)
        return []
    used = sorted((s for s in slots if _used(s)), key=lambda s: -(s.get("id_task") or 0))
    rate = bytes_per_token(folder, bound, kv_per_token) if budget else None
    published, room = [], budget
    for slot in used:
        estimate = int((slot.get("n_prompt_tokens") or 0) * (rate or 0))
        if room is not None and estimate > room:
            log.info("not saving slot %s of %s: about %d bytes, more than the %d left of the "
                     "prompt cache budget", slot.get("id"), bound["model"], estimate, room)
            continue
        stem = _save_slot(runner, folder, bound, slot, timeout, room)
        if stem is not None:
            published.append(stem)
            if room is not None:
                room -= (folder / f"{stem}.bin").stat().st_size
    return published


def _save_slot(runner, folder, bound, slot, timeout, room):
    """Save one slot and publish it (None when it was not): its temp file never outlives this."""
    stem = f"{int(time.time() * 1000):013x}-{slot['id']}-{secrets.token_hex(4)}"
    tmp, side_tmp = folder / f"tmp-{stem}.bin", folder / f"tmp-{stem}.json"
    data, side = folder / f"{stem}.bin", folder / f"{stem}.json"
    try:
        status, answer = runner.request("POST", f"/slots/{slot['id']}?action=save",
                                        {"filename": tmp.name}, timeout=timeout)
        if status != 200 or not isinstance(answer, dict) or not answer.get("n_saved"):
            if status != 200:
                log.warning("llama-server did not save slot %s: HTTP %s %s", slot["id"], status,
                            answer)
            return None
        os.chmod(tmp, 0o600)
        size = tmp.stat().st_size
        if size != answer.get("n_written"):
            raise OSError(f"wrote {size} bytes, said {answer.get('n_written')}")
        if room is not None and size > room:
            log.info("not keeping the save of slot %s: %d bytes, more than the %d left of the "
                     "prompt cache budget", slot["id"], size, room)
            return None
        checksum, tokens = read_saved(tmp)
        sidecar = {"format": SIDECAR_FORMAT, **bound, "tokens": answer["n_saved"],
                   "bytes": size, "blake2b": checksum, "saved_at": time.time()}
        if tokens is not None:
            sidecar.update(tokens=len(tokens) // 4, tokens_hash=tokens_hash(tokens))
        _fsync(tmp)
        modelrunner.private_files.write_private(side_tmp, json.dumps(sidecar))
        _fsync(side_tmp)
        os.replace(side_tmp, side)
        os.replace(tmp, data)  # published: both halves are there
        _fsync(folder, directory=True)
    except OSError as exc:
        log.warning("could not publish the saved slot %s: %s", slot["id"], exc)
        _unlink(side)
        _unlink(data)
        return None
    finally:  # a save cut off (an error, a timeout, the runner killed) leaves no temp behind
        _unlink(tmp)
        _unlink(side_tmp)
    if tokens is not None:
        _drop_superseded(folder, bound, stem, tokens)
    return stem


def _drop_superseded(folder, bound, stem, tokens):
    """Delete the older saves of this binding whose tokens the new save ``stem`` starts with: the
    same conversation, shorter (or the same): the new one serves it as well."""
    for side in folder.glob("*.json"):
        other = side.name[:-len(".json")]
        if other == stem or other.startswith("tmp-"):
            continue
        try:
            sidecar = json.loads(side.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(sidecar, dict) and all(sidecar.get(k) == bound.get(k)
                                             for k in ("model", *BOUND_KEYS)) \
                and _is_prefix(sidecar, tokens):
            log.info("dropping saved prompt cache %s: %s extends it", other, stem)
            _unlink(folder / f"{other}.bin")
            _unlink(side)


def restore(runner, bound, timeout=60.0):
    """Restore the newest matching saves into ``runner``'s free slots (all of them, on a runner
    that just started): each checked against its checksum first (deleted when it fails), none
    that is a prefix of one already restored. Returns [(slot id, stem)]."""
    folder = Path(runner.cache_dir)
    candidates = scan(folder, bound)
    if not candidates:
        return []
    status, slots = runner.request("GET", "/slots", timeout=timeout)
    if status != 200 or not isinstance(slots, list):
        log.warning("cannot list the slots to restore into (HTTP %s)", status)
        return []
    free = [s["id"] for s in slots if isinstance(s, dict) and not s.get("is_processing")]
    restored, chosen = [], []
    for stem, sidecar in candidates:
        if not free:
            break
        if any(_is_prefix(sidecar, t) for t in chosen):
            continue  # a shorter copy of a conversation already restored: not even read
        try:
            checksum, tokens = read_saved(folder / f"{stem}.bin")
        except OSError as exc:
            log.info("skipping saved prompt cache %s: %s", stem, exc)
            continue
        if checksum != sidecar.get("blake2b"):
            log.warning("discarding saved prompt cache %s: its checksum is not the one saved",
                        stem)
            _unlink(folder / f"{stem}.bin")
            _unlink(folder / f"{stem}.json")
            continue
        if tokens is not None and any(t.startswith(tokens) for t in chosen):
            continue  # a shorter copy of a conversation already restored
        slot_id = free.pop(0)
        status, answer = runner.request("POST", f"/slots/{slot_id}?action=restore",
                                        {"filename": f"{stem}.bin"}, timeout=timeout)
        if status != 200:  # a file this llama-server cannot read: never offered again
            log.info("discarding saved prompt cache %s: llama-server refused it (%s)", stem,
                     answer)
            _unlink(folder / f"{stem}.bin")
            _unlink(folder / f"{stem}.json")
            free.insert(0, slot_id)
            continue
        for name in (f"{stem}.bin", f"{stem}.json"):  # its last use, for the LRU budget
            try:
                os.utime(folder / name)
            except FileNotFoundError:
                pass
        if tokens is not None:
            chosen.append(tokens)
        restored.append((slot_id, stem))
    return restored
