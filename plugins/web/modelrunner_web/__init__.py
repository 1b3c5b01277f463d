"""modelrunner-web: the web UI at /ui/, served by the same server, talking only to its API.

Hook implementations only; routes.py has the resources, pulls.py the pulls the page started.
"""

import modelrunner

from . import routes


@modelrunner.hookimpl(trylast=True)
def register_routes(app, runtime):
    routes.add_routes(app, runtime)
