"""Text from elsewhere, made safe to print on a terminal.

What the CLI prints mostly comes from somewhere else: a server's answers and errors, which pass on
a registry's or a hub's messages (a registry's ``errors[].message`` reaches `model pull`), model
names and tags, search results, logs, recorded requests, and a model's own answers in `model run`.
Any of them may carry terminal controls: an OSC sequence sets the window title or, on terminals
that allow it, writes the clipboard (OSC 52); CSI sequences clear the screen, move the cursor and
colour text, so an error can hide or fake what a command printed. :func:`terminal_safe` takes
them all out; the CLI prints such text only through it, at a few chokepoints: :func:`echo`,
``client.fail``, the table printer, the progress printer, and the log, request and chat printers.

What goes: every C0 control but newline and tab (ESC, BEL, backspace, carriage return...), DEL,
every C1 control (U+0080-U+009F: U+009B is a one-character CSI to terminals that decode C1), whole
ESC sequences (CSI, OSC/DCS/APC/PM/SOS strings up to their terminator, two-character escapes) so
their parameters leave no litter, and the Unicode bidi embedding, override and isolate controls
(U+202A-U+202E, U+2066-U+2069): they make text display in another order than it is read ("Trojan
Source"), so a model name or a message could show what it does not say. Right-to-left text needs
none of them (the implicit bidi algorithm orders it) and keeps its marks (U+200E/U+200F).

JSON output (``--json``) is printed with ``json.dumps``, whose default ``ensure_ascii`` writes
every control and non-ASCII character as a ``\\u`` escape: it needs no filtering, and keeps the
data exact for programs.
"""

import re

import click

# An ESC sequence, or its one-character C1 equivalent, with its parameters:
#   CSI  ESC [ (or U+009B) parameter bytes, intermediate bytes, one final byte
#   strings: OSC ESC ] (U+009D), DCS ESC P (U+0090), SOS ESC X (U+0098), PM ESC ^ (U+009E),
#        APC ESC _ (U+009F), up to BEL or ST (ESC \ or U+009C); an unterminated one is left to
#        the character filter, which removes its introducer and leaves its text inert
#   any other ESC + intermediates + final byte (ESC 7, ESC c, ESC ( B ...)
_SEQUENCE = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]"
    "|(?:\x1b[\\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)"
    "|\x1b[ -/]*[0-~]")
# What is left of controls after that: C0 but \t and \n, DEL, C1, bidi embeddings/overrides/isolates
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text):
    """``text`` (any value: str() of it) without terminal controls (see the module's doc);
    newlines and tabs stay. Safe on text cut anywhere: a sequence split between two calls loses
    its introducer in the first and leaves plain text in the second."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if text.isprintable():  # the common case: no controls at all (newline and tab count)
        return text
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


def echo(message="", err=False, nl=True):
    """``click.echo`` of text that came from a server, registry, hub or model: through
    :func:`terminal_safe` first."""
    click.echo(terminal_safe(message), err=err, nl=nl)
