"""DMR answers errors with a plain-text message and a status code; so do the core routes."""

import logging

import falcon

from ..machine_paths import hide_paths


class DMRError(falcon.HTTPError):
    def __init__(self, status, message):
        super().__init__(falcon.code_to_http_status(status), description=message)
        self.message = message

    def to_json(self, handler=None):
        return None


def dmr_error(status, message):
    return DMRError(status, message)


def handle_dmr_error(req, resp, ex, params):
    """DMR's plain-text error, without this machine's paths (the server log keeps them)."""
    public = hide_paths(ex.message)
    if public != ex.message:
        logging.getLogger("modelrunner").warning("%s %s answered %s: %s", req.method, req.path,
                                                 ex.status, ex.message)
    resp.status = ex.status
    resp.content_type = "text/plain; charset=utf-8"
    resp.text = public + "\n"
