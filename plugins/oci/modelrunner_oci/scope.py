"""Where registry credentials may go: their own registry, over TLS, and nowhere else.

A reference names its registry, so anyone who can make the server pull ``evil.example/x`` could
otherwise collect the credentials meant for another registry. The rules:

* ``MODELRUNNER_REGISTRY_USERNAME``/``_PASSWORD`` belong to one registry: the setting
  ``registry_credentials_host`` (env ``MODELRUNNER_REGISTRY_CREDENTIALS_HOST``), Docker Hub (or
  DMR's ``DEFAULT_REGISTRY``) when unset. Docker config entries are filed by host already.
* Credentials and the Authorization a registry settled go only to that registry's own
  ``host[:port]``, plus the hosts the setting ``registry_auth_hosts`` lists for it (a table,
  registry -> [hosts]: a token realm or an upload store elsewhere). Docker Hub's realm
  ``auth.docker.io`` is built in. A token realm or upload ``Location`` on any other host is asked
  without them.
* Never over plain http, except to a loopback host or a registry configured as insecure
  (``insecure_registries`` / ``INSECURE_REGISTRY``): a configured insecure registry has asked
  for exactly that.
"""

import os
from urllib.parse import urlsplit

DOCKER_HUB_API = "registry-1.docker.io"
_BUILT_IN_AUTH_HOSTS = {DOCKER_HUB_API: ("auth.docker.io",)}
LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")

_settings = {"credentials_host": None, "auth_hosts": {}}


def use_settings(settings):
    """``registry_credentials_host`` and ``registry_auth_hosts`` from the plugin's settings."""
    get = settings.get if settings is not None else (lambda key, default=None: default)
    _settings["credentials_host"] = (get("registry_credentials_host", None) or None)
    table = get("registry_auth_hosts", None) or {}
    _settings["auth_hosts"] = {_bare(k): tuple(_bare(h) for h in _as_list(v))
                               for k, v in dict(table).items()}


def _as_list(value):
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value or [])


def _bare(host):
    """'https://Host:5000/' -> 'host:5000'."""
    return str(host).strip().removeprefix("https://").removeprefix("http://").rstrip("/").lower()


def hostname(netloc):
    """'host:5000' -> 'host', '[::1]:5000' -> '[::1]'."""
    netloc = netloc.lower()
    if netloc.startswith("["):
        return netloc.split("]")[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def is_loopback(netloc):
    return hostname(netloc) in LOOPBACK


def credentials_host(resolve):
    """The registry host the environment's username and password belong to; ``resolve`` maps a
    registry name to the host talked to (``registry.registry_host``)."""
    configured = os.environ.get("MODELRUNNER_REGISTRY_CREDENTIALS_HOST") or \
        _settings["credentials_host"] or "docker.io"
    return _bare(resolve(_bare(configured)))


def auth_hosts(registry):
    """Hosts besides ``registry`` itself that may receive its credentials."""
    registry = _bare(registry)
    return _BUILT_IN_AUTH_HOSTS.get(registry, ()) + _settings["auth_hosts"].get(registry, ())


def may_authorize(url, registry, insecure):
    """Whether a request to ``url`` may carry ``registry``'s credentials or Authorization;
    ``insecure`` is the set of registries configured for plain http."""
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    registry = _bare(registry)
    if netloc != registry and netloc not in auth_hosts(registry):
        return False
    if parts.scheme == "https":
        return True
    return is_loopback(netloc) or netloc in insecure or hostname(netloc) in insecure
