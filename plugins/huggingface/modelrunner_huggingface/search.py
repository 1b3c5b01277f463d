"""`model search --source huggingface`: GGUF models on the Hub (or ``HF_ENDPOINT``): ``GET
/api/models?search=TERM&filter=gguf&sort=downloads&direction=-1&limit=N`` through
huggingface_hub's session and headers, with ``HF_TOKEN`` where a pull would send it.

Names come back as `model pull` takes them, ``hf.co/org/repo``. The description is made from
the pipeline tag and the architecture tags, as DMR's cmd/cli/search/huggingface.go does.
"""

from modelrunner import SearchResult, SourceError, downloads

from .source import _http_errors, _token, endpoint

SOURCE_NAME = "HuggingFace"
MAX_ANSWER = 16 << 20  # decoded bytes of one search answer (a mirror's gzip bomb stops here)
_SKIP = {"gguf", "transformers", "pytorch", "safetensors", "license:apache-2.0"}


def describe(tags, pipeline_tag):
    parts = [pipeline_tag] if pipeline_tag else []
    for tag in tags or []:
        tag = str(tag).lower()
        if tag in _SKIP:
            continue
        if tag.startswith(("llama", "mistral", "phi", "qwen", "gemma", "smollm")) \
                or "instruct" in tag or "chat" in tag:
            parts.append(tag)
            if len(parts) >= 3:
                break
    text = ", ".join(parts) or "AI model"
    return text if len(text) <= 50 else text[:47] + "..."


def backend_for(tags):
    tags = {str(t).lower() for t in tags or []}
    if "gguf" in tags:
        return "llama.cpp"
    return "vllm" if "safetensors" in tags else "unknown"


def search(term, limit):
    """One GET of the Hub's model search (no retries: a search that cannot reach the Hub should
    say so at once, not after huggingface_hub's backoff)."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers
    base = endpoint()
    headers = build_hf_headers(token=_token(None, base), library_name="modelrunner")
    params = {"filter": "gguf", "sort": "downloads", "direction": "-1", "limit": str(limit)}
    if term:
        params["search"] = term
    try:
        with get_session().stream("GET", f"{base}/api/models", params=params, headers=headers,
                                  timeout=30) as response:
            status = response.status_code
            if status == 200:
                downloads.read_capped(response, MAX_ANSWER, "search answer")
    except _http_errors() + (OSError,) as exc:
        raise SourceError(f"cannot reach Hugging Face at {base}: {exc}", status=502) from None
    if status == 429:
        raise SourceError("rate limited by Hugging Face, please try again later", status=429)
    if status != 200:
        raise SourceError(f"Hugging Face at {base} answered HTTP {status} to a search",
                          status=502)
    try:
        found = response.json()
    except ValueError:
        found = None
    if not isinstance(found, list):
        raise SourceError(f"Hugging Face at {base} sent a search answer that is not a list",
                          status=502)
    results = []
    for model in found:
        if not isinstance(model, dict) or model.get("private"):
            continue
        repo_id = model.get("modelId") or model.get("id")
        if not isinstance(repo_id, str) or not repo_id:
            continue
        tags = model.get("tags") if isinstance(model.get("tags"), list) else []
        results.append(SearchResult(
            name=f"hf.co/{repo_id}", description=describe(tags, model.get("pipeline_tag")),
            backend=backend_for(tags), downloads=_int(model.get("downloads")),
            stars=_int(model.get("likes")), source=SOURCE_NAME,
            updated_at=str(model.get("createdAt") or "")))
    return results[:limit]


def _int(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
