"""`model search [TERM]` (DMR's `docker model search`): models in the places the server's source
plugins search (GET /models/search).

The CLI names no source: ``--source`` is ``all`` or a key the server's sources declare, and the
server, which knows them, refuses any other with the list (a usage error here, exit 2, as a bad
flag value is). Flags as DMR's: ``-n/--limit`` (32, per source), ``--source``, ``--json``. The
table is DMR's: NAME DESCRIPTION BACKEND SIZE DOWNLOADS STARS SOURCE, counts as 1.2K / 3.4M. A
source that failed while others answered is a warning on stderr.
"""

import json

import click

from .client import Client, error_text
from .tables import print_table, table
from .terminal import echo


def count(n):
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}K"
    return str(n)


@click.command()
@click.argument("term", required=False, default="")
@click.option("-n", "--limit", default=32, show_default=True, type=click.IntRange(1, 1000),
              help="Maximum number of results to show (per source)")
@click.option("--source", default="all", show_default=True,
              help="Source to search: all, or one of the server's (a wrong name lists them)")
@click.option("--json", "as_json", is_flag=True, help="Output results as JSON")
def search(term, limit, source, as_json):
    """Search for models in the sources the server's plugins search."""
    resp = Client().send("GET", "/models/search",
                         params={"q": term, "source": source.strip().lower(), "limit": limit})
    if resp.status_code == 400:  # the only parameter the server judges is the source's name
        raise click.BadParameter(error_text(resp), param_hint="'--source'")
    if resp.status_code >= 400:
        from .client import fail
        fail(error_text(resp))
    data = resp.json()
    for error in data.get("errors") or []:
        echo(f"Warning: {error}", err=True)
    results = data.get("results") or []
    if as_json:
        echo(json.dumps(results, indent=2))
        return
    if not results:
        echo(f'No models found matching "{term}"' if term else "No models found")
        return
    from ..packaging.units import format_size
    t = table("NAME", "DESCRIPTION", "BACKEND", "SIZE", "DOWNLOADS", "STARS", "SOURCE")
    for r in results:
        t.add_row(r["name"], r.get("description", ""), r.get("backend", ""),
                  format_size(r["size"]) if r.get("size") else "-", count(r.get("downloads", 0)),
                  count(r.get("stars", 0)), r.get("source", ""))
    print_table(t)
