"""The plugin manager: installed plugins (entry-point group "modelrunner") plus the core defaults.

MODELRUNNER_PLUGINS (a comma-separated list of plugin names, or "none") limits which installed
plugins load; the core's defaults always load. A plugin's name is its entry-point name.
"""

import importlib
import importlib.metadata
import logging
import os

import pluggy

from . import hookspecs

# The core's own defaults, registered through the same hooks as any plugin.
DEFAULT_PLUGINS = (
    "modelrunner.store.plugin",
    "modelrunner.api.plugin",
    "modelrunner.cli.plugin",
    "modelrunner.inspector",
    "modelrunner.scheduler.plugin",
)


def _allowed_names():
    value = os.environ.get("MODELRUNNER_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip() and name.strip() != "none"}


# Installed plugins that failed to import: name -> error (shown by `model plugins`).
FAILED = {}
# Installed plugins' distributions: name -> importlib.metadata.Distribution (their versions for
# `model plugins`). Kept here rather than in pluggy's private list, which only its own
# load_setuptools_entrypoints fills (and that one cannot filter by MODELRUNNER_PLUGINS nor
# survive a plugin that fails to import).
DISTRIBUTIONS = {}


def make_plugin_manager():
    pm = pluggy.PluginManager("modelrunner")
    pm.add_hookspecs(hookspecs)
    allowed = _allowed_names()
    for ep in importlib.metadata.entry_points(group="modelrunner"):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as e:  # a broken plugin must not take the server down
            logging.getLogger("modelrunner").warning("plugin %s failed to load: %s", ep.name, e)
            FAILED[ep.name] = f"{type(e).__name__}: {e}"
            continue
        pm.register(module, name=ep.name)
        DISTRIBUTIONS[ep.name] = ep.dist
    # Registered last, so pluggy calls them last: a plugin's make_store wins over the default.
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    return pm


_pm = None


def get_plugin_manager():
    """The process-wide plugin manager, made on first use."""
    global _pm
    if _pm is None:
        _pm = make_plugin_manager()
    return _pm


def describe_plugins(pm):
    """[{name, version, hooks, default}] for `model plugins` and GET /plugins."""
    result = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        hooks = sorted(hook.name for hook in pm.get_hookcallers(plugin) or [])
        dist = DISTRIBUTIONS.get(name)
        result.append({
            "name": name,
            "version": dist.version if dist else None,
            "distribution": dist.metadata["name"] if dist else None,
            "hooks": hooks,
            "default": name in DEFAULT_PLUGINS,
        })
    for name, error in FAILED.items():
        result.append({"name": name, "version": None, "distribution": None, "hooks": [],
                       "default": False, "error": error})
    return sorted(result, key=lambda p: (p["default"], p["name"]))
