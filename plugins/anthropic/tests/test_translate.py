"""The translation between Anthropic Messages and the runner's OpenAI chat API, without a runner."""

import json

import pytest

from modelrunner import ModelRunnerError
from modelrunner.testing import chat_has_images
from modelrunner_anthropic import translate
from modelrunner_anthropic.reassemble import reassemble

WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


def test_missing_max_tokens_is_a_bad_request():
    with pytest.raises(ModelRunnerError) as e:
        translate.chat_request({"model": "m", "messages": []})
    assert e.value.status == 400 and "max_tokens" in str(e.value)


@pytest.mark.parametrize("block", [{"type": "image", "source": "x"},
                                   {"type": "image", "source": {"type": "file"}},
                                   {"type": "text", "text": 5}])
def test_a_malformed_block_is_a_bad_request_not_a_server_error(block):
    with pytest.raises(ModelRunnerError) as e:
        translate.chat_request({"model": "m", "max_tokens": 5,
                                "messages": [{"role": "user", "content": [block]}]})
    assert e.value.status == 400


def test_an_image_block_is_an_image_in_the_chat_the_runner_gets():
    chat, _ = translate.chat_request({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]})
    assert chat_has_images(chat)
    text, _ = translate.chat_request({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]})
    assert not chat_has_images(text)


def test_system_blocks_images_and_tool_results_become_chat_messages():
    chat, forced = translate.chat_request({
        "model": "m", "max_tokens": 5,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "AAAA"}}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]})
    assert forced is None
    system, user, assistant, tool = chat["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user["content"][1] == {"type": "image_url",
                                  "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert assistant["tool_calls"][0]["id"] == "toolu_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}


def test_sampling_stop_sequences_and_thinking_budget_are_passed_on():
    chat, _ = translate.chat_request({
        "model": "m", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3,
        "stop_sequences": ["END"], "thinking": {"type": "enabled", "budget_tokens": 64},
        "messages": [{"role": "user", "content": "hi"}]})
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"], chat["top_k"]) == (7, 0, 0.5, 3)
    assert chat["stop"] == ["END"]
    assert chat["thinking_budget_tokens"] == 64
    assert chat["chat_template_kwargs"] == {"enable_thinking": True}


def test_a_tool_named_in_tool_choice_is_forced_with_its_schema():
    chat, forced = translate.chat_request({
        "model": "m", "max_tokens": 50, "tools": [WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "Paris?"}]})
    assert forced == [WEATHER]
    schema = chat["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["name"] == {"const": "get_weather"}
    assert schema["properties"]["input"] == WEATHER["input_schema"]


def test_tool_choice_naming_an_unknown_tool_is_a_bad_request():
    with pytest.raises(ModelRunnerError) as e:
        translate.chat_request({"model": "m", "max_tokens": 5, "tools": [WEATHER],
                                "tool_choice": {"type": "tool", "name": "nope"},
                                "messages": [{"role": "user", "content": "x"}]})
    assert e.value.status == 400


def test_a_forced_answer_reads_back_as_tool_use():
    completion = {"choices": [{"finish_reason": "stop", "message": {
        "role": "assistant", "content": '{"name": "get_weather", "input": {"city": "Oslo"}}'}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9}}
    msg = translate.message(completion, "m", forced=[WEATHER])
    assert msg["id"].startswith("msg_")
    assert msg["stop_reason"] == "tool_use"
    assert msg["content"][0]["input"] == {"city": "Oslo"}
    assert msg["usage"]["input_tokens"] == 12 and msg["usage"]["output_tokens"] == 9
    assert msg["usage"]["cache_read_input_tokens"] == 0


def test_finish_reasons_map_to_anthropic_stop_reasons():
    def reason(finish, **extra):
        choice = {"finish_reason": finish, "message": {"content": "x"}, **extra}
        return translate.message({"choices": [choice]}, "m", stops=["END"])["stop_reason"]
    assert reason("stop") == "end_turn"
    assert reason("length") == "max_tokens"
    assert reason("stop", stop_reason="END") == "stop_sequence"  # vLLM says which stop


def chunk(delta=None, finish=None, **extra):
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def translated(chunks, **kwargs):
    t = translate.StreamTranslator("m", **kwargs)
    events = t.start()
    for c in chunks:
        events += t.feed(c)
    return events + t.end()


def test_a_stream_follows_anthropics_event_order_and_reassembles():
    events = translated([
        chunk({"role": "assistant", "reasoning_content": "hmm"}),
        chunk({"content": "Hel"}), chunk({"content": "lo"}),
        chunk(finish="stop"),
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}])
    assert [e["type"] for e in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    message = reassemble(events)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][1]["text"] == "Hello"
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 4 and message["usage"]["output_tokens"] == 3


def test_streamed_tool_calls_become_input_json_deltas():
    events = translated([
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "get_weather",
                                                                    "arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Rome"}'}}]}),
        chunk(finish="tool_calls")])
    message = reassemble(events)
    assert message["content"] == [{"type": "tool_use", "id": "c1", "name": "get_weather",
                                   "input": {"city": "Rome"}, "caller": {"type": "direct"}}]
    assert message["stop_reason"] == "tool_use"


def test_a_forced_stream_holds_text_and_sends_one_tool_use():
    events = translated([chunk({"content": '{"name": "get_weather", '}),
                         chunk({"content": '"input": {"city": "Lima"}}'}), chunk(finish="stop")],
                        forced=[WEATHER])
    assert not any(e.get("delta", {}).get("type") == "text_delta" for e in events)
    message = reassemble(events)
    assert message["content"][0]["input"] == {"city": "Lima"}
    assert message["stop_reason"] == "tool_use"


def test_llama_servers_stopping_word_marks_a_stop_sequence_in_streams():
    events = translated([chunk({"content": "1, 2"}),
                         chunk(finish="stop", __verbose={"stopping_word": "3"})], stops=["3"])
    delta = [e for e in events if e["type"] == "message_delta"][0]["delta"]
    assert delta == {"stop_reason": "stop_sequence", "stop_sequence": "3",
                     "stop_details": None, "container": None}


def test_errors_have_anthropics_shape_and_its_words_for_a_long_prompt():
    from modelrunner import ContextExceeded, ModelRunnerError

    from modelrunner_anthropic.errors import AnthropicDialect

    dialect = AnthropicDialect()
    body = dialect.error_body(ModelRunnerError("no such model", status=404))
    assert json.loads(body) == {"type": "error", "error": {"type": "not_found_error",
                                                           "message": "no such model"},
                                "request_id": None}
    error = json.loads(dialect.error_body(ContextExceeded("m", 9000, 8192)))["error"]
    assert error == {"type": "invalid_request_error",
                     "message": "prompt is too long: 9000 tokens > 8192 maximum"}


@pytest.mark.parametrize("extra", [
    {"output_config": {"effort": []}},
    {"metadata": "x"},
    {"tools": [{"name": "a", "input_schema": {"type": "object"}}],
     "tool_choice": {"type": "tool", "name": ["a"]}},
    {"messages": [{"role": "user", "content": "hi"},
                  {"role": "assistant", "content": [{"type": "text", "text": 5}]}]},
    {"messages": [{"role": "user", "content": "hi"},
                  {"role": "assistant", "content": [{"type": "thinking", "thinking": 5}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x",
                                                 "content": [{"type": "tool_reference",
                                                              "tool_name": ["a"]}]}]}]},
    # a deferred tool no tool search loaded is not shown, so it cannot be forced either
    {"tools": [{"name": "hidden", "defer_loading": True, "input_schema": {"type": "object"}}],
     "tool_choice": {"type": "tool", "name": "hidden"}},
], ids=["effort", "metadata", "choice-name", "text", "thinking", "tool-reference", "deferred"])
def test_odd_values_are_the_callers_400_never_a_500(extra):
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            **extra}
    with pytest.raises(ModelRunnerError) as e:
        translate.chat_request(body)
    assert e.value.status == 400


def test_any_tool_choice_picks_among_the_tools_the_model_is_shown():
    _, forced = translate.chat_request({
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "hidden", "defer_loading": True, "input_schema": {"type": "object"}},
                  {"name": "shown", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"}})
    assert [t["name"] for t in forced] == ["shown"]
