"""The core's default placement, registered through the same hook a plugin uses."""

from ..hookspecs import hookimpl
from .local import LocalPlacement
from .scheduler import socket_dir


@hookimpl(trylast=True)
def make_placement(settings):
    """Runners as children of the scheduler on Unix sockets (registered last: the default)."""
    return LocalPlacement(socket_dir(settings.models_path))
