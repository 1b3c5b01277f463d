"""The runner: ``python -m modelrunner_faq.runner unix:///SOCKET TABLE.json...``, a stdlib HTTP
server giving the answer whose question shares the most words with the one asked: POST /ask (the
plugin's route), POST /v1/chat/completions (OpenAI's chat, unstreamed: the core's routes reach
it); GET /health. The scheduler removes a stale socket before it starts."""

import json
import re
import sys
import time
from urllib.parse import urlsplit

from modelrunner import JSONRequestHandler, UnixHTTPServer


def words(text):
    return set(re.findall(r"\w+", text.lower())) if isinstance(text, str) else set()


class Handler(JSONRequestHandler):
    table = {}  # question -> answer, from all the model's tables

    def answer(self, question):
        """(the table's question that matched, its answer); (None, "I don't know.") if none."""
        asked = words(question)
        best = max(self.table, key=lambda q: len(words(q) & asked), default=None)
        return (best, self.table[best]) if words(best) & asked else (None, "I don't know.")

    def do_GET(self):
        self.send_json(200 if self.path == "/health" else 404, {})

    def do_POST(self):
        body = self.read_json()
        if self.path == "/ask" and words(body.get("question")):
            matched, text = self.answer(body["question"])
            self.send_json(200, {"model": body.get("model"), "answer": text, "matched": matched})
        elif self.path == "/v1/chat/completions" and not body.get("stream"):
            asked = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
            message = {"role": "assistant", "content": self.answer(asked and asked[-1])[1]}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self.send_json(200, {"id": "faq", "object": "chat.completion", "choices": [choice],
                                 "created": int(time.time()), "model": body.get("model")})
        else:
            self.send_json(400, {"error": {"message": "ask a question with words (unstreamed)"}})


if __name__ == "__main__":
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            sys.exit(f"{path} is not a FAQ table: a JSON object of question: answer")
        Handler.table.update(table)
    UnixHTTPServer(urlsplit(sys.argv[1]).path, Handler).serve_forever()
