"""Loading, unloading, reconfiguring and creating models: on a server of their own, since they
change what is loaded and what is stored."""

import httpx
import ollama
import pytest

from ollama_helpers import MODEL, QUESTION, SHORT


def running(client):
    return [m.model for m in client.ps().models]


def test_keep_alive_0_unloads_after_the_answer(own):
    client = own.client
    answer = client.chat(model=MODEL, messages=QUESTION, options=SHORT, keep_alive=0)
    assert answer.message.content.strip()
    assert running(client) == []


def test_empty_messages_load_and_keep_alive_0_unloads(own):
    client = own.client
    loaded = client.chat(model=MODEL, messages=[])
    assert loaded.done and loaded.done_reason == "load"
    assert "ai/smollm2:latest" in running(client)
    unloaded = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert unloaded.done and unloaded.done_reason == "unload"
    assert running(client) == []


def test_keep_alive_duration_shows_in_expires_at(own):
    client = own.client
    client.generate(model=MODEL, prompt="", keep_alive="10m")
    entry = client.ps().models[0]
    from datetime import datetime, timezone
    left = (entry.expires_at - datetime.now(timezone.utc)).total_seconds()
    assert 500 < left <= 600
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_a_keep_alive_of_centuries_pins_the_model_and_ps_still_answers(own):
    """"999999999h" (114,000 years) and 1e308 seconds are forever in practice: the model stays
    loaded as with -1, and /api/ps and /engines/ps keep answering valid JSON for every client
    (such a duration used to make /api/ps a 500 until the model was unloaded)."""
    client = own.client
    for forever in ("999999999h", 1e308):
        client.generate(model=MODEL, prompt="", keep_alive=forever)
        [entry] = client.ps().models
        assert entry.expires_at.year > 2100  # Ollama's far date for a pinned model
        rows = httpx.get(own.url + "/engines/ps", timeout=30)
        assert rows.status_code == 200 and rows.json()[0]["keep_alive"] == -1, rows.text
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_a_keep_alive_that_is_not_a_number_is_400_and_changes_nothing(own):
    client = own.client
    client.generate(model=MODEL, prompt="", keep_alive="10m")
    for junk in ("NaN", "nan", "-nan"):
        with pytest.raises(ollama.ResponseError) as err:
            client.generate(model=MODEL, prompt="", keep_alive=junk)
        assert err.value.status_code == 400 and "keep_alive" in err.value.error
    assert httpx.get(own.url + "/api/ps", timeout=30).status_code == 200
    rows = httpx.get(own.url + "/engines/ps", timeout=30)
    assert rows.json()[0]["keep_alive"] == 600, rows.text  # valid JSON, the duration kept
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_num_ctx_reloads_the_runner_with_that_context(own):
    client = own.client
    answer = client.chat(model=MODEL, messages=QUESTION,
                         options={"num_ctx": 2048, "num_predict": 4})
    assert answer.eval_count > 0
    assert answer.load_duration > 0  # a fresh load for the new context
    assert client.ps().models[0].context_length == 2048
    again = client.chat(model=MODEL, messages=QUESTION,
                        options={"num_ctx": 2048, "num_predict": 4})
    assert again.load_duration == 0  # same context: no reload
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_num_ctx_above_the_models_maximum_is_capped_and_never_stored(own):
    from modelrunner.testing import FilesystemStore
    client = own.client
    before = FilesystemStore(own.models_path).runner_configs()
    answer = client.chat(model=MODEL, messages=QUESTION,
                         options={"num_ctx": 16384, "num_predict": 4})  # SmolLM2 was trained on 8192
    assert answer.eval_count > 0
    assert client.ps().models[0].context_length == 8192
    client.chat(model=MODEL, messages=QUESTION, options={"num_ctx": 2048, "num_predict": 4})
    assert client.ps().models[0].context_length == 2048
    assert FilesystemStore(own.models_path).runner_configs() == before  # a chat configures nothing
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_a_requests_num_ctx_does_not_survive_an_unload(own):
    client = own.client
    client.chat(model=MODEL, messages=QUESTION, options={"num_predict": 2})
    default = client.ps().models[0].context_length
    client.chat(model=MODEL, messages=QUESTION, options={"num_ctx": 512, "num_predict": 2})
    assert client.ps().models[0].context_length == 512  # without keys: Ollama's behaviour
    client.generate(model=MODEL, prompt="", keep_alive=0)
    assert running(client) == []
    # the next load, by a request without num_ctx, gets the configured (default) context again
    client.chat(model=MODEL, messages=QUESTION, options={"num_predict": 2})
    assert client.ps().models[0].context_length == default != 512
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_create_from_an_existing_model_records_system_and_parameters(own):
    client = own.client
    progress = list(client.create(model="pirate", from_=MODEL, system="You are a pirate.",
                                  parameters={"temperature": 0.1, "num_predict": 5,
                                              "stop": ["\n\n"]}, stream=True))
    assert progress[-1].status == "success"
    info = client.show("pirate")
    assert info.details.family == "llama"
    assert "temperature" in info.parameters and "num_predict" in info.parameters
    assert 'SYSTEM """You are a pirate."""' in info.modelfile
    raw = httpx.post(own.url + "/api/show", json={"model": "pirate"}).json()
    assert raw["system"] == "You are a pirate."
    assert raw["details"]["parent_model"] == MODEL
    # the recorded num_predict applies when the request sets none
    answer = client.chat(model="pirate", messages=QUESTION)
    assert answer.eval_count <= 5
    assert answer.done_reason == "length" or answer.eval_count < 5
    assert any(m.model == "pirate:latest" for m in client.list().models) or \
        any(m.model == "ai/pirate:latest" for m in client.list().models)
    client.delete("pirate")
    client.generate(model=MODEL, prompt="", keep_alive=0)


def test_create_from_uploaded_blobs(own, smollm2):
    client = own.client
    digest = client.create_blob(smollm2)
    assert httpx.head(f"{own.url}/api/blobs/{digest}").status_code == 200
    result = client.create(model="team/fromblob:v1", files={"model.gguf": digest}, stream=False)
    assert result.status == "success"
    info = client.show("team/fromblob:v1")
    assert info.modelinfo["general.architecture"] == "llama"
    answer = client.generate(model="team/fromblob:v1", prompt="Hi", options={"num_predict": 3},
                             keep_alive=0)
    assert answer.eval_count > 0
    client.delete("team/fromblob:v1")


def test_create_needs_from_or_files_and_a_known_base(own):
    with pytest.raises(ollama.ResponseError) as err:
        own.client.create(model="nothing")
    assert err.value.status_code == 400
    with pytest.raises(ollama.ResponseError) as err:
        own.client.create(model="nothing", from_="missing-base")
    assert err.value.status_code == 404


def test_a_runner_dying_mid_stream_ends_the_stream_with_an_error_line(own):
    import os
    import signal
    client = own.client
    count = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]
    stream = client.chat(model=MODEL, messages=count, stream=True,
                         options={"num_predict": 400, "temperature": 0})
    first = next(stream)
    assert first.done is False
    runners = httpx.get(own.url + "/engines/ps").json()
    os.kill(runners[0]["pid"], signal.SIGKILL)  # the runner this server started for us
    with pytest.raises(ollama.ResponseError) as err:
        for _ in stream:
            pass
    assert "runner" in err.value.error


def test_delete_unloads_then_deletes(own):
    client = own.client
    client.copy(MODEL, "team/doomed:v1")
    client.delete(MODEL)  # only a name goes: the model still has team/doomed:v1
    client.chat(model="team/doomed:v1", messages=QUESTION, options={"num_predict": 2})
    assert running(client)
    client.delete("team/doomed:v1")
    assert running(client) == []
    assert client.list().models == []
