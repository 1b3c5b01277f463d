"""Helpers shared by the OpenAI dialect tests."""

import re

MODEL = "ai/smollm2"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")


def strip_ansi(text):
    return ANSI.sub("", text).replace("\r", "")
