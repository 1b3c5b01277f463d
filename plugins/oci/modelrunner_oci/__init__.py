"""modelrunner's registry source: pull and push models from and to OCI registries.

Handles every reference except Hugging Face ones (``huggingface.co/...``), as the fallback
source: Docker Hub (``ai/smollm2`` -> ``docker.io/ai/smollm2:latest``) or any ``host[:port]/repo``.

Modules: :mod:`.registry` (endpoints, credentials, auth, requests), :mod:`.pull`, :mod:`.push`.
Environment and settings read: ``DEFAULT_REGISTRY``, ``INSECURE_REGISTRY`` (DMR's names),
``insecure_registries`` (setting), ``MODELRUNNER_REGISTRY_USERNAME``/``_PASSWORD``,
``DOCKER_CONFIG`` (the Docker config with ``auths``, ``credsStore``, ``credHelpers``).
"""

from modelrunner.hookspecs import hookimpl
from modelrunner.reference import HF_REGISTRY
from modelrunner.sources import Source

from . import pull as _pull
from . import push as _push
from .push import push_artifact

__all__ = ["OciSource", "push_artifact", "register_sources"]


class OciSource(Source):
    name = "oci"
    fallback = True

    def handles(self, ref):
        return ref.registry != HF_REGISTRY

    def pull(self, ref, store, progress, token=None):
        return _pull.pull(ref, store, progress, token)

    def push(self, ref, model, store, progress, token=None):
        return _push.push(ref, model, store, progress, token)


@hookimpl
def register_sources(register):
    register(OciSource())
