"""Which files of a Hugging Face repository make the model (DMR ``pkg/distribution/huggingface``).

Pure functions over the repository listing, so they are tested without a Hub:

* ``keep``: weights (.gguf/.safetensors) and configs (.json, .txt, .md, .vocab, tokenizer.model,
  *.jinja, *chat_template*); hidden files (.gitattributes) never.
* ``select_gguf``: the quantisation named by the tag, matched in the file name after ``-``, ``.``
  or ``_`` and followed by the end or another separator, case-insensitively. "latest", "main" or
  no tag mean Q4_K_M, else the alphabetically first GGUF; a sharded quant comes with all its
  shards (``-0000i-of-0000N``) in order. Files naming "mmproj" are kept apart (F16 preferred).
  Unlike DMR, an explicit quant the repo lacks is an error listing what it has, rather than a
  silent fallback to another quant.
"""

import posixpath
import re
from dataclasses import dataclass

DEFAULT_QUANT = "Q4_K_M"
DEFAULT_TAGS = ("", "latest", "main")

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})(?=\.gguf$|$)", re.IGNORECASE)
_QUANT = re.compile(
    r"(?:^|[-._])((?:UD-)?(?:I?Q\d+(?:_[A-Z0-9]+)*|T?Q\d_\d|BF16|F16|F32|FP16|FP32|FP8|MXFP4(?:_MOE)?))$",
    re.IGNORECASE,
)
_CONFIG_SUFFIXES = (".json", ".txt", ".md", ".vocab", ".jinja")


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository listing."""

    path: str                 # path in the repository ("UD-Q4_K_XL/model-UD-Q4_K_XL.gguf")
    size: int
    sha256: str | None = None  # "sha256:<hex>" for LFS/Xet files (the Hub knows it), else None
    git_oid: str | None = None  # the git blob id (sha1 of "blob <size>\0" + content)

    @property
    def name(self):
        return posixpath.basename(self.path)


def is_weight(path):
    return path.lower().endswith((".gguf", ".safetensors"))


def is_config(path):
    name = posixpath.basename(path).lower()
    return (name.endswith(_CONFIG_SUFFIXES) or name == "tokenizer.model" or "chat_template" in name)


def keep(path):
    """True for the files DMR downloads: weights and configs, never hidden files, and only plain
    relative paths (a hostile mirror's listing may name "/etc/x.json" or "a/../../x.txt")."""
    parts = path.split("/")
    if path.startswith("/") or "\0" in path or "\\" in path or \
            any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return False
    return is_weight(path) or is_config(path)


def is_mmproj(path):
    return "mmproj" in posixpath.basename(path).lower()


def contains_quant(filename, quant):
    """DMR's ``containsQuantization``: ``quant`` after -, . or _, then the end or a separator."""
    name = filename.lower()
    if name.endswith(".gguf"):
        name = name[:-5]
    quant = quant.lower()
    for sep in "-._":
        pattern = sep + quant
        start = name.find(pattern)
        while start >= 0:
            after = start + len(pattern)
            if after == len(name) or name[after] in "-._":
                return True
            start = name.find(pattern, start + 1)
    return False


def shard_info(filename):
    """(prefix, index, total) of a ``name-0000i-of-0000N.gguf`` shard, else None."""
    m = _SHARD.search(filename)
    if not m:
        return None
    return filename[: m.start()], int(m.group(1)), int(m.group(2))


def quant_label(filename):
    """The quantisation a GGUF file name carries: "Q4_K_M", "UD-Q4_K_XL", "F16"..."""
    stem = filename[:-5] if filename.lower().endswith(".gguf") else filename
    stem = _SHARD.sub("", stem)
    m = _QUANT.search(stem)
    if m:
        return m.group(1)
    return re.split(r"[-.]", stem)[-1]


def available_quants(files):
    """Distinct quant labels of the repository's (non-mmproj) GGUF files, sorted."""
    labels = {quant_label(f.name) for f in files if f.path.lower().endswith(".gguf") and not is_mmproj(f.path)}
    return sorted(labels, key=str.lower)


def _with_shards(candidates, first):
    """``first`` alone, or every shard of its set (same folder and prefix), ordered by index."""
    info = shard_info(first.name)
    if info is None:
        return [first]
    prefix, _, total = info
    folder = posixpath.dirname(first.path)
    shards = []
    for f in candidates:
        other = shard_info(f.name)
        if other and other[0] == prefix and other[2] == total and posixpath.dirname(f.path) == folder:
            shards.append((other[1], f))
    return [f for _, f in sorted(shards, key=lambda item: item[0])]


class QuantNotFound(LookupError):
    def __init__(self, quant, available):
        self.quant = quant
        self.available = available
        super().__init__(quant)


def select_gguf(files, tag):
    """(weights, mmproj) for ``tag``; weights are one file or all shards of one quant, in order.

    Raises QuantNotFound when an explicit quant is not in the repository.
    """
    ggufs = sorted((f for f in files if f.path.lower().endswith(".gguf")), key=lambda f: f.path)
    models = [f for f in ggufs if not is_mmproj(f.path)]
    projectors = [f for f in ggufs if is_mmproj(f.path)]
    mmproj = (next((f for f in projectors if quant_label(f.name).lower() == "f16"), None)
              or next((f for f in projectors if "f16" in f.name.lower()), None)
              or (projectors[0] if projectors else None))
    if not models:
        return [], mmproj

    quant = (tag or "").strip()
    explicit = quant not in DEFAULT_TAGS
    wanted = quant if explicit else DEFAULT_QUANT
    matching = [f for f in models if contains_quant(f.name, wanted)]
    if matching:
        # Several matches (one quant in two folders, or shards): the first one and its shards.
        first = min(matching, key=lambda f: ((shard_info(f.name) or ("", 0, 0))[1] > 1, f.name, f.path))
        return _with_shards(matching, first), mmproj
    if explicit:
        raise QuantNotFound(quant, available_quants(models))
    if len(models) == 1:
        return models, mmproj
    first = sorted(models, key=lambda f: (f.name, f.path))[0]
    return _with_shards(models, first), mmproj


def select_chat_template(files):
    """The one chat template a GGUF artifact carries: chat_template.jinja, template.jinja, else the first."""
    templates = sorted((f for f in files if f.path.lower().endswith(".jinja")), key=lambda f: (f.path.count("/"), f.path))
    for preferred in ("chat_template.jinja", "template.jinja"):
        for f in templates:
            if f.name.lower() == preferred:
                return f
    return templates[0] if templates else None


def select_safetensors(files):
    """Every kept file of a safetensors repository (weights, configs, tokenizer), by path."""
    return sorted((f for f in files if keep(f.path)), key=lambda f: f.path)
