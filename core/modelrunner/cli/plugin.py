"""Registers the core's CLI commands through the same hook plugins use (the group already has
them: see ModelGroup; this keeps the core a plugin like any other)."""

from ..hookspecs import hookimpl
from .commands import core_commands


@hookimpl
def register_commands(cli):
    for name, command in core_commands().items():
        if cli.commands.get(name) is not command:
            cli.add_command(command, name=name)
