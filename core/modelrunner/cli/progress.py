"""Rich progress bars per layer for pull and push, fed by DMR's NDJSON progress lines."""

import json

import click
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)

from .client import fail


def show_progress(lines):
    """Draw one bar per layer; print messages; exit 1 on an error line."""
    bars = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=False) as progress:
        for line in lines:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                progress.console.print(line)
                continue
            kind = msg.get("type")
            if kind == "error":
                progress.stop()
                fail(msg.get("message", "failed"))
            layer = msg.get("layer")
            if layer and layer.get("id"):
                task = bars.get(layer["id"])
                if task is None:
                    task = bars[layer["id"]] = progress.add_task(layer["id"].split(":")[-1][:12],
                                                                 total=layer.get("size") or None)
                progress.update(task, completed=layer.get("current", 0))
            elif kind in ("success", "warning") or msg.get("message"):
                progress.console.print(msg.get("message", ""))
    return True


__all__ = ["show_progress", "click"]
