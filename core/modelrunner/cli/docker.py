"""`docker-model`: the Docker CLI plugin, so that `docker model ...` (and Compose, which shells out
to this plugin) drives modelrunner as it drives Docker Model Runner.

How the Docker CLI talks to a plugin (docker/cli cli-plugins/manager): it finds an executable
named ``docker-<name>`` in ``$DOCKER_CONFIG/cli-plugins`` (or ~/.docker/cli-plugins and the
system folders), asks it ``docker-model docker-cli-plugin-metadata`` for a JSON description, and
runs ``docker model ARGS`` as ``docker-model model ARGS``: the first argument is the plugin's
name. Compose, in contrast, execs the plugin's path itself with the bare arguments
(``docker-model ls --json``, ``docker-model compose --project-name=p up ...``). Both shapes land
on the same click group as `model`.

The metadata's Version matters: Compose passes a model's ``runtime_flags`` to ``configure`` only
when the plugin's version is at least 1.0.6 (docker/compose pkg/compose/model.go), comparing
dot-separated integers. Our version therefore leads with the DMR CLI level whose behaviour we
implement, and carries modelrunner's own version as semver build metadata.
"""

import json
import os
import sys

import click

# The docker/model-runner CLI level these commands follow (Compose gates features on it).
DMR_CLI_LEVEL = "1.1.0"
PLUGIN_NAME = "model"


def plugin_version():
    from .. import __version__
    return f"{DMR_CLI_LEVEL}+modelrunner.{__version__}"


def metadata():
    """What `docker-model docker-cli-plugin-metadata` prints (docker/cli's plugin Metadata)."""
    return {"SchemaVersion": "0.1.0", "Vendor": "modelrunner", "Version": plugin_version(),
            "ShortDescription": "Docker Model Runner (modelrunner)",
            "URL": "https://github.com/docker/model-runner"}


def plugin_args(argv):
    """The `model` arguments in a plugin invocation: drop the plugin name the Docker CLI puts
    first; Compose's direct calls have none to drop."""
    args = list(argv)
    if args and args[0] == PLUGIN_NAME:
        args = args[1:]
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["docker-cli-plugin-metadata"]:
        click.echo(json.dumps(metadata(), indent=2))
        return
    from . import cli
    cli.main(args=plugin_args(argv), prog_name="docker model")


@click.command(name="install-docker-plugin")
@click.option("--path", "script", type=click.Path(exists=True, dir_okay=False),
              help="The docker-model executable to link (default: the one installed beside "
                   "`model`)")
def install_docker_plugin(script):
    """Link docker-model into the Docker CLI's plugin folder, so that `docker model` works."""
    from pathlib import Path
    target = Path(script) if script else find_plugin_script()
    if target is None:
        from .client import fail
        fail("docker-model is not installed (pip install modelrunner puts it beside `model`); "
             "give its path with --path")
    folder = plugin_folder()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "docker-model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(target).resolve())
    click.echo(f"Linked {link} -> {Path(target).resolve()}; try: docker model version")


def plugin_folder():
    """Where the Docker CLI looks for a user's plugins: $DOCKER_CONFIG/cli-plugins, else
    ~/.docker/cli-plugins."""
    from pathlib import Path
    config = os.environ.get("DOCKER_CONFIG")
    return (Path(config) if config else Path.home() / ".docker") / "cli-plugins"


def find_plugin_script():
    """The installed docker-model console script: beside the running interpreter's scripts, or
    on PATH."""
    import shutil
    from pathlib import Path
    for folder in (Path(sys.argv[0]).resolve().parent, Path(sys.executable).parent):
        candidate = folder / "docker-model"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("docker-model")
    return Path(found) if found else None


if __name__ == "__main__":
    main()
