"""modelrunner's registry source: pull and push models from and to OCI registries.

Handles every reference except Hugging Face ones (``huggingface.co/...``), as the fallback
source: Docker Hub (``ai/smollm2`` -> ``docker.io/ai/smollm2:latest``) or any ``host[:port]/repo``.

Modules: :mod:`.registry` (endpoints, credentials, auth, requests), :mod:`.pull`, :mod:`.push`,
:mod:`.search` (`model search --source dockerhub`; setting ``dockerhub_search_url``).
Environment and settings read: ``DEFAULT_REGISTRY``, ``INSECURE_REGISTRY`` (DMR's names),
``insecure_registries``, ``registry_credentials_host``, ``registry_auth_hosts`` (settings; see
:mod:`.scope`), ``MODELRUNNER_REGISTRY_USERNAME``/``_PASSWORD``,
``DOCKER_CONFIG`` (the Docker config with ``auths``, ``credsStore``, ``credHelpers``).
"""

from modelrunner import hookimpl

from .registry import use_settings
from .source import OciSource


@hookimpl
def register_sources(register, settings):
    use_settings(settings)
    register(OciSource(settings))
