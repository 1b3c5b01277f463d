"""DMR answers errors with a plain-text message and a status code; so do the core routes."""

import falcon


class DMRError(falcon.HTTPError):
    def __init__(self, status, message):
        super().__init__(falcon.code_to_http_status(status), description=message)
        self.message = message

    def to_json(self, handler=None):
        return None


def dmr_error(status, message):
    return DMRError(status, message)


def handle_dmr_error(req, resp, ex, params):
    resp.status = ex.status
    resp.content_type = "text/plain; charset=utf-8"
    resp.text = ex.message + "\n"
