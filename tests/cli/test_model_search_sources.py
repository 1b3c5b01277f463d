"""`model search --source` takes whatever sources the server's plugins declare: a third-party
source plugin, installed beside the server, is searchable with no change to the CLI, and a name
no source has is refused with the list the server knows."""

import textwrap

import pytest

from modelrunner.testing import Server

PLUGIN = '''
from modelrunner import SearchResult, Source, hookimpl


class MuseumSource(Source):
    name = "museum"
    search_key = "museum"

    def search(self, term, limit):
        found = [SearchResult(name="museum.example/ai/mona", description="a portrait",
                              source="The Museum", downloads=1500)]
        return [r for r in found if term in r.name][:limit]


@hookimpl
def register_sources(register, settings):
    register(MuseumSource())
'''


@pytest.fixture(scope="module")
def museum_server(tmp_path_factory):
    """A server with one more source plugin, installed as a distribution with its entry point
    (a dist-info folder on the server's PYTHONPATH, as pip would leave it)."""
    site = tmp_path_factory.mktemp("museum-site")
    (site / "modelrunner_museum").mkdir()
    (site / "modelrunner_museum" / "__init__.py").write_text(PLUGIN)
    info = site / "modelrunner_museum-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: modelrunner-museum\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [modelrunner]
        museum = modelrunner_museum
    """))
    srv = Server(tmp_path_factory.mktemp("museum") / "models",
                 env={"PYTHONPATH": str(site)}).start()
    yield srv
    srv.stop()


def test_a_source_plugin_the_cli_never_heard_of_is_searchable(museum_server):
    out = museum_server.model("search", "--source", "museum", "mona").stdout
    header, row = out.splitlines()
    assert header.split() == ["NAME", "DESCRIPTION", "BACKEND", "SIZE", "DOWNLOADS", "STARS",
                              "SOURCE"]
    assert row.split() == ["museum.example/ai/mona", "a", "portrait", "-", "1.5K", "0", "The",
                           "Museum"]


def test_a_source_no_plugin_has_is_a_usage_error_listing_the_servers(museum_server):
    bad = museum_server.model("search", "--source", "louvre", "mona", check=False)
    assert bad.returncode == 2
    assert "unknown source 'louvre'" in bad.stderr and "museum" in bad.stderr
