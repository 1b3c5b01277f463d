"""Model references, normalised exactly as Docker Model Runner does.

``smollm2`` -> ``docker.io/ai/smollm2:latest``; ``hf.co/Org/Repo:Q4_K_M`` ->
``huggingface.co/org/repo:Q4_K_M`` (the name is lower-cased, the tag keeps its case; the original
case is kept in ``Reference.original_name`` for Hugging Face API calls). 12- and 64-hex strings and
``sha256:`` digests are model IDs, resolved by the store, not here.
"""

import re
from dataclasses import dataclass

from .errors import ModelRunnerError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_NAMESPACE = "ai"
DEFAULT_TAG = "latest"
HF_REGISTRY = "huggingface.co"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REGISTRY = re.compile(r"^(?:localhost|[A-Za-z0-9.-]+\.[A-Za-z0-9-]+|[A-Za-z0-9.-]+:\d+|"
                       r"\[[0-9a-fA-F:]+\](?::\d+)?)(?::\d+)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX_ID = re.compile(r"^(?:sha256:)?([0-9a-f]{12}|[0-9a-f]{64})$")


class InvalidReference(ModelRunnerError, ValueError):
    """A reference that no registry or store could hold; answered with 400."""

    status = 400


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str          # lower-cased path, e.g. "ai/smollm2"
    tag: str | None = DEFAULT_TAG
    digest: str | None = None
    original_name: str = ""  # repository as the user typed it (Hugging Face is case-sensitive)

    def __str__(self):
        base = f"{self.registry}/{self.repository}"
        if self.digest:
            return f"{base}@{self.digest}"
        return f"{base}:{self.tag}"

    @property
    def name(self):
        """registry/repository without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def is_huggingface(self):
        return self.registry == HF_REGISTRY


def is_model_id(text):
    """True for 12/64-hex IDs and sha256: digests: these name a model in the store."""
    return bool(_HEX_ID.match(text.strip().lower())) if text else False


def parse(text):
    """Parse and normalise a reference; raises InvalidReference with a reason."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("model reference is empty")
    ref = text.strip()
    if any(c.isspace() for c in ref) or ref.startswith("/") or "\\" in ref:
        raise InvalidReference(f"invalid reference {text!r}: must be a name like ai/smollm2:latest")
    digest = None
    if "@" in ref:
        ref, digest = ref.rsplit("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid digest {digest!r}: expected sha256:<64 hex>")
    tag = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag {tag!r} in {text!r}")
    parts = ref.split("/")
    registry = None
    if len(parts) > 1 and _REGISTRY.match(parts[0]):
        registry = parts[0].lower()
        parts = parts[1:]
    if registry in ("hf.co", "www.huggingface.co"):
        registry = HF_REGISTRY
    if registry in (None, "index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and len(parts) == 1:
        parts = [DEFAULT_NAMESPACE] + parts
    original = "/".join(parts)
    lowered = [p.lower() for p in parts]
    for part in lowered:
        if part in ("", ".", "..") or not _COMPONENT.match(part):
            raise InvalidReference(f"invalid reference {text!r}: bad name component {part!r}")
    if registry == HF_REGISTRY and len(lowered) != 2:
        raise InvalidReference(f"invalid Hugging Face reference {text!r}: expected hf.co/org/repo[:quant]")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, "/".join(lowered), tag, digest, original)


def normalize(text):
    """The canonical string of a reference, as the store's tag index holds it."""
    return str(parse(text))


def display(tag):
    """How `model ls` shows a tag: DMR strips docker.io/, ai/ and :latest."""
    shown = tag
    if shown.startswith(DEFAULT_REGISTRY + "/"):
        shown = shown[len(DEFAULT_REGISTRY) + 1:]
    if shown.startswith(DEFAULT_NAMESPACE + "/"):
        shown = shown[len(DEFAULT_NAMESPACE) + 1:]
    if shown.endswith(":" + DEFAULT_TAG):
        shown = shown[: -len(DEFAULT_TAG) - 1]
    return shown


# The names the public API (``modelrunner``) gives these.
parse_reference = parse
normalize_reference = normalize
display_reference = display
