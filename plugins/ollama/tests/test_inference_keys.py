"""With API keys on, an inference key uses a model but never changes it for the other clients:
its num_ctx is held to within the runner's context for its own request, and keep_alive 0 or -1
(unload, pin) need an admin key. Checked with the official client, and /engines/ps as admin.

On a server of their own (keys on); the keys-off behaviour is in test_lifecycle.py."""

import httpx
import ollama
import pytest

from modelrunner.testing import Server

from ollama_helpers import MODEL, QUESTION

ADMIN, ALICE, BOB = "sk-admin", "sk-alice", "sk-bob"
# about 330 tokens of chat with SmolLM2's template: more than alice's small context
LONG = [{"role": "user", "content": "Repeat these words: " + " ".join(
    f"apple{i % 10} banana" for i in range(110))}]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, smollm2):
    env = {"MODELRUNNER_API_KEYS": f"{ALICE},{BOB}", "MODEL_RUNNER_API_KEY": ADMIN}
    srv = Server(tmp_path_factory.mktemp("ollama-keys") / "models", env=env).start()
    srv.package(smollm2, MODEL)  # the CLI: the admin key
    # the operator's context, below the model's maximum (8192), so that a client could ask more
    configured = httpx.post(srv.url + "/engines/_configure", timeout=60,
                            headers={"Authorization": f"Bearer {ADMIN}"},
                            json={"model": MODEL, "context-size": 2048})
    assert configured.status_code == 202, configured.text

    def client(key):
        return ollama.Client(host=srv.url, timeout=300, headers={"Authorization": f"Bearer {key}"})

    srv.as_key = client
    yield srv
    srv.stop()


def runner(server):
    """The model's runner as /engines/ps shows it to an admin (pid, context, keep-alive)."""
    rows = httpx.get(server.url + "/engines/ps", timeout=30,
                     headers={"Authorization": f"Bearer {ADMIN}"}).json()
    [row] = [r for r in rows if r["mode"] == "completion"] or [None]
    return row and {k: row[k] for k in ("pid", "context_size", "keep_alive")}


@pytest.fixture
def loaded(keyed):
    """The model loaded by the admin with its default context; what the runner was then."""
    keyed.as_key(ADMIN).chat(model=MODEL, messages=QUESTION, options={"num_predict": 2})
    before = runner(keyed)
    assert before and before["context_size"] == 2048
    return before


def test_an_inference_keys_small_num_ctx_is_its_own_and_another_keys_long_chat_still_works(
        keyed, loaded):
    alice, bob = keyed.as_key(ALICE), keyed.as_key(BOB)
    answer = alice.chat(model=MODEL, messages=QUESTION,
                        options={"num_ctx": 64, "num_predict": 200, "temperature": 0})
    # held to 64 tokens for alice: the answer stops where her context would be full
    assert answer.done_reason == "length" and 0 < answer.eval_count < 64
    with pytest.raises(ollama.ResponseError) as err:
        alice.chat(model=MODEL, messages=LONG, options={"num_ctx": 64})
    assert err.value.status_code == 400
    assert "the input length exceeds the context length" in err.value.error
    # bob's long chat gets the runner's whole context, as before alice came
    long = bob.chat(model=MODEL, messages=LONG, options={"num_predict": 4})
    assert long.eval_count > 0
    assert runner(keyed) == loaded, "the runner was not reloaded nor reconfigured"


def test_an_inference_key_cannot_grow_the_context(keyed, loaded):
    with pytest.raises(ollama.ResponseError) as err:
        keyed.as_key(ALICE).chat(model=MODEL, messages=QUESTION,
                                 options={"num_ctx": loaded["context_size"] + 1024})
    assert err.value.status_code == 403
    assert "num_ctx" in err.value.error and "admin" in err.value.error
    assert runner(keyed) == loaded
    # the same context the runner has is no change: it answers
    same = keyed.as_key(ALICE).generate(model=MODEL, prompt="Hi", options={
        "num_ctx": loaded["context_size"], "num_predict": 2})
    assert same.eval_count > 0


@pytest.mark.parametrize("keep_alive", [0, -1, "0s", "-1m"])
def test_an_inference_key_cannot_unload_or_pin_a_model(keyed, loaded, keep_alive):
    alice = keyed.as_key(ALICE)
    for call in (lambda: alice.generate(model=MODEL, prompt="", keep_alive=keep_alive),
                 lambda: alice.chat(model=MODEL, messages=QUESTION, keep_alive=keep_alive,
                                    options={"num_predict": 2}),
                 lambda: alice.embed(model=MODEL, input="hi", keep_alive=keep_alive)):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 403
        assert "keep_alive" in err.value.error and "admin" in err.value.error
    assert runner(keyed) == loaded, "still loaded, same process, same keep-alive"


def test_an_inference_keys_keep_alive_duration_leaves_the_runners_alone(keyed, loaded):
    answer = keyed.as_key(ALICE).chat(model=MODEL, messages=QUESTION, keep_alive="1s",
                                      options={"num_predict": 2})
    assert answer.eval_count > 0
    assert runner(keyed) == loaded


def test_an_admin_key_still_unloads(keyed, loaded):
    done = keyed.as_key(ADMIN).generate(model=MODEL, prompt="", keep_alive=0)
    assert done.done_reason == "unload"
    assert runner(keyed) is None


def test_an_inference_keys_small_num_ctx_cuts_or_refuses_long_embedding_inputs(keyed):
    alice = keyed.as_key(ALICE)
    words = " ".join(["word"] * 200)
    whole = alice.embed(model=MODEL, input=words)
    cut = alice.embed(model=MODEL, input=words, options={"num_ctx": 32})
    assert len(cut.embeddings[0]) == len(whole.embeddings[0])
    assert cut.embeddings[0] != whole.embeddings[0]  # cut to 32 tokens, as Ollama truncates
    assert cut.prompt_eval_count <= 32
    refused = httpx.post(keyed.url + "/api/embed", timeout=300,
                         headers={"Authorization": f"Bearer {ALICE}"},
                         json={"model": MODEL, "input": words, "truncate": False,
                               "options": {"num_ctx": 32}})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("the input length exceeds the context length")


def test_counting_a_small_contexts_prompt_is_not_recorded_as_a_request(keyed, loaded):
    """The prompt is counted with the runner's /apply-template and /tokenize: the dialect's own
    calls, not the client's requests; the inspector and /metrics show only the chat."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    keyed.as_key(ALICE).chat(model=MODEL, messages=[{"role": "user", "content": "counted once"}],
                             options={"num_ctx": 64, "num_predict": 2})
    records = httpx.get(keyed.url + "/engines/requests", headers=admin, timeout=30).json()
    flat = [record for group in records for record in group["records"]]
    mine = [r for r in flat if "counted once" in r.get("request", "")]
    # one record, the chat: the counting calls were recorded under the same URL before, with
    # their own bodies (the templated prompt), three records for one request
    assert len(mine) == 1 and mine[0]["url"].endswith("/api/chat"), mine
