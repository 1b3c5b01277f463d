"""The trust boundary: only the user's own clients drive the server.

One Falcon middleware, installed first, so nothing else runs for a request it refuses. It holds
what DMR, Ollama and llama.cpp's server each hold, all by default:

* **Host guard** (Ollama's). A web page can point a name it owns at 127.0.0.1 (DNS rebinding)
  and then talk to the server as "its own origin": the browser sends ``Host: evil.example``. Only
  the bound address, localhost, 127.0.0.1, [::1] and the ``allowed_hosts`` setting are answered;
  any other Host gets 403. Binding beyond loopback, or serving behind a proxy that passes the
  public Host on, names those hosts in ``allowed_hosts``.

* **Origins** (DMR's CORS allow-list: ``DMR_ORIGINS``, also ``OLLAMA_ORIGINS``). A browser tags
  every request a page makes with ``Origin`` (every non-GET/HEAD request, always, in every current
  browser; GETs too when the page asks for CORS). A request whose Origin is not localhost, the
  server's own origin or an allowed one gets 403; preflights are answered for allowed origins only,
  and allowed origins get ``Access-Control-Allow-Origin`` on their answers. Requests without an
  Origin come from programs (the CLI, curl, the openai/ollama/anthropic clients) and pass.

* **State changes need a JSON or upload body type.** Why, when the Origin check already refuses a
  foreign page: as an attacker, a page can send without CORS (``fetch(url, {method: "POST",
  mode: "no-cors", body})``) only "simple" requests: no custom header, and a body typed
  ``text/plain``, ``application/x-www-form-urlencoded`` or ``multipart/form-data`` (or untyped,
  from a Blob or ArrayBuffer). The server used to parse JSON whatever the type, so such a body
  unloaded models or started pulls. A state-changing request (POST, PUT, PATCH, DELETE) with a
  body must now say it is JSON (``application/json``, ``*+json``, ``application/x-ndjson``) or an
  upload (``application/octet-stream``, ``application/x-tar``: ``model package``'s tar to
  /models/load, Ollama's blobs); the three simple types are refused even on a bodiless request.
  An untyped body passes: programs send one (``curl --data-binary``, ``httpx.post(content=...)``),
  and a page can only send one with its Origin on it, which the origin check has already judged.
  A page can still send a bodiless, untyped POST (``curl -X POST`` sends the same), but a browser
  always puts Origin on it, and a browser old enough to leave Origin off still sends
  ``Sec-Fetch-Site: cross-site``, which is refused on state changes too. So a bodiless POST from
  curl works and one from a page does not. (Ollama's docs' ``curl -d '{...}'`` sends
  ``application/x-www-form-urlencoded``: add ``-H 'Content-Type: application/json'``.)
  One exception, declared by a route: a resource with ``accepts_multipart = True`` (OpenAI's
  audio transcriptions take a file as ``multipart/form-data``, which its clients always send)
  takes multipart bodies. The check waits until the route is known (``process_resource``); a
  foreign page's multipart POST is still refused by the Origin check above, which has already run.

* **API keys** (llama.cpp server's), optional: ``api_keys`` (inference) and ``admin_api_keys``
  (everything). With any key set, every route but ``GET /`` needs ``Authorization: Bearer <key>``
  (or Anthropic's ``x-api-key``). A route's scope comes from :data:`SCOPES`, keyed by (method,
  route template), or from its resource's ``scope`` attribute (plugins: "inference", or "public"
  for GET/HEAD only, e.g. the web UI's static files, which must load to ask for a key); anything
  else is admin, so a new route cannot slip through as inference. Keys are compared in constant time and never
  logged nor recorded.

* **Who is asking** (:class:`Caller`, ``modelrunner.caller(req)``). The route's scope says who may
  call it; the caller says what a request on it may do to others. Every request carries one on
  ``req.context.caller``: the scope of the key that matched (``admin``, ``inference``; ``none``
  when the server has no keys, ``anonymous`` on a public route reached without one) and an owner
  id derived from the key (never the key). An inference key may use a model but not change the
  server for others (unload or pin a runner, reload it with another context: the Ollama dialect
  asks ``may_change_state``), and sees only what it made (stored responses ask ``may_see``).

* **No key in a URL.** ``?api_key=...`` (and the other names in :data:`KEY_PARAMETERS`) is
  refused with 400 on every route, keys or not: a URL lands in access logs, proxies' logs and
  shell history, and a server that accepted it once would teach people to send it there. The
  error says to use the Authorization header.

Errors are ``ModelRunnerError``s raised here: the app's error handler shapes them in the route's
dialect (the dialects decide by path, which is known before routing).
"""

import fnmatch
import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import falcon

from .errors import ModelRunnerError

log = logging.getLogger("modelrunner.trust")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a page may send without a CORS preflight: never a state change here.
SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
MULTIPART = "multipart/form-data"  # refused unless the route's resource accepts_multipart
BODY_TYPES = frozenset({"application/json", "application/x-ndjson", "application/octet-stream",
                        "application/x-tar"})
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
LOCAL_ORIGINS = ("http://localhost", "https://localhost", "http://localhost:*",
                 "https://localhost:*", "http://127.0.0.1", "https://127.0.0.1",
                 "http://127.0.0.1:*", "https://127.0.0.1:*",
                 # fnmatch patterns: "[[]" is a literal "[" ("[::1]" alone is a character class)
                 "http://[[]::1]", "https://[[]::1]", "http://[[]::1]:*", "https://[[]::1]:*")

PUBLIC, INFERENCE, ADMIN = "public", "inference", "admin"
NO_KEYS, ANONYMOUS = "none", "anonymous"  # a Caller's scope: the server has no keys; no key given

# Query parameters that carry a key in other APIs (compared lower-case, "-" as "_"): refused.
KEY_PARAMETERS = frozenset({"api_key", "apikey", "key", "x_api_key", "access_token", "token",
                            "auth", "authorization", "auth_token", "api_token", "bearer"})
# The owner id is a slow, salted hash of the key (computed once per configured key): it is kept
# on disk beside what the key made, so a weak key must not be found again from it in a blink.
OWNER_SALT = b"modelrunner owner id v1"
OWNER_ROUNDS = 20000


def _key_parameter(name):
    """Whether a query parameter's name (decoded) says it carries a key: one of
    :data:`KEY_PARAMETERS`, or a name ending in ``_api_key``/``_token`` (``openai_api_key``,
    ``hf_token``), however dressed: ``API-Key``, ``api_key[]`` (PHP's and Rails' arrays),
    ``apikey%00`` (a NUL), ``api.key`` (the logs redact these names too: ``redact``)."""
    name = re.sub(r"\[[^\]]*\]", "", name.lower().replace("-", "_"))
    name = re.sub(r"[^a-z0-9_]", "", name)
    return name in KEY_PARAMETERS or name.endswith(("_api_key", "apikey", "_token"))


def owner_id(key):
    """The owner id of an API key (bytes or str): what is stored beside what the key made."""
    if isinstance(key, str):
        key = key.encode()
    return hashlib.pbkdf2_hmac("sha256", key, OWNER_SALT, OWNER_ROUNDS).hex()[:32]


@dataclass(frozen=True)
class Caller:
    """Who is asking: ``scope`` is ``admin`` or ``inference`` (the key that matched), ``none``
    (the server has no keys: the local default, everyone is the user) or ``anonymous`` (no key,
    on a public route); ``owner`` is the key's owner id (:func:`owner_id`), None without a key."""

    scope: str
    owner: str | None = None

    @property
    def keys(self):
        """Whether the server checks API keys at all."""
        return self.scope != NO_KEYS

    @property
    def admin(self):
        """An admin key: it may do anything and see everything."""
        return self.scope == ADMIN

    @property
    def may_change_state(self):
        """May this request change what other clients get (unload or pin a runner, reload it
        with another context)? Admin keys, and everyone on a server without keys."""
        return self.scope in (ADMIN, NO_KEYS)

    def may_see(self, owner):
        """May this caller see (or delete) a thing stored with ``owner`` (an owner id or None)?
        Without keys everyone may; an admin key may; otherwise only the key that made it."""
        if not self.keys or self.admin:
            return True
        return owner is not None and self.owner is not None and \
            hmac.compare_digest(str(owner), self.owner)


def caller(req):
    """The :class:`Caller` of a request, as the trust boundary recorded it; a request it never
    saw (an app built without it) is an anonymous caller, who may change nothing."""
    found = getattr(req.context, "caller", None) if req is not None else None
    return found if isinstance(found, Caller) else Caller(ANONYMOUS)

# The core's routes that are not admin. Plugins mark theirs with a resource attribute
# ``scope = "inference"`` (or a {method: scope} dict), or ``scope = "public"``, honoured for
# GET and HEAD only (static files, such as the web UI's page). Everything else is admin.
SCOPES = {
    ("GET", "/"): PUBLIC,
    ("GET", "/version"): INFERENCE,
    ("GET", "/models"): INFERENCE,
    ("GET", "/models/{ref:path}"): INFERENCE,
    ("GET", "/engines/status"): INFERENCE,
    ("GET", "/engines/builds"): INFERENCE,
    ("GET", "/engines/ps"): INFERENCE,
}


def route_scope(method, template, resource):
    """``public``, ``inference`` or ``admin`` for a routed request; admin unless said otherwise."""
    method = "GET" if method == "HEAD" else method
    scope = SCOPES.get((method, template))
    if scope is None and resource is not None:
        declared = getattr(resource, "scope", None)
        if isinstance(declared, dict):
            declared = declared.get(method)
        if declared == INFERENCE:
            scope = INFERENCE
        elif declared == PUBLIC and method == "GET":
            # public only for reading (GET, and HEAD as GET): a page's own static files must load
            # before it can ask for a key; a state change is never public
            scope = PUBLIC
    return scope or ADMIN


def _words(value):
    """A setting or variable as a list: a TOML list, or a comma-separated string."""
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


class Trust:
    """The middleware; ``Trust(settings)``. See the module's docstring for why each check."""

    def __init__(self, settings):
        get = settings.get
        bound = _words(os.environ.get("MODELRUNNER_BOUND_HOSTS")) + [str(get("host", ""))]
        self.hosts = {h.lower().strip("[]") for h in
                      [*LOOPBACK_HOSTS, *bound, *_words(get("allowed_hosts"))]} - {"", "0.0.0.0", "::"}
        self.any_host = "*" in self.hosts
        self.origins = [*LOCAL_ORIGINS, *(o.rstrip("/").lower() for o in _words(get("origins")))]
        self.inference_keys = [k.encode() for k in _words(get("api_keys"))]
        self.admin_keys = [k.encode() for k in _words(get("admin_api_keys"))]
        self.owners = {}  # key -> owner id, computed once
        for key in self.admin_keys + self.inference_keys:
            self.owners.setdefault(key, owner_id(key))
        self.nobody = Caller(ANONYMOUS if self.owners else NO_KEYS)

    # -- checks before routing ------------------------------------------------------------------

    def process_request(self, req, resp):
        req.context.caller = self.nobody  # until a key matches (process_resource)
        host = self._hostname(req.get_header("Host") or "")
        if host is not None and not self.any_host and host not in self.hosts:
            self._refuse(req, f"host {host!r} is not allowed (add it to the allowed_hosts setting, "
                              "MODELRUNNER_ALLOWED_HOSTS)")
        origin = req.get_header("Origin")
        if origin is not None and not self.origin_allowed(origin, req):
            self._refuse(req, f"origin {origin!r} is not allowed (add it to DMR_ORIGINS)")
        changing = req.method in STATE_CHANGING
        if (changing and origin is None
                and (req.get_header("Sec-Fetch-Site") or "").lower() == "cross-site"):
            self._refuse(req, "cross-site request without an Origin")
        self._no_key_in_url(req)
        if req.method == "OPTIONS" and origin and req.get_header("Access-Control-Request-Method"):
            resp.status = falcon.HTTP_204
            resp.set_header("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
            resp.set_header("Access-Control-Allow-Headers",
                            req.get_header("Access-Control-Request-Headers") or "Content-Type")
            resp.set_header("Access-Control-Max-Age", "600")
            resp.complete = True
            return
        if changing:
            kind = (req.content_type or "").split(";")[0].strip().lower()
            has_body = bool(req.content_length) or req.get_header("Transfer-Encoding") is not None
            typed_otherwise = kind and not (kind in BODY_TYPES or kind.endswith("+json"))
            if kind == MULTIPART:
                req.context.multipart = True  # judged once the route is known (process_resource)
            elif kind in SIMPLE_TYPES or (has_body and typed_otherwise):
                self._refuse(req, f"a {req.method} needs Content-Type: application/json "
                                  f"(or an upload type), not {kind or 'none'!r}")

    def process_response(self, req, resp, resource, req_succeeded):
        # DMR's plain-text errors echo a client's input (a model name): never sniffed as HTML
        resp.set_header("X-Content-Type-Options", "nosniff")
        origin = req.get_header("Origin")
        if origin and self.origin_allowed(origin, req):
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.append_header("Vary", "Origin")

    # -- keys, once the route is known ----------------------------------------------------------

    def process_resource(self, req, resp, resource, params):
        if req.context.get("multipart") and not getattr(resource, "accepts_multipart", False):
            self._refuse(req, f"a {req.method} needs Content-Type: application/json "
                              f"(or an upload type), not 'multipart/form-data'")
        if not (self.inference_keys or self.admin_keys):
            return
        scope = route_scope(req.method, req.uri_template, resource)
        if req.uri_template == "/models/{ref:path}" and req.path.endswith("/export"):
            scope = ADMIN  # one route template with inspect, but it hands out the weights
        given = self._key(req)
        admin = self._match(given, self.admin_keys)
        inference = self._match(given, self.inference_keys)
        if admin is not None:
            req.context.caller = Caller(ADMIN, self.owners[admin])
        elif inference is not None:
            req.context.caller = Caller(INFERENCE, self.owners[inference])
        if scope == PUBLIC:
            return
        if admin is None and inference is None:
            raise falcon.HTTPUnauthorized(
                title="401 Unauthorized", challenges=["Bearer"],
                description="an API key is needed: Authorization: Bearer <key>")
        if scope == ADMIN and admin is None:
            raise ModelRunnerError("this API key may not use this route (it needs an admin key)",
                                   status=403)

    @staticmethod
    def _key(req):
        auth = req.get_header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip().encode()
        return (req.get_header("X-Api-Key") or "").strip().encode() or None

    @staticmethod
    def _match(given, keys):
        """The key ``given`` is, or None. Constant time in the key's content; every key is
        compared, none short-circuits."""
        found = None
        for key in keys:
            if hmac.compare_digest(given or b"", key) and given is not None:
                found = key
        return found

    @staticmethod
    def _no_key_in_url(req):
        """400 for a key-like query parameter (see the module's docstring), on every route."""
        if not req.query_string:
            return
        for name, _ in parse_qsl(req.query_string, keep_blank_values=True):
            if _key_parameter(name):
                # the name is logged, never the value
                log.warning("refused %s %s: a key-like query parameter %r", req.method,
                            req.path, name[:40])
                raise ModelRunnerError(
                    f"API keys are not accepted in the URL (query parameter {name[:40]!r}): "
                    "send the key in the Authorization header (Authorization: Bearer <key>) "
                    "and leave it out of URLs, which end up in logs", status=400,
                    kind="invalid_request_error")

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _hostname(value):
        """The host part of a Host header, lower-case, without brackets or port; None if absent."""
        if not value:
            return None
        try:
            return (urlsplit("//" + value).hostname or "").lower()
        except ValueError:
            return value.lower()

    def origin_allowed(self, origin, req):
        origin = origin.rstrip("/").lower()
        if origin == "null":  # sandboxed frames, file:// pages: never
            return False
        if any(fnmatch.fnmatchcase(origin, pattern) for pattern in self.origins):
            return True
        # The server's own origin (a page it serves, under an allowed Host) is not foreign.
        parts = urlsplit(origin)
        host = (req.get_header("Host") or "").lower()
        return bool(parts.netloc) and parts.netloc == host

    @staticmethod
    def _refuse(req, message):
        log.warning("refused %s %s: %s", req.method, req.path, message)
        raise ModelRunnerError(message, status=403)
