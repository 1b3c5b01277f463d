"""`model search --source huggingface`: GGUF repositories of the Hub endpoint (HF_ENDPOINT),
found through huggingface_hub's list_models, shown with names `model pull` takes.

olah has no model search, so the relay in front of it answers /api/models over the fixture's
repositories with olah's own model info (conftest.RangeRelay); every other call is olah's."""

from urllib.parse import parse_qs, urlsplit

import pytest

from modelrunner import SourceError
from modelrunner.testing import Server, answering_server

from modelrunner_huggingface.search import describe
from modelrunner_huggingface.source import HuggingFaceSource


def test_search_finds_gguf_repositories_as_pullable_names(relay):
    results = HuggingFaceSource().search("gguf", 10)
    assert [r.name for r in results] == ["hf.co/org/multi-gguf"]
    [found] = results
    assert found.source == "HuggingFace" and found.backend == "llama.cpp"
    [(path, _, _)] = [r for r in relay.requests if r[0].startswith("/api/models?")]
    query = parse_qs(urlsplit(path).query)
    assert query["search"] == ["gguf"] and query["filter"] == ["gguf"]
    assert query["limit"] == ["10"] and query["sort"] == ["downloads"]


def test_search_without_a_term_lists_only_gguf_models_up_to_the_limit(relay):
    names = {r.name for r in HuggingFaceSource().search("", 32)}
    assert names == {"hf.co/org/multi-gguf", "hf.co/Org/CasedRepo"}  # not the safetensors one
    assert len(HuggingFaceSource().search("", 1)) == 1


def test_an_unreachable_hub_is_a_502_naming_it(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(SourceError) as caught:
        HuggingFaceSource().search("x", 5)
    assert caught.value.status == 502 and "127.0.0.1:9" in str(caught.value)


def test_a_hostile_mirrors_gzip_bomb_is_refused_not_inflated(monkeypatch):
    import gzip
    bomb = gzip.compress(b"[" + b" " * (300 << 20) + b"]", compresslevel=9)
    with answering_server(bomb, {"Content-Type": "application/json",
                                 "Content-Encoding": "gzip"}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub)
        with pytest.raises(SourceError) as caught:
            HuggingFaceSource().search("x", 5)
    assert caught.value.status == 502 and "larger than" in str(caught.value)


def test_descriptions_keep_the_task_and_the_model_family():
    assert describe(["gguf", "llama", "conversational", "text-generation"],
                    "text-generation") == "text-generation, llama"
    assert describe([], None) == "AI model"


def test_model_search_through_the_server(relay, tmp_path):
    with Server(tmp_path / "models", env={"HF_ENDPOINT": relay.url}) as server:
        out = server.model("search", "--source", "huggingface", "multi").stdout
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "DESCRIPTION", "BACKEND", "SIZE", "DOWNLOADS",
                                    "STARS", "SOURCE"]
        assert lines[1].startswith("hf.co/org/multi-gguf ") and "HuggingFace" in lines[1]
        none = server.model("search", "--source", "huggingface", "no-such-model").stdout
        assert none.strip() == 'No models found matching "no-such-model"'
