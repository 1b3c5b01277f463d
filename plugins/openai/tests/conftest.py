"""Fixtures for the OpenAI dialect: the official `openai` client against the session server."""

import pytest
from openai import OpenAI


@pytest.fixture(scope="session")
def client(server):
    return OpenAI(base_url=server.url + "/engines/v1", api_key="unused", max_retries=0,
                  timeout=600)
