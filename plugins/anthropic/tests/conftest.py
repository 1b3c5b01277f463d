"""Fixtures for the Anthropic dialect: the official `anthropic` client against the session
server (the client adds /v1/messages to the base URL)."""

import pytest
from anthropic import Anthropic


@pytest.fixture(scope="session")
def client(server):
    return Anthropic(base_url=server.url + "/anthropic", api_key="unused", max_retries=0,
                     timeout=600)
