"""gunicorn's logger, less the secrets (``logger_class`` in gunicorn.conf.py).

gunicorn's access log writes the Basic auth user name (``%(u)s``): ``curl -u KEY: ...`` put an
API key there, refused or not. Its request line, query and Referer carry ``?api_key=...`` as
sent, and a format may name any header or environ value (``%({authorization}i)s``). Here the
user is never read, credential headers are ``-`` and every other value is redacted
(``modelrunner.redact``), whatever ``access_log_format`` says; every handler of the access and
error logs also gets the redaction filter, so no line gunicorn writes carries a key.
"""

from gunicorn import glogging

from .redact import SECRET_HEADERS, redact, redact_handlers


def _secret_atom(name):
    """``{authorization}i``, ``{x-api-key}o``, ``{http_authorization}e``..."""
    if len(name) < 3 or name[0] != "{" or name[-2] != "}":
        return False
    header = name[1:-2].lower()
    if name[-1] == "e":
        header = header.removeprefix("http_").replace("_", "-")
    return header in SECRET_HEADERS


class Logger(glogging.Logger):
    def setup(self, cfg):
        super().setup(cfg)
        redact_handlers(self.error_log, self.access_log)

    def _get_user(self, environ):
        return None  # a Basic auth "user" may be an API key: never logged

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if _secret_atom(name):
                atoms[name] = "-"
            elif isinstance(value, str):
                atoms[name] = redact(value)
        atoms["u"] = "-"
        return atoms
