"""`model`: a thin HTTP client of the modelrunner server (MODEL_RUNNER_HOST, default
http://127.0.0.1:12434). Plugins add commands through the ``register_commands`` hook.

The CLI imports only what the command asked for needs: the core's commands are on the group
from the start, and plugins (the plugin manager, every plugin module and what they import) load
only for a command the core lacks, or to list them all (``model --help``). `model ls` thus makes
its one request after little more than click and http.client; tests/core/test_cli_imports.py
holds that line. A plugin cannot replace a core command.
"""

import click

from .commands import core_commands


class ModelGroup(click.Group):
    """A click group whose plugin commands load on first need."""

    plugins_loaded = False

    def load_plugins(self):
        if not self.plugins_loaded:
            self.plugins_loaded = True
            from ..plugins import get_plugin_manager
            get_plugin_manager().hook.register_commands(cli=self)

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self.load_plugins()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx):
        self.load_plugins()
        return super().list_commands(ctx)


@click.group(cls=ModelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelrunner")
def cli():
    """Pull, package, run and serve AI models."""


for _name, _command in core_commands().items():
    cli.add_command(_command, name=_name)


def main():
    cli()
