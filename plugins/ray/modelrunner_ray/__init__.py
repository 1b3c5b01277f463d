"""modelrunner-ray: with ``ray_address`` set, each runner starts as a Ray actor on a cluster node.

Hookimpls only; the placement is in placement.py, node choice in nodes.py, the actor (what runs
on the node) in actor.py, the connection to the cluster in connect.py. ``ray`` is imported only
by the scheduler process, once it asks for a placement: never by the API workers or the CLI.
"""

from modelrunner import hookimpl


@hookimpl
def make_placement(settings):
    """The Ray placement when ``ray_address`` is set (MODELRUNNER_RAY_ADDRESS), else None."""
    if not settings.get("ray_address"):
        return None
    from .placement import RayPlacement
    return RayPlacement(settings)
