"""What `model run` sends for a line the user typed: ``@file`` inclusion and image paths.

* ``@path`` (also ``@"path with spaces"``, ``@'...'``), as a word of its own, is replaced by the
  file's text (DMR's run): ``summarise @notes.md``. A missing or unreadable file is an error,
  not silently sent as the literal word.
* A path ending in .png, .jpg, .jpeg or .webp (``./cat.png``, ``/tmp/a b.jpg`` quoted, or with an
  ``@``) becomes an ``image_url`` content part (a data URL) and leaves the text. A word that only
  looks like a file name (``what is a.png?``) and names no file stays text; one that is clearly
  a path (has ``/`` or ``@``) and is missing is an error.

Pure functions, so they are tested without a server (tests/cli/test_run_prompt.py).
"""

import base64
import os
import re

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_IMAGE_BYTES = 7 << 20  # base64 grows it by 4/3: the server takes request bodies up to 10 MiB
MAX_INCLUDE_BYTES = 1 << 20
_INCLUDE = re.compile(r"""(?<!\S)@(?:"([^"]+)"|'([^']+)'|([^\s"']+))""")
_IMAGE = re.compile(r"""(?<!\S)@?(?:"([^"]+?\.(?:png|jpe?g|webp))"|'([^']+?\.(?:png|jpe?g|webp))'"""
                    r"""|([^\s"']+?\.(?:png|jpe?g|webp)))(?=[\s,;:!?)]|$)""", re.IGNORECASE)


class PromptError(Exception):
    """A prompt that cannot be sent as typed (a missing file, a file too big)."""


def is_image_path(path):
    return path.lower().endswith(IMAGE_SUFFIXES)


def include_files(text):
    """``text`` with every ``@file`` (not an image) replaced by the file's content."""
    def replace(match):
        path = next(g for g in match.groups() if g)
        if is_image_path(path):
            return match.group(0)  # images become content parts: see extract_images
        full = os.path.expanduser(path)
        try:
            if os.path.getsize(full) > MAX_INCLUDE_BYTES:
                raise PromptError(f"@{path} is larger than {MAX_INCLUDE_BYTES >> 20} MiB")
            with open(full, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            raise PromptError(f"@{path}: no such file") from None
        except IsADirectoryError:
            raise PromptError(f"@{path} is a directory, not a file") from None
        except UnicodeDecodeError:
            raise PromptError(f"@{path} is not a text file") from None
        except OSError as e:
            raise PromptError(f"@{path}: {e.strerror or e}") from None
    return _INCLUDE.sub(replace, text)


def _media_type(data, path):
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise PromptError(f"{path} is not a PNG, JPEG or WebP image")


def image_data_url(path):
    full = os.path.expanduser(path)
    try:
        if os.path.getsize(full) > MAX_IMAGE_BYTES:
            raise PromptError(f"{path} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
        with open(full, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PromptError(f"{path}: {e.strerror or e}") from None
    return f"data:{_media_type(data, path)};base64,{base64.b64encode(data).decode()}"


def extract_images(text):
    """(text without the image paths, [data URLs]) for the image files ``text`` names."""
    urls = []

    def replace(match):
        path = next(g for g in match.groups() if g)
        explicit = match.group(0).startswith("@") or "/" in path or os.sep in path
        if not os.path.exists(os.path.expanduser(path)):
            if explicit:
                raise PromptError(f"{path}: no such image file")
            return match.group(0)
        urls.append(image_data_url(path))
        return ""
    stripped = _IMAGE.sub(replace, text)
    if not urls:
        return text, urls
    return re.sub(r"[ \t]{2,}", " ", stripped).strip(), urls


def user_content(text):
    """The user message's ``content``: the text with files included, and, when it names images,
    a list of a text part and ``image_url`` parts (OpenAI's shape)."""
    text = include_files(text)
    text, images = extract_images(text)
    if not images:
        return text
    parts = [{"type": "text", "text": text}] if text else []
    return parts + [{"type": "image_url", "image_url": {"url": url}} for url in images]
