"""Registers the core's CLI commands through the same hook plugins use."""

from ..hookspecs import hookimpl
from .commands import COMMANDS, list_models
from .telemetry import logs, requests


@hookimpl
def register_commands(cli):
    for command in COMMANDS:
        cli.add_command(command)
    cli.add_command(list_models, name="ls")
    cli.add_command(logs)
    cli.add_command(requests)
