"""One two-node Ray cluster on this machine for the session, and a server placing runners on it.

Ray is heavy on a small machine: one cluster (``ray.cluster_utils.Cluster``, one CPU per node,
127.0.0.1, token auth on), always shut down, even when a test fails.
"""

import os
import secrets

import pytest

# the Diffusers plugin's tiny pipeline, for an image model placed on the cluster
from plugins.diffusers.tests.conftest import tiny_sd_dir, tiny_sd_files  # noqa: F401

TOKEN_ENV = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE",
             "RAY_AUTH_TOKEN")


@pytest.fixture(scope="session")
def ray_cluster():
    """``(address, token)`` of a head node labelled "a" and a worker labelled "b"."""
    saved = {name: os.environ.get(name) for name in TOKEN_ENV}
    token = secrets.token_hex(16)
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                      RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    from ray.cluster_utils import Cluster
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "labels": {"modelrunner/node": "a"}})
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1",
                         labels={"modelrunner/node": "b"})
        yield cluster.address, token
    finally:
        if cluster is not None:
            cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
