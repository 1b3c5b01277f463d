"""The core's CLI commands, also registered through the hook plugins use."""

from ..hookspecs import hookimpl
from .commands import COMMANDS, list_models
from .telemetry import logs, requests


def core_commands():
    """{name: command} for every core command (`ls` is `list` under a second name)."""
    commands = {command.name: command for command in COMMANDS}
    commands["ls"] = list_models
    commands["logs"] = logs
    commands["requests"] = requests
    return commands


@hookimpl
def register_commands(cli):
    for name, command in core_commands().items():
        if cli.commands.get(name) is not command:
            cli.add_command(command, name=name)
