"""The Anthropic Messages API with the official `anthropic` client, against SmolLM2."""

import json
import re
import urllib.request

import anthropic
import pytest

MODEL = "ai/smollm2"
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
# temperature goes in extra_body: recent SDKs dropped it from the typed parameters
GREEDY = {"temperature": 0}
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


def test_plain_and_streamed_answers_are_equal_at_temperature_0(client):
    plain = client.messages.create(model=MODEL, max_tokens=12, extra_body=GREEDY, messages=ASK)
    assert plain.id.startswith("msg_") and plain.role == "assistant"
    assert plain.stop_reason in ("end_turn", "max_tokens")
    assert plain.usage.input_tokens > 0 and plain.usage.output_tokens > 0
    with client.messages.stream(model=MODEL, max_tokens=12, extra_body=GREEDY, messages=ASK) as s:
        streamed = s.get_final_message()
    assert text_of(streamed) == text_of(plain) != ""
    assert streamed.stop_reason == plain.stop_reason
    assert streamed.usage.output_tokens == plain.usage.output_tokens


def test_streamed_events_come_in_the_documented_order(client):
    events = [e.type for e in client.messages.create(
        model=MODEL, max_tokens=8, extra_body=GREEDY, messages=ASK, stream=True)]
    assert events[0] == "message_start"
    assert events[-2:] == ["message_delta", "message_stop"]
    blocks = [e for e in events[1:-2] if e != "ping"]
    assert blocks[0] == "content_block_start" and blocks[-1] == "content_block_stop"
    assert set(blocks[1:-1]) == {"content_block_delta"}


def test_forced_tool_use_carries_valid_input(client):
    message = client.messages.create(
        model=MODEL, max_tokens=60, extra_body=GREEDY, tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    assert message.stop_reason == "tool_use"
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    assert isinstance(call.input.get("city"), str) and call.input["city"]


def test_a_streamed_forced_tool_use_reassembles_to_valid_input(client):
    with client.messages.stream(
            model=MODEL, max_tokens=60, extra_body=GREEDY, tools=[WEATHER],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "What's the weather in Paris?"}]) as s:
        message = s.get_final_message()
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert isinstance(call.input.get("city"), str)


def test_a_tool_result_round_trip_reaches_the_model(client):
    messages = [{"role": "user", "content": "What's the weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                     "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01",
                     "content": "Sunny, 31 degrees Celsius"}]}]
    answer = client.messages.create(model=MODEL, max_tokens=40, extra_body=GREEDY, tools=[WEATHER],
                                    messages=messages)
    assert answer.content
    assert "31" in text_of(answer)


def test_count_tokens_equals_the_runners_own_count(client):
    counted = client.messages.count_tokens(model=MODEL, system="Be brief.", messages=ASK)
    answer = client.messages.create(model=MODEL, max_tokens=1, extra_body=GREEDY,
                                    system="Be brief.", messages=ASK)
    usage = answer.usage  # Anthropic's input: input_tokens + cache reads + cache writes
    assert counted.input_tokens == (usage.input_tokens + usage.cache_read_input_tokens
                                    + usage.cache_creation_input_tokens) > 0


def test_an_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="ai/no-such-model", max_tokens=5, messages=ASK)
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"


def test_an_image_to_a_model_without_a_projector_is_the_callers_error(client, server):
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
           "hKmMIQAAAABJRU5ErkJggg==")
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": png}}]}])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "no multimodal projector" in e.value.body["error"]["message"]
    # nothing else is disturbed: the next plain request is answered
    assert client.messages.create(model=MODEL, max_tokens=3, messages=ASK).content


def test_a_missing_max_tokens_is_a_bad_request(server):
    request = urllib.request.Request(  # the client itself refuses to send it
        server.url + "/v1/messages", method="POST",
        data=json.dumps({"model": MODEL, "messages": ASK}).encode(),
        headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=60)
    assert e.value.code == 400
    assert json.loads(e.value.read())["error"]["type"] == "invalid_request_error"


def test_stop_sequences_are_honoured(client):
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    free = client.messages.create(model=MODEL, max_tokens=40, extra_body=GREEDY, messages=messages)
    assert "5" in text_of(free)
    stopped = client.messages.create(model=MODEL, max_tokens=40, extra_body=GREEDY,
                                     messages=messages, stop_sequences=["5"])
    assert "5" not in text_of(stopped)
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "5"


def test_a_prompt_over_the_context_is_anthropics_prompt_is_too_long(client):
    """Agents (Claude Code among them) compact their history when they read "prompt is too
    long"; the runner's own words would leave them stuck."""
    long = [{"role": "user", "content": "hi " * 9000}]  # SmolLM2's context is at most 8192
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=2, messages=long)
    error = info.value.body["error"]
    assert error["type"] == "invalid_request_error"
    # the session's server runs the context other tests configured: any, below the prompt
    found = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", error["message"])
    assert found and int(found.group(1)) > int(found.group(2))


def test_images_for_a_model_without_a_projector_are_refused_before_it_loads(client):
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
           "RU5ErkJggg==")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=2, messages=[
            {"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "does not support images" in info.value.body["error"]["message"]
