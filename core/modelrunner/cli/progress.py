"""Rich progress bars per layer for pull and push, fed by DMR's NDJSON progress lines.

Every text in those lines is the server's, and much of it a registry's or a hub's (messages,
errors, layer ids): printed through terminal_safe, and never read as rich markup.
"""

import json

import click
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)

from .client import fail
from .terminal import terminal_safe


def show_progress(lines):
    """Draw one bar per layer; print messages; exit 1 on an error line."""
    bars = {}
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=False) as progress:

        def say(text):
            progress.console.print(terminal_safe(text), markup=False, highlight=False)

        for line in lines:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except (ValueError, RecursionError):
                say(line)
                continue
            if not isinstance(msg, dict):
                say(line)
                continue
            kind = msg.get("type")
            if kind == "error":
                progress.stop()
                fail(msg.get("message", "failed"))
            layer = msg.get("layer")
            if isinstance(layer, dict) and layer.get("id"):
                task = bars.get(layer["id"])
                if task is None:
                    name = terminal_safe(str(layer["id"]).split(":")[-1][:12])
                    task = bars[layer["id"]] = progress.add_task(name,
                                                                 total=layer.get("size") or None)
                progress.update(task, completed=layer.get("current", 0))
            elif kind in ("success", "warning") or msg.get("message"):
                say(msg.get("message", ""))
    return True


__all__ = ["show_progress", "click"]
