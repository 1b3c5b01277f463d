"""A small OCI distribution client: endpoints, credentials, auth and requests (httpx, streaming).

* Endpoints: ``docker.io`` -> ``https://registry-1.docker.io``; any ``host[:port]`` over https;
  plain http only for localhost / 127.0.0.1 / [::1] and the registries listed in the setting
  ``insecure_registries`` or DMR's ``INSECURE_REGISTRY`` (comma list). DMR's ``DEFAULT_REGISTRY``
  replaces Docker Hub for references that did not name a registry.
* Credentials, first found wins: the bearer token passed with the request (DMR's
  "bearer-token"), ``MODELRUNNER_REGISTRY_USERNAME``/``_PASSWORD`` (for the one registry named by
  ``registry_credentials_host``, see :mod:`.scope`), then the Docker config
  (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``): ``credHelpers[host]``,
  ``credsStore`` (both by running ``docker-credential-<helper> get``), then ``auths[host].auth``.
* Auth: anonymous first; on 401 the ``WWW-Authenticate`` challenge decides: Basic sends the
  credentials, Bearer fetches a token from ``realm`` (``service``, ``scope``), with the credentials
  when there are some and :mod:`.scope` lets them go there. A request that is still 401 after one auth round is a SourceError(401):
  wrong credentials fail at once, never in a retry loop.
* Retries: at most 2, after 0.1 s and 0.3 s, only for connection errors and 5xx answers.
"""

import base64
import functools
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from urllib.parse import urljoin

from modelrunner import SourceError, downloads

from . import scope


def _import_httpx():
    """httpx, also under gevent's monkey patching: httpcore imports trio when it is installed,
    and trio crashes at import once gevent has patched ``select`` (AttributeError: epoll), which
    httpcore does not catch. Its sync API never uses trio, so hide trio for that one import."""
    if "httpcore" not in sys.modules and "trio" not in sys.modules:
        patched = False
        if "gevent" in sys.modules:  # only a process that imported gevent can be patched
            from gevent import monkey
            patched = monkey.is_module_patched("select")
        if patched:
            sys.modules["trio"] = None  # makes `import trio` raise ImportError
            try:
                import httpcore  # noqa: F401  (httpx imports it lazily, on the first Client)
            finally:
                del sys.modules["trio"]
    import httpx
    return httpx


httpx = _import_httpx()

from modelrunner import media_types

MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (media_types.OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST)
SUPPORTED_CONFIG_TYPES = (media_types.CONFIG_V01, media_types.CONFIG_V02,
                          media_types.CNCF_CONFIG_V1)

CHUNK = 1 << 20
RETRY_DELAYS = (0.1, 0.3)          # two quick retries, 0.4 s in all
MAX_MANIFEST = 4 << 20             # the distribution spec's limit
MAX_BODY = MAX_MANIFEST            # any answer read whole (manifests, tokens): decoded bytes
MAX_ERROR_BODY = 64 << 10          # an error answer, read only for its message
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


@functools.cache
def tls_context():
    """One TLS context for every registry connection, httpx's and the blob reader's: loading
    the CA bundle costs about 20 ms, once per process rather than once per pull."""
    import certifi  # httpx's own CA bundle
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where(),
                                      capath=os.environ.get("SSL_CERT_DIR"))


def _user_agent():
    try:
        from modelrunner import __version__  # noqa: F401
    except ImportError:  # pragma: no cover
        __version__ = "0"
    return f"modelrunner/{__version__}"


# -- endpoints ----------------------------------------------------------------------------------


def _split_list(text):
    return [item.strip() for item in (text or "").split(",") if item.strip()]


_configured_insecure = []  # the ``insecure_registries`` setting, given by register_sources


def use_settings(settings):
    """Take this plugin's settings (``insecure_registries``) from the register_sources hook."""
    configured = settings.get("insecure_registries") or [] if settings is not None else []
    if isinstance(configured, str):
        configured = _split_list(configured)
    _configured_insecure[:] = [str(h).strip() for h in configured]
    scope.use_settings(settings)


def insecure_registries():
    """Hosts reached over plain http besides localhost: settings + INSECURE_REGISTRY."""
    hosts = _split_list(os.environ.get("INSECURE_REGISTRY")) + list(_configured_insecure)
    return {h.removeprefix("http://").removeprefix("https://").rstrip("/").lower() for h in hosts}


def registry_host(registry):
    """The host[:port] to talk to for a reference's registry."""
    if registry == DOCKER_HUB:
        default = os.environ.get("DEFAULT_REGISTRY", "").strip()
        if default:
            registry = default.removeprefix("https://").removeprefix("http://").rstrip("/")
    return DOCKER_HUB_API if registry in _HUB_ALIASES else registry


def base_url(host):
    """https://host, or http://host for localhost and configured insecure registries."""
    bare = host.lower()
    name = bare.rsplit(":", 1)[0] if not bare.endswith("]") and bare.count(":") == 1 else bare
    if name.startswith("[") and "]:" in name:
        name = name.split("]:")[0] + "]"
    insecure = name in _LOCAL_HOSTS or bare in insecure_registries() or name in insecure_registries()
    return f"{'http' if insecure else 'https'}://{host}"


# -- credentials --------------------------------------------------------------------------------


def _config_keys(host):
    """Names a Docker config may file a registry under."""
    if host in _HUB_ALIASES or host == DOCKER_HUB_API:
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]


def _docker_config():
    directory = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _credential_helper(helper, server):
    try:
        proc = subprocess.run([f"docker-credential-{helper}", "get"], input=server.encode(),
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        payload = json.loads(proc.stdout)
    except ValueError:
        return None
    user, secret = payload.get("Username", ""), payload.get("Secret", "")
    if not secret:
        return None
    return ("<token>", secret) if user == "<token>" else (user, secret)


def find_credentials(host):
    """(username, password) for ``host``, or None for anonymous access."""
    user = os.environ.get("MODELRUNNER_REGISTRY_USERNAME")
    password = os.environ.get("MODELRUNNER_REGISTRY_PASSWORD")
    if user and password and host.lower() == scope.credentials_host(registry_host):
        return user, password
    config = _docker_config()
    keys = _config_keys(host)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            found = _credential_helper(helpers[key], key)
            if found:
                return found
    auths = config.get("auths") or {}
    if config.get("credsStore"):
        for key in keys:
            found = _credential_helper(config["credsStore"], key)
            if found:
                return found
    for key in keys:
        entry = auths.get(key) or {}
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                continue
            if user and password:
                return user, password
        if entry.get("username") and entry.get("password"):
            return entry["username"], entry["password"]
    return None


def parse_challenge(header):
    """'Bearer realm="...",service="..."' -> ("bearer", {realm, service, ...})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def _error_text(response):
    """The registry's error message ({"errors":[{"code","message"}]}) or the status line."""
    try:
        downloads.read_capped(response, MAX_ERROR_BODY, truncate=True)
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
        if text:
            return text
    except Exception:
        pass
    return f"HTTP {response.status_code}"


# -- the client ---------------------------------------------------------------------------------


class Registry:
    """One repository on one registry, with its auth state; thread-safe for parallel blobs."""

    def __init__(self, registry, repository, token=None, push=False, timeout=60.0):
        self.host = registry_host(registry)
        self.base = base_url(self.host)
        self.repository = repository
        self.actions = "pull,push" if push else "pull"
        self.token = token
        self._credentials = None if token else find_credentials(self.host)
        self._authorization = f"Bearer {token}" if token else None
        self._lock = threading.Lock()
        self.timeout = timeout
        self.user_agent = _user_agent()
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            verify=tls_context(),
            follow_redirects=True,
            headers={"User-Agent": self.user_agent},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def authorization(self):
        """The Authorization header that the last auth round settled (None: anonymous)."""
        return self._authorization

    def url(self, path):
        return f"{self.base}/v2/{self.repository}/{path}"

    def absolute(self, location):
        return urljoin(self.base + "/", location)

    # -- auth -----------------------------------------------------------------------------------

    def _authenticate(self, response, used):
        """Answer a 401 challenge; raise SourceError(401) when auth cannot succeed."""
        where = f"{self.host}/{self.repository}"
        if self.token:
            raise SourceError(f"authentication failed for {where}: the registry rejected the bearer "
                              f"token ({_error_text(response)})", status=401)
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        with self._lock:
            if self._authorization != used:  # another thread already authenticated
                return
            if scheme == "basic":
                if not self._credentials:
                    raise SourceError(f"authentication required for {where}: set credentials with "
                                      f"`docker login {self.host}` or MODELRUNNER_REGISTRY_USERNAME/"
                                      f"MODELRUNNER_REGISTRY_PASSWORD", status=401)
                if used and used.startswith("Basic "):
                    raise SourceError(f"authentication failed for {where}: wrong username or "
                                      f"password", status=401)
                raw = ":".join(self._credentials).encode()
                self._authorization = "Basic " + base64.b64encode(raw).decode()
            elif scheme == "bearer" and params.get("realm"):
                if used and used.startswith("Bearer ") and "insufficient_scope" not in \
                        (params.get("error") or ""):
                    raise SourceError(f"authentication failed for {where}: the registry rejected "
                                      f"the token ({_error_text(response)})", status=401)
                self._authorization = "Bearer " + self._fetch_token(params)
            else:
                raise SourceError(f"authentication failed for {where}: {_error_text(response)}",
                                  status=401)

    def _fetch_token(self, params):
        where = f"{self.host}/{self.repository}"
        scopes = [f"repository:{self.repository}:{self.actions}"]
        if params.get("scope") and params["scope"] not in scopes:
            scopes.append(params["scope"])
        query = [("scope", s) for s in scopes]
        if params.get("service"):
            query.append(("service", params["service"]))
        auth = None
        withheld = bool(self._credentials) and not self.may_authorize(params["realm"])
        if self._credentials and not withheld:
            auth = httpx.BasicAuth(*self._credentials)
        response = self._send("GET", params["realm"], params=query, auth=auth, authorize=False)
        if response.status_code in (401, 403):
            detail = _error_text(response)
            raise SourceError(f"authentication failed for {where}: "
                              f"{'wrong username or password' if auth else 'access denied'}"
                              f" ({detail}){self._withheld_hint(params['realm']) if withheld else ''}",
                              status=401)
        if response.status_code != 200:
            raise SourceError(f"token server of {self.host} answered {_error_text(response)}",
                              status=502)
        try:
            body = response.json()
            return body.get("token") or body["access_token"]
        except (ValueError, KeyError):
            raise SourceError(f"token server of {self.host} sent no token", status=502) from None

    def may_authorize(self, url):
        """Whether ``url`` may see this registry's credentials (:mod:`.scope`)."""
        return scope.may_authorize(url, self.host, insecure_registries())

    def _withheld_hint(self, url):
        netloc = httpx.URL(url).netloc.decode()
        return (f"; credentials for {self.host} were not sent to {url}: list {netloc} under "
                f"registry_auth_hosts.{self.host} (and insecure_registries for plain http) "
                f"to allow it")

    # -- requests -------------------------------------------------------------------------------

    def _send(self, method, url, *, headers=None, content=None, params=None, auth=None,
              stream=False, authorize=True):
        """One request with auth and quick retries; ``content`` may be a callable (re-opened
        for each attempt, for streamed uploads). Returns the response (open when ``stream``)."""
        attempt = 0
        authenticated = False
        while True:
            used = self._authorization if authorize else None
            if used and not self.may_authorize(str(url)):
                used = None  # another host (an upload Location, say) or plain http
            sent = dict(headers or {})
            if used:
                sent["Authorization"] = used
            body = content() if callable(content) else content
            try:
                request = self.client.build_request(method, url, headers=sent, content=body,
                                                    params=params)
                response = self.client.send(request, stream=True, auth=auth)
                if response.status_code >= 400:  # read for its message only, the start of it
                    downloads.read_capped(response, MAX_ERROR_BODY, truncate=True)
                elif not stream:
                    downloads.read_capped(response, MAX_BODY)
            except httpx.TransportError as e:
                if attempt < len(RETRY_DELAYS):
                    time.sleep(RETRY_DELAYS[attempt])
                    attempt += 1
                    continue
                raise SourceError(f"cannot reach registry {self.host}: {e or type(e).__name__}",
                                  status=502) from None
            finally:
                if hasattr(body, "close"):
                    body.close()
            if response.status_code == 401 and authorize and not authenticated:
                response.close()
                self._authenticate(response, used)
                authenticated = True
                continue
            if response.status_code == 401 and authorize:
                response.close()
                self._authenticate(response, self._authorization)  # raises: still rejected
                raise SourceError(f"authentication failed for {self.host}", status=401)
            if response.status_code >= 500 and attempt < len(RETRY_DELAYS):
                response.close()
                time.sleep(RETRY_DELAYS[attempt])
                attempt += 1
                continue
            return response

    def request(self, method, path_or_url, **kwargs):
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        return self._send(method, url, **kwargs)

    def fail(self, response, what):
        """Raise a SourceError for an unexpected answer, with DMR's statuses."""
        status = response.status_code
        detail = _error_text(response)
        response.close()
        where = f"{self.host}/{self.repository}"
        if status == 404:
            raise SourceError(f"{what}: not found in {where} ({detail})", status=404)
        if status == 403:
            raise SourceError(f"{what}: access to {where} denied ({detail})", status=403)
        if status == 401:
            raise SourceError(f"{what}: authentication failed for {where} ({detail})", status=401)
        raise SourceError(f"{what}: registry {self.host} answered {detail}", status=502)
