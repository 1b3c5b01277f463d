"""`model`: a thin HTTP client of the modelrunner server (MODEL_RUNNER_HOST, default
http://127.0.0.1:12434). Plugins add commands through the ``register_commands`` hook."""

import click

from ..plugins import get_plugin_manager


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelrunner")
def cli():
    """Pull, package, run and serve AI models."""


def main():
    get_plugin_manager().hook.register_commands(cli=cli)
    cli()
