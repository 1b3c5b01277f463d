"""Helpers for the Ray placement tests: a server configured to place runners on a cluster."""

import importlib.metadata
import json
import os


def plugin_path(tmp_path):
    """A folder for PYTHONPATH that makes the ray plugin's entry point visible to a server,
    when the plugin is not pip-installed (CI installs it; a worktree may not)."""
    if any(ep.name == "ray" for ep in importlib.metadata.entry_points(group="modelrunner")):
        return None
    info = tmp_path / "site" / "modelrunner_ray-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: modelrunner-ray\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[modelrunner]\nray = modelrunner_ray\n")
    return str(info.parent)


def server_env(tmp_path, cluster, **settings):
    address, token = cluster
    env = {"MODELRUNNER_RAY_ADDRESS": address, "MODELRUNNER_RAY_AUTH_TOKEN": token,
           "MODELRUNNER_RAY_PLACE_TIMEOUT": "30"}
    env.update({f"MODELRUNNER_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
                for k, v in settings.items()})
    extra = plugin_path(tmp_path)
    if extra:
        env["PYTHONPATH"] = os.pathsep.join([extra, os.environ.get("PYTHONPATH", "")])
    return env
