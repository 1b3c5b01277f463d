"""The gateway: from an API request to a runner and back, without buffering.

A dialect (OpenAI, Ollama...) calls ``gateway.open(...)``: the model is looked up in the store
(404 if absent: the server never auto-pulls), an engine is chosen for its format (412/400), a lease
on a runner is taken from the scheduler (loading the model if needed), and the request is sent to
the runner's address (a Unix socket, or http:// for a runner on another machine). The answer comes back as a ``RunnerResponse`` whose chunks are yielded as
the runner writes them; the lease is released when the stream ends or the client goes away (closing
the runner connection, which frees the runner's slot at once). A connection whose answer was read
to its end is kept for the next request to that runner (runner_connections.py); recording the
request and releasing its lease happen after the answer is sent (after_response.py).

Telemetry (``on_request``) is emitted here, once, for every dialect. So are the checks of what
a model can do (images, the request's mode) and the reading of a runner's error answer: each is
raised as a typed error (``Unsupported``, ``ContextExceeded``, ``GatewayError``) that the route's
dialect renders (modelrunner.dialects), so no dialect writes them again.
"""

import http.client
import json
import re
import time

from . import reference as refs
from .after_response import defer
from .bodies import chat_media, parse_json, remote_image_urls
from .client_socket import client_gone
from .prompt_prefix import long_prompt_bytes, prompt_chain
from .errors import ModelRunnerError, Unsupported
from .settings import truthy
from .engines import MODE_REQUESTS, EngineError, select_engine
from .scheduler import SchedulerError
from .runner_connections import RunnerConnections
from .runners import runner_connection, socket_path
from .streams import runner_error
from .store import BrokenModel, NotFound
from .telemetry import RequestRecord

# what a request in each mode asks of a model, for the error when no engine of its format has it
CAPABILITY_BY_MODE = {"completion": "chat and completions", "embedding": "embeddings",
                      "reranking": "reranking", "image-generation": "image generation"}

MODE_BY_PATH = {
    "/v1/embeddings": "embedding",
    "/rerank": "reranking", "/v1/rerank": "reranking", "/score": "reranking",
    "/v1/images/generations": "image-generation",
}

# the runner paths that process a prompt, so a long one takes its turn (Scheduler._take_turn);
# /apply-template and /tokenize (a dialect counting tokens) only read it
PROMPT_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/chat/completions",
                          "/completions", "/completion"})


class GatewayError(ModelRunnerError):
    """A request that failed before or while reaching the runner, with its HTTP status."""


class RunnerResponse:
    """A runner's answer: status, headers, and an iterator of body chunks.

    Iterate it once (or call ``read()``); ``close()`` is safe to call twice and is called by the
    WSGI server when the client disconnects. An answer read to its end leaves its connection to
    the runner for the next request (``RunnerConnections``); one closed early closes it, which
    frees the runner's slot at once.
    """

    def __init__(self, gateway, lease, conn, resp, record):
        self.gateway = gateway
        self.lease = lease
        self.conn = conn
        self.resp = resp
        self.record = record
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.content_type = self.headers.get("content-type", "application/json")
        self.streaming = "text/event-stream" in self.content_type
        self._closed = False
        self.error = None
        self.ended = None  # when the answer ended or was closed (time.monotonic())

    def __iter__(self):
        start = self.record.started
        try:
            while True:
                try:
                    chunk = self.resp.read1(65536) if self.streaming else self.resp.read(65536)
                except Exception as e:  # the runner died or closed mid-answer
                    self.error = f"the runner stopped answering: {type(e).__name__}: {e}"
                    break
                if not chunk:
                    if self.streaming and not self.record.saw_end():  # the stream's last bytes
                        self.error = "the runner closed the stream before it finished"
                    elif self.resp.length:  # http.client's read(n) ends a cut body silently
                        self.error = "the runner closed its answer before it finished"
                    break
                self.record.add_chunk(chunk, time.monotonic() - start)
                yield chunk
                # the answer's first bytes, its prompt processed: the scheduler is told once the
                # client has them (a round trip before them was in every such answer's TTFT).
                # An error answer processed nothing: its release ends the turn
                if self.lease.prefill and self.status < 400:
                    self.lease.prefill = False
                    self.gateway.prompt_processed(self.lease)
        finally:
            self.close()
        if self.error:
            raise GatewayError(self.error, status=500)

    def read(self):
        return b"".join(self)

    def json(self):
        return json.loads(self.read() or b"{}")

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.ended = time.monotonic()
        if self.error:
            self.conn.close()
        else:
            self.gateway.connections.give_back(self.lease.address, self.conn, self.resp)
        self.gateway.finish(self)


class Gateway:
    def __init__(self, runtime):
        self.runtime = runtime
        # (engine, model id, mode) -> (address, secret) of the runner of the last lease
        self._last_address = {}
        # (model name, engine, mode, path) as a request gives them -> the key they were last
        self._last_named = {}
        self.connections = RunnerConnections()
        # a body this long may hold a long prompt (Scheduler._take_turn): never sent early
        self.long_prompt_bytes = long_prompt_bytes(runtime.settings)

    # -- resolution -----------------------------------------------------------------------------

    def find_model(self, name):
        """The stored model a request names; 400 for a bad reference, 404 for an unknown one."""
        if not name:
            raise GatewayError("model is required", status=400, kind="invalid_request_error")
        if not isinstance(name, str):  # {"model": 5} from a client: its mistake, not a 500
            raise GatewayError("model must be a string", status=400, kind="invalid_request_error")
        try:
            return self.runtime.store.get(name)
        except refs.InvalidReference as e:
            raise GatewayError(str(e), status=400, kind="invalid_request_error") from None
        except NotFound:
            raise GatewayError(f"model {name} not found", status=404,
                               kind="not_found_error") from None
        except BrokenModel as e:  # listed as broken; never handed to a runner
            raise GatewayError(str(e), status=e.status) from None

    def engine_for(self, model, requested=None):
        try:
            settings = self.runtime.settings
            return select_engine(self.runtime.engines, model.inner_config.get("format"),
                                 requested, format_engines=settings.get("format_engines") or {})
        except EngineError as e:
            raise GatewayError(str(e), status=e.status, kind="invalid_request_error") from None

    # -- requests -------------------------------------------------------------------------------

    def acquire(self, model, engine, mode, keep_alive=None):
        try:
            return self.runtime.scheduler.acquire(model.id, engine.name, mode, keep_alive)
        except SchedulerError as e:
            raise GatewayError(str(e), status=e.status) from None

    def preload(self, model_name, engine=None, mode="completion", keep_alive=None):
        """X-Preload-Only: load the model, answer nothing else."""
        model, engine, mode = self.check(model_name, None, b"", engine, mode)
        lease = self.acquire(model, engine, mode, keep_alive)
        self._release_quietly(lease)
        return lease.load_seconds or 0.0

    def open(self, model_name, path, body, *, engine=None, mode=None, keep_alive=None,
             headers=None, dialect="openai", request=None, observed=True,
             raise_for_status=True):
        """Send ``body`` (bytes) to the runner for ``model_name`` at ``path``; return the answer.
        A runner's error answer is raised (``streams.runner_error``) unless ``raise_for_status``
        is False."""
        content_type = next((v for k, v in (headers or {}).items()
                             if k.lower() == "content-type"), "application/json")
        # a form upload (a whisper model's multipart audio) is read by the runner, never as chat
        # JSON: no media check, and its record keeps what it was, not the audio's bytes. A body
        # that looks like JSON is checked whatever it is called: a runner would read it as JSON.
        form = ("json" not in content_type.lower()
                and body.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] not in (b"{", b"["))
        send_headers = {"Content-Type": "application/json", "Host": "localhost",
                        "Content-Length": str(len(body))}
        send_headers.update(headers or {})
        named = (model_name, engine, mode, path)
        if not all(part is None or isinstance(part, str) for part in named):
            named = None  # not a model name (the check answers it), or an unusual caller
        # a long prompt may have to wait its turn (Scheduler._take_turn): it goes once the
        # scheduler says, never early (it takes seconds anyway: the round trip is nothing)
        big = not form and path in PROMPT_PATHS and 0 < self.long_prompt_bytes <= len(body)
        early = self._send_early(named, form, path, body, send_headers, big)
        try:
            model, engine, mode = self.check(model_name, path, b"" if form else body, engine,
                                             mode)
            prompt = (prompt_chain(parse_json(body)) if big and engine.long_prompts_at_once
                      and mode == "completion" else None)
        except BaseException:
            if early is not None:
                early[0].close()
            raise
        kept = f"({len(body)} bytes of {content_type})".encode() if form else body
        record = RequestRecord(model=model_name, model_id=model.id, engine=engine.name, mode=mode,
                               path=path, dialect=dialect, request=request, body=kept,
                               observed=observed)
        self.runtime.emit_request("started", record)
        key = (engine.name, model.id, mode)
        if early is not None and early[2] != key:  # the name now means another model
            early[0].close()
            early = None
        for attempt in range(2):
            try:
                lease, conn, resp = self._lease_and_send(model, engine, mode, keep_alive, key,
                                                         path, body, send_headers, early,
                                                         prompt=prompt, request=request)
                if named is not None:
                    if named not in self._last_named and len(self._last_named) >= 4096:
                        self._last_named.clear()  # bounded, whatever names clients send
                    self._last_named[named] = key
            except GatewayError as e:
                record.finish(status=e.status, error=str(e))
                self.runtime.emit_request("finished", record)
                raise
            except (ConnectionRefusedError, FileNotFoundError, ConnectionResetError,
                    BrokenPipeError) as e:
                early = None
                # The runner died after the scheduler last looked, before it answered anything
                # (refused; or reset/closed while a dying process still held its socket): ask
                # once more, and the scheduler replaces the dead runner. Inference requests have
                # no side effects, so one retry is safe.
                error = e
                if attempt == 0:
                    time.sleep(0.2)  # let the dead process become reapable
                    continue
            except (OSError, http.client.HTTPException) as e:  # not HTTP: a 502 as well
                early = None
                error = e
            else:
                record.load_seconds = lease.load_seconds
                answer = RunnerResponse(self, lease, conn, resp, record)
                if answer.status >= 400 and raise_for_status:
                    raise self._runner_error(model_name, answer)
                return answer
            record.finish(status=502, error=str(error))
            self.runtime.emit_request("finished", record)
            raise GatewayError(f"the runner for {model_name} is not answering: {error}",
                               status=502)

    @staticmethod
    def _runner_error(model_name, answer):
        """The error a runner answered (read whole, so the request is recorded with it)."""
        try:
            raw = answer.read()
        except GatewayError as e:
            return e
        return runner_error(model_name, answer.status, raw)

    def check(self, model_name, path, body, engine=None, mode=None):
        """``(model, engine, mode)`` for a request, after the checks every dialect needs before
        anything loads: the model exists, an engine serves its format and has the request's mode
        (else ``Unsupported``), and its media are ones the model reads and the runner will not
        download (:meth:`_check_media`). ``open`` and ``preload`` make them; a dialect that must
        change something before it sends (Ollama's num_ctx reloads a runner) calls it first."""
        model = self.find_model(model_name)
        engine = self.engine_for(model, engine)
        mode = mode or MODE_BY_PATH.get(path, "completion")
        if mode not in engine.modes:
            serves = ", ".join(MODE_REQUESTS.get(m, m) for m in engine.modes)
            raise Unsupported(model_name, CAPABILITY_BY_MODE.get(mode, mode),
                              f"the {engine.name} engine that serves it serves {serves}")
        self._check_media(model, model_name, body)
        return model, engine, mode

    def _check_media(self, model, model_name, body):
        """400 for images, audio or video sent to a model that cannot read them
        (``Model.reads_images``: a GGUF without a multimodal projector, whose runner would
        answer 500 after loading), and for media the runner would download (see
        ``remote_image_urls``). The body is parsed only when it may have a media part, which a
        text chat never has (a key or type spelled with JSON escapes, "image\\u005furl", is one
        too: the runner reads it as such). A body that may carry media but cannot be read is
        refused: the check must never be skipped by a body it cannot parse."""
        if not _may_have_media(body):
            return
        try:
            chat = parse_json(body)
        except ValueError as e:
            raise GatewayError(f"invalid JSON body: {e}", status=400,
                               kind="invalid_request_error") from None
        kinds = chat_media(chat)
        if kinds and not model.reads_images:
            kind = "images" if "images" in kinds else sorted(kinds)[0]
            raise Unsupported(model_name, kind, "it has no multimodal projector (package "
                              "one with `model package --mmproj FILE`)", param="messages")
        if truthy(self.runtime.settings.get("allow_image_urls", False)):
            return
        urls = remote_image_urls(chat)
        if urls:
            raise GatewayError(
                "images, audio and video must be sent inline as data: URLs (base64); this server "
                f"does not fetch URLs such as {urls[0][:80]!r} (allow_image_urls turns that on)",
                status=400, kind="invalid_request_error")

    def _send_early(self, named, form, path, body, headers, big=False):
        """Send the request before the model is looked up in the store, to the runner that
        the same model name, engine, mode and path were served by last: ``(connection, reused,
        key, address, secret)``, or None. Only a body that is not a form and plainly has no
        media part goes early (``_check_media`` would not even parse it): a runner must never
        see a media URL the check would refuse. ``open`` drops it if the name now names
        another model, or the check refuses the request. Nor does a ``big`` one to an engine
        whose long prompts take turns: it may have to wait for its turn."""
        key = self._last_named.get(named) if named is not None else None
        guess = self._last_address.get(key) if key else None
        if guess is None or not _private(guess[0]) or form or _may_have_media(body):
            return None
        if big and getattr(self.runtime.engines.get(key[0]), "long_prompts_at_once", True):
            return None
        address, secret = guess
        try:
            conn, reused = self._send(address, path, body, _with_secret(headers, secret))
        except OSError:
            return None
        return conn, reused, key, address, secret

    def _lease_and_send(self, model, engine, mode, keep_alive, key, path, body, headers,
                        early=None, prompt=None, request=None):
        """(lease, connection, response headers). While the scheduler answers the
        lease, the request already goes to the runner this key used last; if the lease names
        another runner (reloaded, evicted), that early request is dropped and sent again.
        Connections to runners are kept alive between requests (``RunnerConnections``); a kept
        one that fails before any answer is replaced by a fresh one at once. The early request
        is sent before the acquire: on a machine whose cores are all busy, waking the scheduler
        first delayed the runner's start by the scheduler's turn on a core."""
        if early is not None:  # sent before the model was looked up (_send_early)
            early, guess, guess_secret = early[:2], early[3], early[4]
        else:
            guess, guess_secret = self._last_address.get(key, (None, None))
            if guess and _private(guess) and prompt is None:  # a prompt may wait its turn
                try:
                    early = self._send(guess, path, body, _with_secret(headers, guess_secret))
                except OSError:
                    early = None
        try:
            pending = self.runtime.scheduler.begin_acquire(model.id, engine.name, mode, keep_alive,
                                                           prompt)
            lease = pending()
        except BaseException as e:
            if early is not None:
                early[0].close()
            if isinstance(e, SchedulerError):
                raise GatewayError(str(e), status=e.status) from None
            raise
        if prompt is not None and _client_gone(request):
            # its client left while the prompt waited its turn: it never reaches the runner,
            # whose minutes of prompt processing would be for nobody
            self._release_quietly(lease)
            raise GatewayError("the client went away while its prompt waited its turn",
                               status=499)
        self._last_address[key] = (lease.address, lease.secret)
        same = lease.address == guess and lease.secret == guess_secret
        conn = None
        try:
            if early is not None and same:
                conn, reused = early
            else:
                if early is not None:
                    early[0].close()
                conn, reused = self._send(lease.address, path, body,
                                          _with_secret(headers, lease.secret))
            try:
                return lease, conn, conn.getresponse()
            except (ConnectionError, http.client.HTTPException):
                if not reused:
                    raise
                # the runner had closed the kept connection (idle, or it restarted): the
                # request never reached it, so it goes once more on a new connection
                conn.close()
                self.connections.forget(lease.address)
                conn = runner_connection(lease.address)
                conn.request("POST", path, body=body, headers=_with_secret(headers, lease.secret))
                return lease, conn, conn.getresponse()
        except (OSError, http.client.HTTPException):  # an answer that is not HTTP too: its
            if conn is not None:                       # lease was held for the worker's life
                conn.close()
            self._release_quietly(lease)
            raise

    def prompt_processed(self, lease):
        """Tell the scheduler a prompt's answer has begun (a stream's headers come at once, its
        first event after the prompt is processed), so long prompts waiting may go."""
        try:
            self.runtime.scheduler.prefilled(lease)
        except (SchedulerError, OSError, http.client.HTTPException, ValueError):
            pass  # its release ends the turn as well: the answer goes on whatever happened

    def _send(self, address, path, body, headers):
        """Send the request on a kept connection to ``address``, or a new one; returns
        ``(connection, reused)``. A kept connection the runner has closed is replaced."""
        conn, reused = self.connections.take(address)
        try:
            conn.request("POST", path, body=body, headers=headers)
            return conn, reused
        except OSError:
            conn.close()
            if not reused:
                raise
        self.connections.forget(address)
        conn = runner_connection(address)
        try:
            conn.request("POST", path, body=body, headers=headers)
        except OSError:
            conn.close()
            raise
        return conn, False

    def _release_quietly(self, lease):
        try:
            self.runtime.scheduler.release(lease)
        except SchedulerError:
            pass

    def finish(self, response):
        """The end of an answer: releasing its lease and recording the request wait until the
        answer is sent (``after_response``), so the client waits for neither."""
        defer(self._finish, response)

    def _finish(self, response):
        # the release goes first, before this worker serves anything else; its answer is read
        # after the observers have run (ps, unload and configure wait for it: SchedulerClient)
        try:
            released = self.runtime.scheduler.begin_release(response.lease)
        except SchedulerError:
            released = None
        response.record.finish(status=response.status if not response.error else 500,
                               error=response.error, ended=response.ended)
        self.runtime.emit_request("finished", response.record)
        if released is not None:
            try:
                released()
            except (SchedulerError, OSError):
                pass


# what a body holds if it may carry a media part: its part types, or a JSON escape
_MEDIA_NAMES = (b'"image_url"', b'"input_image"', b'"image"', b'"input_audio"',
                b'"audio_url"', b'"input_video"', b'"video_url"')
# An ASCII character written as a JSON escape ("image\u005furl"): a key spelled so is a media
# part to the runner. Escapes of other characters (\u00e9, \u4e2d: any non-English text from a
# client that writes JSON ASCII-only, as Python's json does) are not, and cost no second parse.
_ASCII_ESCAPE = re.compile(rb"\\u00[0-7]")


def _may_have_media(body):
    """Whether a body may carry a media part (else it needs no parse to be checked)."""
    return any(name in body for name in _MEDIA_NAMES) or bool(_ASCII_ESCAPE.search(body))


def _client_gone(request):
    """Whether the client of ``request`` (a falcon Request under gunicorn, or None) has gone."""
    return request is not None and hasattr(request, "env") and client_gone(request)


def _private(address):
    """Whether a request may go to ``address`` before the scheduler names it: a Unix socket in
    the server's private folder, never a network address. A network runner's port, once it has
    gone, may be anyone's on its node, and a prompt sent early would be theirs."""
    return socket_path(address) is not None


def _with_secret(headers, secret):
    """The headers for a runner: its secret as a bearer token when it has one (a runner reached
    over a network checks it)."""
    if not secret:
        return headers
    return {**headers, "Authorization": f"Bearer {secret}"}
