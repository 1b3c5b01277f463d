"""The plugin manager: installed plugins (entry-point group "modelrunner") plus the core defaults.

MODELRUNNER_PLUGINS (a comma-separated list of plugin names, or "none") limits which installed
plugins load, and orders them: where plugins provide the same thing (two engines for one format,
two sources for one reference), the one named first comes first. The core's defaults always load,
last. A plugin's name is its entry-point name.
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
    """The plugin names MODELRUNNER_PLUGINS lists, in its order; None when it is not set."""
    value = os.environ.get("MODELRUNNER_PLUGINS")
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    return list(dict.fromkeys(name for name in names if name and name != "none"))


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
    found = list(importlib.metadata.entry_points(group="modelrunner"))
    if allowed is not None:
        found = sorted((ep for ep in found if ep.name in allowed), key=lambda ep: allowed.index(ep.name))
    # pluggy calls the plugin registered last first: register in reverse, so the first named is
    # asked first (and its engine, source... is the first registered)
    for ep in reversed(found):
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
