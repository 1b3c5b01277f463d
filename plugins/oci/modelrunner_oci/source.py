"""The registry source: every reference that no more specific source claims."""

from modelrunner import HF_REGISTRY, Source

from . import pull as _pull
from . import push as _push


class OciSource(Source):
    name = "oci"
    fallback = True

    def handles(self, ref):
        return ref.registry != HF_REGISTRY

    def pull(self, ref, store, progress, token=None):
        return _pull.pull(ref, store, progress, token)

    def push(self, ref, model, store, progress, token=None):
        return _push.push(ref, model, store, progress, token)
