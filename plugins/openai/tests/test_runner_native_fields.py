"""A chat body reaches llama-server as the client sent it, so llama-server's own names for what
multiplies an answer or crashes the runner are bounded too, not only OpenAI's.

Before: ``"logprobs": 100000`` on a chat (an integer, which llama-server reads as ``n_probs``)
answered 10 MB for 2 tokens, the whole vocabulary per token; a ``grammar`` with 40,000 nested
parentheses (80 KB) crashed llama-server, ending every other client's request on that runner.
"""

import openai
import pytest

MODEL = "ai/smollm2"
MESSAGES = [{"role": "user", "content": "Hi"}]


def test_an_integer_logprobs_on_chat_is_refused_not_read_as_n_probs(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2,
                                       extra_body={"logprobs": 100000})
    assert caught.value.param == "logprobs"
    assert "boolean" in caught.value.message
    # the boolean OpenAI documents still works, within top_logprobs' bound
    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2,
                                            logprobs=True, top_logprobs=2)
    assert len(answer.choices[0].logprobs.content[0].top_logprobs) == 2


@pytest.mark.parametrize("route", ["chat", "completions"])
def test_a_deeply_nested_grammar_is_refused_and_the_runner_lives(client, route):
    deep = "root ::= " + "(" * 40000 + '"a"' + ")" * 40000

    def ask(grammar):
        if route == "chat":
            answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8,
                                                    extra_body={"grammar": grammar})
            return answer.choices[0].message.content
        answer = client.completions.create(model=MODEL, prompt="Hi", max_tokens=8,
                                           extra_body={"grammar": grammar})
        return answer.choices[0].text

    with pytest.raises(openai.BadRequestError) as caught:
        ask(deep)
    assert caught.value.param == "grammar" and "64" in caught.value.message
    # parentheses a grammar matches as text are not groups; a grammar nested as people write
    # them is constrained as before
    assert ask('root ::= "(" ' + "(" * 10 + '"a"' + ")" * 10 + ' ")" # ' + "(" * 100) == "(a)"
