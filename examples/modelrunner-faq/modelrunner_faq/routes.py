"""POST /faq/ask {"model", "question"} -> {"answer", "matched"}; errors: {"error": "..."}."""

import json

from modelrunner import Dialect, read_json_body


class FaqDialect(Dialect):
    name = "faq"

    def error_body(self, error):
        return json.dumps({"error": str(error)}).encode()


class AskResource:
    scope = "inference"   # an inference API key may ask
    dialect = "faq"       # errors here, the runner's 400 too, render as FaqDialect says

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        body = read_json_body(req)
        # loads the model if it is not (engine="faq": a model of another format is a 400)
        resp.data = self.runtime.open(body.get("model"), "/ask", json.dumps(body).encode(),
                                      engine="faq", dialect="faq").read()
