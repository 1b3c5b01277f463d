"""`model search --source dockerhub`: the models of the ``ai/`` namespace, as DMR lists them.

Where depends on the registry that ``ai/x`` pulls from (:func:`.registry.registry_host`):

* Docker Hub: its repositories API, ``GET {hub}/v2/repositories/ai/?page_size=N&ordering=
  -pull_count`` (DMR's cmd/cli/search/dockerhub.go), following ``next``; the endpoint is the
  setting ``dockerhub_search_url`` (default https://hub.docker.com), so a mirror of that API
  can stand in. Name or description must contain the term (case-insensitive).
* Any other registry (``DEFAULT_REGISTRY``): the distribution API's catalog, ``GET
  /v2/_catalog`` (paged with ``Link``), with the registry's own auth; the repositories under
  ``ai/`` whose name contains the term. A catalog knows no descriptions, pulls or stars.

The engine guess is DMR's: "vllm" for names or descriptions that say vllm/safetensors,
"llama.cpp" otherwise (the ai/ namespace is mostly GGUF).
"""

from urllib.parse import urljoin, urlsplit

from modelrunner import SearchResult, SourceError, downloads

from .registry import (DOCKER_HUB, DOCKER_HUB_API, MAX_BODY, Registry, _error_text, httpx,
                       registry_host, tls_context)

NAMESPACE = "ai"
HUB_SEARCH_URL = "https://hub.docker.com"
SOURCE_NAME = "Docker Hub"
MAX_PAGES = 50


def search(term, limit, settings=None):
    host = registry_host(DOCKER_HUB)
    if host == DOCKER_HUB_API:
        base = (settings.get("dockerhub_search_url", None) if settings is not None else None)
        return search_hub(base or HUB_SEARCH_URL, term, limit)
    return search_catalog(host, term, limit)


def backend_for(name, description=""):
    text = f"{name} {description}".lower()
    vllm = "vllm" in text or "safetensors" in text
    llama = any(w in text for w in ("llama.cpp", "llamacpp", "llama-cpp", "gguf"))
    if vllm and llama:
        return "llama.cpp, vllm"
    return "vllm" if vllm else "llama.cpp"


def _truncate(text, width=50):
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[:width - 3] + "..."


def hub_results(page, term):
    """The SearchResults of one page of Docker Hub's repositories API, filtered by ``term``."""
    term = term.lower()
    out = []
    for repo in page.get("results") or []:
        if not isinstance(repo, dict) or repo.get("is_private"):
            continue
        name, description = str(repo.get("name") or ""), str(repo.get("description") or "")
        if term and term not in name.lower() and term not in description.lower():
            continue
        namespace = str(repo.get("namespace") or NAMESPACE)
        out.append(SearchResult(
            name=f"{namespace}/{name}", description=_truncate(description),
            backend=backend_for(name, description), downloads=_count(repo.get("pull_count")),
            stars=_count(repo.get("star_count")), source=SOURCE_NAME,
            official=namespace == NAMESPACE, updated_at=str(repo.get("last_updated") or "")))
    return out


def _count(value):
    """A count from the Hub's answer; anything that is not a whole number counts as 0."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _client():
    return httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), verify=tls_context(),
                        follow_redirects=True, headers={"Accept": "application/json"})


def search_hub(base, term, limit):
    url = f"{base.rstrip('/')}/v2/repositories/{NAMESPACE}/"
    params = {"page_size": min(100, limit), "ordering": "-pull_count"}
    results = []
    with _client() as client:
        for _ in range(MAX_PAGES):
            try:
                with client.stream("GET", url, params=params) as response:
                    if response.status_code == 429:
                        raise SourceError("rate limited by Docker Hub, please try again later",
                                          status=429)
                    if response.status_code != 200:
                        raise SourceError(f"Docker Hub answered {_error_text(response)}",
                                          status=502)
                    downloads.read_capped(response, MAX_BODY, "search answer")  # a hostile mirror's bomb
            except httpx.HTTPError as e:
                raise SourceError(f"cannot reach Docker Hub at {base}: {e}", status=502) from None
            try:
                page = response.json()
            except ValueError:
                raise SourceError("Docker Hub sent an answer that is not JSON", status=502) from None
            if not isinstance(page, dict):
                raise SourceError("Docker Hub sent an answer that is not an object", status=502)
            results += hub_results(page, term)
            following = page.get("next")
            if len(results) >= limit or not isinstance(following, str) or not following:
                break
            following = urljoin(url, following)
            if urlsplit(following).netloc != urlsplit(url).netloc:  # pages stay on that host
                break
            url, params = following, None
    return results[:limit]


def search_catalog(host, term, limit):
    """The ``ai/`` repositories of the registry at ``host`` that contain ``term``."""
    term = term.lower()
    results = []
    with Registry(host, NAMESPACE) as registry:
        url = f"{registry.base}/v2/_catalog?n=1000"
        for _ in range(MAX_PAGES):
            response = registry.request("GET", url)
            if response.status_code == 404:
                raise SourceError(f"registry {host} offers no catalog to search", status=501)
            if response.status_code != 200:
                registry.fail(response, "search")
            try:
                names = response.json().get("repositories") or []
            except (ValueError, AttributeError):
                raise SourceError(f"registry {host} sent a catalog that is not JSON",
                                  status=502) from None
            for name in names:
                if not isinstance(name, str) or not name.startswith(NAMESPACE + "/"):
                    continue
                if term and term not in name.lower():
                    continue
                results.append(SearchResult(name=name, backend=backend_for(name), source=host,
                                            official=True))
            following = response.links.get("next", {}).get("url")
            if len(results) >= limit or not following:
                break
            url = registry.absolute(following)
    return results[:limit]
