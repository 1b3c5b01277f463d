"""The CLI's HTTP client: the `model` command only ever talks to the server.

``Client.http`` is the raw transport (:mod:`.http`, over the standard library's http.client):
``get``/``post``/``stream`` that return any status; ``Client``'s own methods exit with the
server's error instead.

A server with API keys wants ``MODEL_RUNNER_API_KEY`` (sent as a Bearer token); one serving https
with a self-signed certificate wants ``MODEL_RUNNER_TLS_CA`` (its certificate, or the CA's).
The key goes only to the modelrunner server (MODEL_RUNNER_HOST, or the settings' address), never
to another base URL (`model run --openaiurl`) unless given explicitly.
"""

import json
import os
import sys

import click

from ..settings import server_url
from .http import HTTP, ConnectError, HTTPError
from .terminal import terminal_safe


class Client:
    """``autostart=True``: when nothing answers at the modelrunner server's address and that
    address is this machine's, start the server there and go on (see :mod:`.launch`); commands
    that mean to use a model (`model run`, `pull`, `package`) ask for it."""

    def __init__(self, base_url=None, api_key=None, autostart=False):
        if base_url is None:
            api_key = api_key or os.environ.get("MODEL_RUNNER_API_KEY") or None
        self.autostart = autostart and base_url is None
        self.base_url = (base_url or server_url()).rstrip("/")
        self.http = HTTP(self.base_url, api_key=api_key,
                         ca_file=os.environ.get("MODEL_RUNNER_TLS_CA") or None)

    def send(self, method, path, **kwargs):
        """The response, whatever its status; exits when the server cannot be reached."""
        try:
            return self.http.request(method, path, **kwargs)
        except ConnectError:
            if not self.autostart:
                fail(f"modelrunner is not running at {self.base_url} (start it with: model serve)")
        except HTTPError as e:
            fail(f"the connection to the server failed: {e}")
        self.start_server()
        return self.send(method, path, **kwargs)

    def start_server(self):
        """Start the server this client found missing (once), or exit saying why not."""
        from .launch import autostart
        self.autostart = False
        autostart(self.base_url)

    def request(self, method, path, **kwargs):
        resp = self.send(method, path, **kwargs)
        if resp.status_code >= 400:
            fail(error_text(resp))
        return resp

    def json(self, method, path, **kwargs):
        return self.request(method, path, **kwargs).json()

    def stream(self, method, path, **kwargs):
        """A context manager over a streamed response; exits with the server's error if any."""
        try:
            ctx = self.http.stream(method, path, **kwargs)
            resp = ctx.__enter__()
        except ConnectError:
            if not self.autostart:
                fail(f"modelrunner is not running at {self.base_url} (start it with: model serve)")
            self.start_server()
            return self.stream(method, path, **kwargs)
        except HTTPError as e:
            fail(f"the connection to the server failed: {e}")
        if resp.status_code >= 400:
            resp.read()
            ctx.__exit__(None, None, None)
            fail(error_text(resp))
        return _Closing(ctx, resp)


class _Closing:
    def __init__(self, ctx, resp):
        self.ctx, self.resp = ctx, resp

    def __enter__(self):
        return self.resp

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


def error_text(resp):
    """The message inside any dialect's error body, else the body itself."""
    text = resp.text.strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text or f"HTTP {resp.status_code}"
    if isinstance(data, dict):
        err = data.get("error", data.get("message", text))
        if isinstance(err, dict):
            err = err.get("message", text)
        return str(err)
    return text


def fail(message):
    """Print ``Error: message`` on stderr (through terminal_safe: a message mostly comes from
    the server, which passes on a registry's or a runner's) and exit 1."""
    click.echo(f"Error: {terminal_safe(message)}", err=True)
    sys.exit(1)
