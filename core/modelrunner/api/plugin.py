"""The core's own routes (DMR's native API), registered through the same hook as any plugin."""

from .. import inspector as request_inspector
from ..hookspecs import hookimpl
from . import engines, inspector, integrity, logs, misc, models, search


@hookimpl
def register_routes(app, runtime):
    app.add_route("/", misc.RootResource())
    app.add_route("/version", misc.VersionResource())
    app.add_route("/plugins", misc.PluginsResource(runtime))
    app.add_route("/models", models.ModelsResource(runtime))
    app.add_route("/models/create", models.CreateResource(runtime))
    app.add_route("/models/load", models.LoadResource(runtime))
    app.add_route("/models/purge", models.PurgeResource(runtime))
    app.add_route("/models/prune", integrity.PruneResource(runtime))
    app.add_route("/models/fsck", integrity.FsckResource(runtime))
    app.add_route("/models/search", search.SearchResource(runtime))
    app.add_route("/models/{ref:path}", models.ModelResource(runtime))
    app.add_route("/engines/status", engines.StatusResource(runtime))
    app.add_route("/engines/builds", engines.BuildsResource(runtime))
    app.add_route("/engines/options", engines.OptionsResource(runtime))
    app.add_route("/engines/ps", engines.PsResource(runtime))
    app.add_route("/engines/df", engines.DfResource(runtime))
    app.add_route("/engines/unload", engines.UnloadResource(runtime))
    configure = engines.ConfigureResource(runtime)
    app.add_route("/engines/_configure", configure)
    app.add_route("/engines/{engine}/_configure", configure)
    request_inspector.configure(runtime.settings)
    app.add_route("/engines/requests", inspector.RequestsResource(runtime))
    app.add_route("/logs", logs.LogsResource(runtime))
