"""GET /models/search?q=TERM&source=all|dockerhub|huggingface&limit=32: `model search`.

DMR searches from its CLI; here the server does, through the sources plugins registered (each
with a ``search_key`` and :meth:`Source.search`), so the CLI stays a thin HTTP client and the
sources' endpoints, credentials and TLS settings are the ones pulls use. Answer:
``{"results": [SearchResult...], "errors": ["HuggingFace: ..."]}``. With ``source=all`` a
source that fails is an entry in ``errors`` and the others still answer; asked alone, its
failure is the answer's status (502 for an unreachable endpoint, 429 when rate-limited).
"""

from concurrent.futures import ThreadPoolExecutor

from ..sources import SourceError
from .errors import dmr_error

DEFAULT_LIMIT = 32
MAX_LIMIT = 1000


class SearchResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        term = (req.get_param("q") or "").strip()
        wanted = (req.get_param("source") or "all").strip().lower()
        try:
            limit = int(req.get_param("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise dmr_error(400, "limit must be a number") from None
        if not 0 < limit <= MAX_LIMIT:
            raise dmr_error(400, f"limit must be between 1 and {MAX_LIMIT}")
        searchable = {s.search_key: s for s in self.runtime.sources if s.search_key}
        if wanted == "all":
            chosen = list(searchable.values())
        elif wanted in searchable:
            chosen = [searchable[wanted]]
        else:
            keys = ", ".join(["all", *searchable]) or "none installed"
            raise dmr_error(400, f"unknown source {wanted!r}: one of {keys}")

        def one(source):
            try:
                return [r.to_dict() for r in source.search(term, limit)], None
            except SourceError as e:
                return [], e
            except Exception as e:  # noqa: BLE001 - one broken plugin must not fail the others
                return [], SourceError(f"{type(e).__name__}: {e}", status=500)
        with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
            answers = list(pool.map(one, chosen))
        if wanted != "all" and answers and answers[0][1] is not None:
            error = answers[0][1]
            raise dmr_error(getattr(error, "status", 502), str(error))
        resp.media = {"results": [r for results, _ in answers for r in results],
                      "errors": [f"{s.search_key}: {e}" for s, (_, e) in zip(chosen, answers)
                                 if e is not None]}
