"""The registry source: every reference that no more specific source claims."""

from modelrunner import Source, references

from . import pull as _pull
from . import push as _push
from . import search as _search


class OciSource(Source):
    name = "oci"
    fallback = True
    search_key = "dockerhub"

    def __init__(self, settings=None):
        self.settings = settings

    def handles(self, ref):
        return ref.registry != references.HF_REGISTRY

    def pull(self, ref, store, progress, token=None):
        return _pull.pull(ref, store, progress, token)

    def push(self, ref, model, store, progress, token=None):
        return _push.push(ref, model, store, progress, token)

    def search(self, term, limit):
        return _search.search(term, limit, self.settings)
