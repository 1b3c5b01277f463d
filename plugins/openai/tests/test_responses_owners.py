"""A stored response belongs to the API key that made it: another key finds nothing there (404
on GET, input_items, DELETE and previous_response_id), an admin key finds everything, and the
store keeps a hash of the key, never the key. With the official client, on a server of its own
with keys; without keys every test in test_openai_responses.py works as it always did."""

import json

import openai
import pytest

from modelrunner.testing import Server

from openai_helpers import MODEL

ADMIN, ALICE, BOB = "sk-admin", "sk-alice", "sk-bob"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, smollm2):
    env = {"MODELRUNNER_API_KEYS": f"{ALICE},{BOB}", "MODEL_RUNNER_API_KEY": ADMIN}
    srv = Server(tmp_path_factory.mktemp("responses-keys") / "models", env=env).start()
    srv.package(smollm2, MODEL)  # the CLI: the admin key
    srv.as_key = lambda key: openai.OpenAI(base_url=srv.url + "/engines/v1", api_key=key,
                                           max_retries=0, timeout=600)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def alices(keyed):
    """A response alice stored."""
    return keyed.as_key(ALICE).responses.create(
        model=MODEL, input="My secret word is tangerine. Say OK.", max_output_tokens=16,
        temperature=0)


def test_another_key_cannot_read_a_stored_response_or_its_input_items(keyed, alices):
    bob = keyed.as_key(BOB)
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(alices.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.input_items.list(alices.id)
    # its owner still reads both
    alice = keyed.as_key(ALICE)
    assert alice.responses.retrieve(alices.id).id == alices.id
    assert "tangerine" in alice.responses.input_items.list(alices.id).data[0].content[0].text


def test_another_key_cannot_continue_from_a_stored_response(keyed, alices):
    with pytest.raises(openai.NotFoundError) as err:
        keyed.as_key(BOB).responses.create(model=MODEL, input="What is my secret word?",
                                           previous_response_id=alices.id, max_output_tokens=16)
    assert err.value.body["code"] == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        keyed.as_key(BOB).post("/responses/compact", cast_to=object, body={
            "model": MODEL, "previous_response_id": alices.id})
    mine = keyed.as_key(ALICE).responses.create(
        model=MODEL, input="Thanks.", previous_response_id=alices.id, max_output_tokens=16)
    assert mine.previous_response_id == alices.id


def test_another_key_cannot_delete_a_stored_response(keyed, alices):
    with pytest.raises(openai.NotFoundError):
        keyed.as_key(BOB).responses.delete(alices.id)
    assert keyed.as_key(ALICE).responses.retrieve(alices.id).id == alices.id


def test_an_admin_key_sees_and_deletes_every_response(keyed, alices):
    admin = keyed.as_key(ADMIN)
    assert admin.responses.retrieve(alices.id).id == alices.id
    assert admin.responses.input_items.list(alices.id).data
    theirs = keyed.as_key(BOB).responses.create(model=MODEL, input="Hi", max_output_tokens=16)
    admin.responses.delete(theirs.id)
    with pytest.raises(openai.NotFoundError):
        keyed.as_key(BOB).responses.retrieve(theirs.id)


def test_the_store_keeps_a_hash_of_the_key_never_the_key(keyed, alices):
    [path] = (keyed.models_path / "responses").glob(f"{alices.id}.json")
    text = path.read_text()
    assert ALICE not in text and BOB not in text and ADMIN not in text
    owner = json.loads(text)["owner"]
    assert owner and len(owner) == 32
    # and the response the owner reads back has no owner field
    assert "owner" not in keyed.as_key(ALICE).responses.retrieve(alices.id).model_dump()
