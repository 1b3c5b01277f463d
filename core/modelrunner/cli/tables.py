"""Tables on the terminal, with rich imported only by the commands that draw one.

rich costs the CLI tens of milliseconds of imports; `model ls -q`, `model version` or `model rm`
never draw a table, so nothing here imports it before it is needed.
"""

import os
import sys

_console = None


def console():
    """The process's rich Console. Piped output keeps whole rows: a table is for reading, not
    for 80-column wrapping."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(width=None if sys.stdout.isatty()
                           else int(os.environ.get("COLUMNS", 200)))
    return _console


def table(*columns):
    from rich.table import Table

    t = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    return t
