"""What a terminal shows of the CLI's output: the text without ANSI escape sequences."""

import re

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")


def strip_ansi(text):
    return ANSI.sub("", text).replace("\r", "")
