"""Tables and coloured text on the terminal. Tables are plain text; rich (tens of milliseconds
of imports) is imported only by the commands that colour their output (logs, requests)."""

import os
import sys

from .terminal import terminal_safe

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


class Table:
    """Columns as DMR's CLI prints them (Go's tabwriter): each cell padded to its column's width,
    two spaces between columns. Plain text, so `model ls` never imports rich (~40 ms)."""

    def __init__(self, columns):
        self.columns = [str(c) for c in columns]
        self.rows = []

    def add_row(self, *cells):
        """Cells are mostly the server's (names, tags, descriptions): terminal_safe."""
        self.rows.append([terminal_safe(str(c)) for c in cells])

    def lines(self):
        widths = [max(len(row[i]) for row in [self.columns, *self.rows])
                  for i in range(len(self.columns))]

        def line(cells):
            return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
        header = line(self.columns)
        if sys.stdout.isatty():
            header = f"\033[1m{header}\033[0m"
        return [header, *(line(row) for row in self.rows)]


def table(*columns):
    return Table(columns)


def print_table(t):
    sys.stdout.write("\n".join(t.lines()) + "\n")
