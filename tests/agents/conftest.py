"""The coding agents' command-line programs, as .ci/install puts them (npm, at the versions of
tests/agents/package-lock.json): ``agent_bin("claude")`` is the path of Claude Code's."""

from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parent / "node_modules" / ".bin"


@pytest.fixture(scope="session")
def agent_bin():
    def find(name):
        path = BIN / name
        assert path.exists(), (f"{name} is not installed: run `npm install --prefix tests/agents` "
                               f"(bash .ci/install does)")
        return str(path)
    return find
