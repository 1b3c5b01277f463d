"""The request fields Claude Code sends (system-role messages, ``thinking``,
``context_management``, ``output_config``, ``cache_control``, ``metadata``, deferred tools), each
accepted and mapped to what the runner has, and the fields Anthropic's API does not have refused
by name as it refuses them. Without a runner: translate.py and fields.py alone."""

import pytest

from modelrunner import ModelRunnerError
from modelrunner_anthropic import fields, translate

ASK = [{"role": "user", "content": "hi"}]
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def chat_of(**body):
    chat, _ = translate.chat_request({"model": "m", "max_tokens": 5, "messages": ASK, **body})
    return chat


def refused(body, check=fields.check):
    with pytest.raises(ModelRunnerError) as e:
        check(body)
    assert e.value.status == 400 and e.value.kind == "invalid_request_error"
    return str(e.value)


def test_system_role_messages_join_the_system_prompt_in_the_order_they_come():
    chat = chat_of(system=[{"type": "text", "text": "You are an agent."}], messages=[
        {"role": "user", "content": "Say hi"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\ncwd: /tmp"}]},
        {"role": "assistant", "content": "hi"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "again"}])
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "user"]
    assert chat["messages"][0]["content"] == "You are an agent.\n\n# Environment\ncwd: /tmp\n\nBe brief."


def test_a_role_the_api_does_not_have_is_refused_naming_the_message():
    with pytest.raises(ModelRunnerError) as e:
        chat_of(messages=[{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])
    assert e.value.status == 400 and "messages.1.role" in str(e.value)


def test_thinking_maps_to_the_runners_reasoning_controls():
    enabled = chat_of(thinking={"type": "enabled", "budget_tokens": 2048})
    assert enabled["chat_template_kwargs"] == {"enable_thinking": True}
    assert enabled["thinking_budget_tokens"] == 2048
    disabled = chat_of(thinking={"type": "disabled"})
    assert disabled["chat_template_kwargs"] == {"enable_thinking": False}
    for left_to_the_model in ({"type": "adaptive"}, {"type": "adaptive", "display": "omitted"},
                              {"type": "between_tools"}):
        chat = chat_of(thinking=left_to_the_model)
        assert "chat_template_kwargs" not in chat and "thinking_budget_tokens" not in chat


@pytest.mark.parametrize("thinking", [{"type": "sometimes"}, {"type": "enabled"}, "on"])
def test_a_malformed_thinking_is_a_bad_request(thinking):
    with pytest.raises(ModelRunnerError) as e:
        chat_of(thinking=thinking)
    assert e.value.status == 400 and "thinking" in str(e.value)


def test_thinking_display_omitted_leaves_the_thinking_text_out_plain_and_streamed():
    completion = {"choices": [{"message": {"role": "assistant", "reasoning_content": "hmm",
                                           "content": "Hello"}, "finish_reason": "stop"}]}
    shown = translate.message(completion, "m")
    assert [b["type"] for b in shown["content"]] == ["thinking", "text"]
    omitted = {"type": "adaptive", "display": "omitted"}
    hidden = translate.message(completion, "m", thinking=translate.thinking_shown(
        {"thinking": omitted}))
    assert [b["type"] for b in hidden["content"]] == ["text"]
    stream = translate.StreamTranslator("m", thinking=False)
    events = stream.start() + stream.feed({"choices": [{"delta": {"reasoning_content": "hmm"}}]})
    events += stream.feed({"choices": [{"delta": {"content": "Hello"}, "finish_reason": "stop"}]})
    events += stream.end()
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] \
        == ["text"]


def test_output_config_effort_and_format_map_to_the_runners_fields():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    chat = chat_of(output_config={"effort": "max", "format": {"type": "json_schema",
                                                              "schema": schema}})
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema}}
    assert chat_of(output_config={"effort": "low"})["reasoning_effort"] == "low"
    legacy = chat_of(output_format={"type": "json_schema", "schema": schema})
    assert legacy["response_format"]["json_schema"]["schema"] == schema


@pytest.mark.parametrize("config", [{"effort": "huge"}, {"format": {"type": "xml"}}, "high"])
def test_a_malformed_output_config_is_a_bad_request(config):
    with pytest.raises(ModelRunnerError) as e:
        chat_of(output_config=config)
    assert e.value.status == 400 and "output_config" in str(e.value)


def test_cache_control_on_any_block_changes_nothing_the_runner_gets():
    ephemeral = {"type": "ephemeral", "ttl": "1h"}
    plain = chat_of(system=[{"type": "text", "text": "S"}], tools=[WEATHER], messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                           "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "cold"}]}]}])
    marked = chat_of(cache_control={"type": "ephemeral"},
                     system=[{"type": "text", "text": "S", "cache_control": ephemeral}],
                     tools=[{**WEATHER, "cache_control": ephemeral}], messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": ephemeral}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                           "input": {"city": "Oslo"},
                                           "cache_control": ephemeral}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "cache_control": ephemeral,
                                      "content": [{"type": "text", "text": "cold",
                                                   "cache_control": ephemeral}]}]}])
    assert marked == plain


def test_deferred_tools_stay_out_of_the_prompt_until_a_tool_search_loads_them():
    search = {"name": "ToolSearch", "input_schema": {"type": "object"}}
    deferred = {**WEATHER, "defer_loading": True}
    before = chat_of(tools=[search, deferred])
    assert [t["function"]["name"] for t in before["tools"]] == ["ToolSearch"]
    after = chat_of(tools=[search, deferred], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch",
                                           "input": {"query": "weather"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "tool_reference", "tool_name": "get_weather"}]}]}])
    assert [t["function"]["name"] for t in after["tools"]] == ["ToolSearch", "get_weather"]


def test_the_fields_claude_code_sends_are_accepted():
    fields.check({"model": "m", "max_tokens": 32000, "stream": True, "messages": ASK,
                  "system": [], "tools": [], "temperature": 1,
                  "metadata": {"user_id": '{"device_id": "d"}'},
                  "thinking": {"type": "adaptive", "display": "omitted"},
                  "context_management": {"edits": [{"type": "clear_thinking_20251015",
                                                    "keep": "all"}]},
                  "output_config": {"effort": "high"}, "service_tier": "auto",
                  "cache_control": {"type": "ephemeral"}})
    fields.check_count({"model": "m", "messages": ASK, "tools": [], "system": "s",
                        "thinking": {"type": "adaptive"}, "context_management": {"edits": []}})


def test_fields_the_api_does_not_have_are_refused_by_name_as_anthropic_refuses_them():
    assert refused({"model": "m", "max_tokens": 5, "messages": ASK, "response_format": {}}) \
        == "response_format: Extra inputs are not permitted"
    message = refused({"model": "m", "max_tokens": 5, "frequency_penalty": 1,
                       "messages": [{"role": "user", "content": "a", "name": "Init"}]})
    assert message == ("frequency_penalty: Extra inputs are not permitted; "
                       "messages.0.name: Extra inputs are not permitted")
    # count_tokens takes no generation fields
    assert refused({"model": "m", "messages": ASK, "max_tokens": 5}, fields.check_count) \
        == "max_tokens: Extra inputs are not permitted"


def test_fields_the_server_cannot_serve_are_refused_by_name():
    assert refused({"model": "m", "max_tokens": 5, "messages": ASK,
                    "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}
                   ).startswith("mcp_servers:")
    assert refused({"model": "m", "max_tokens": 5, "messages": ASK,
                    "thread": {"type": "create"}}).startswith("thread:")
