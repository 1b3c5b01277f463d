"""The example plugin that adds a model format, examples/modelrunner-faq: a user packages a FAQ
table with `model package --format faq`, asks POST /faq/ask (the model loads on demand), chats
with it through the core's OpenAI routes, sees it in `model ps` and unloads it."""

import importlib.metadata
import json
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from modelrunner.testing import Server, process_gone

PACKAGE = Path(__file__).resolve().parents[1] / "modelrunner_faq"
ANSWERS = {"What is modelrunner?": "A model runner that speaks Docker Model Runner's API.",
           "Which port does the server listen on?": "12434, on 127.0.0.1 by default."}

installed = pytest.mark.skipif(
    not any(ep.name == "faq" for ep in importlib.metadata.entry_points(group="modelrunner")),
    reason="modelrunner-faq is not installed: pip install -e examples/modelrunner-faq")


def test_the_example_is_under_120_lines():
    assert sum(len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")) < 120


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faq")
    (folder / "answers.json").write_text(json.dumps(ANSWERS))
    (folder / "not-a-table.json").write_text(json.dumps(["a list", "of strings"]))
    # only this plugin and the OpenAI routes: the format needs nothing else
    with Server(folder / "models", env={"MODELRUNNER_PLUGINS": "faq,openai"}) as server:
        server.model("package", "--format", "faq", "--file", str(folder / "answers.json"), "ai/faq")
        server.model("package", "--format", "faq", "--file", str(folder / "not-a-table.json"),
                     "ai/broken-faq")
        yield server


def ask(srv, body):
    return httpx.post(srv.url + "/faq/ask", json=body, timeout=60)


def runners(srv):
    return httpx.get(srv.url + "/engines/ps", timeout=30).json()


@installed
def test_a_question_loads_the_model_and_is_answered_from_its_table(srv):
    srv.model("unload", "--all")
    assert runners(srv) == []
    answer = ask(srv, {"model": "ai/faq", "question": "which port does it use?"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model": "ai/faq", "answer": "12434, on 127.0.0.1 by default.",
                             "matched": "Which port does the server listen on?"}
    [row] = srv.model("ps").stdout.splitlines()[1:]
    assert row.split()[:3] == ["faq", "faq", "completion"]


@installed
def test_a_question_the_table_does_not_hold_is_not_known(srv):
    answer = ask(srv, {"model": "ai/faq", "question": "Will it rain tomorrow?"}).json()
    assert answer["answer"] == "I don't know." and answer["matched"] is None


@installed
def test_the_openai_client_chats_with_a_faq_model_through_the_core_routes(srv):
    client = OpenAI(base_url=srv.url + "/engines/faq/v1", api_key="unused", max_retries=0)
    chat = client.chat.completions.create(
        model="ai/faq", messages=[{"role": "user", "content": "what is modelrunner"}])
    assert chat.choices[0].message.content == ANSWERS["What is modelrunner?"]


@installed
def test_unload_stops_the_runner(srv):
    assert ask(srv, {"model": "ai/faq", "question": "what is it?"}).status_code == 200
    [runner] = runners(srv)
    assert runner["backend_name"] == "faq"
    assert "Unloaded 1 model(s)" in srv.model("unload", "ai/faq").stdout
    assert process_gone(runner["pid"])
    assert runners(srv) == []


@installed
@pytest.mark.parametrize("body, status, message", [
    ({"model": "ai/faq"}, 400, "ask a question"),
    ({"model": "ai/faq", "question": 42}, 400, "ask a question"),
    ({"question": "what?"}, 400, "model is required"),
    ({"model": "ai/unknown", "question": "what?"}, 404, "model ai/unknown not found"),
])
def test_bad_questions_get_the_routes_json_error_with_a_4xx(srv, body, status, message):
    answer = ask(srv, body)
    assert answer.status_code == status
    assert message in answer.json()["error"]


@installed
def test_a_model_of_another_format_is_refused_by_the_route(srv, tiny_gguf):
    srv.package(tiny_gguf, "ai/tiny")
    answer = ask(srv, {"model": "ai/tiny", "question": "what?"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "engine 'faq' cannot serve gguf models"}


@installed
def test_a_file_that_is_not_a_faq_table_fails_its_load_with_the_runners_words(srv):
    answer = ask(srv, {"model": "ai/broken-faq", "question": "what?"})
    assert answer.status_code >= 500
    assert "is not a FAQ table" in answer.json()["error"]
