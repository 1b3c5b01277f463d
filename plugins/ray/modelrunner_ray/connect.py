"""Joining the Ray cluster from the scheduler process, with the traps of ray.init avoided.

* ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: without it, ``ray.init(address="127.0.0.1:...")``
  is rewritten to the machine's other address and hangs.
* ``RAY_USAGE_STATS_ENABLED=0``: no usage reports from a server.
* Token auth: with ``ray_auth_token`` set (MODELRUNNER_RAY_AUTH_TOKEN), Ray's token mode is on,
  so only holders of the token can submit work to the cluster that runs our runners. The
  token never reaches a runner (its name matches the secret filter of runner environments).
"""

import logging
import os

log = logging.getLogger("modelrunner.ray")


def connect(settings):
    """The ``ray`` module, initialised against ``settings.ray_address`` (once per process)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    token = settings.get("ray_auth_token")
    if token:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = str(token)
    elif os.environ.get("RAY_AUTH_MODE") != "token":
        log.warning("the Ray cluster is used without token auth: set ray_auth_token "
                    "(MODELRUNNER_RAY_AUTH_TOKEN) and start the cluster with the same token")
    import ray
    if not ray.is_initialized():
        ray.init(address=str(settings.get("ray_address")), namespace="modelrunner",
                 log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
    return ray
