"""The real `docker` client with modelrunner's docker-model plugin, in a throwaway DOCKER_CONFIG.

The plugin executable is a small wrapper that runs ``modelrunner.cli.docker:main`` with this
interpreter and this checkout (what the ``docker-model`` console script does once installed);
``model install-docker-plugin --path`` links it into ``$DOCKER_CONFIG/cli-plugins``, as a user
would. No Docker engine is involved: DOCKER_HOST points at a socket that does not exist.
"""

import os
import shutil
import subprocess
import sys

import pytest

WRAPPER = """#!/bin/sh
PYTHONPATH={pythonpath} exec {python} -c 'import sys; from modelrunner.cli.docker import main; main()' "$@"
"""


class DockerCLI:
    """``run(*args, env=server.env)``: `docker ARGS` with the plugin; ``plugin(*args)``: the
    plugin executable itself, as Compose runs it."""

    def __init__(self, config_dir):
        self.config_dir = config_dir
        self.plugin_path = config_dir / "cli-plugins" / "docker-model"

    def environ(self, env):
        return dict(env, DOCKER_CONFIG=str(self.config_dir), DOCKER_HOST="unix:///nonexistent.sock",
                    DOCKER_CLI_HINTS="false")

    def run(self, *args, env=None, check=True, input=None, timeout=300):
        return self._run(["docker", *args], env, check, input, timeout)

    def plugin(self, *args, env=None, check=True, timeout=300):
        return self._run([str(self.plugin_path), *args], env, check, None, timeout)

    def _run(self, argv, env, check, input, timeout):
        result = subprocess.run(argv, env=self.environ(env or os.environ), capture_output=True,
                                text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): "
                                 f"{result.stderr}{result.stdout}")
        return result


@pytest.fixture(scope="session")
def docker_cli(tmp_path_factory):
    if not shutil.which("docker"):
        pytest.fail("these tests need the docker client binary (no engine): apt-get install "
                    "docker-ce-cli or docker.io", pytrace=False)
    root = tmp_path_factory.mktemp("docker")
    wrapper = root / "bin" / "docker-model"
    wrapper.parent.mkdir()
    wrapper.write_text(WRAPPER.format(pythonpath=_quote(os.environ.get("PYTHONPATH", "")),
                                      python=_quote(sys.executable)))
    wrapper.chmod(0o755)
    config = root / "config"
    subprocess.run([sys.executable, "-m", "modelrunner.cli", "install-docker-plugin", "--path",
                    str(wrapper)], env=dict(os.environ, DOCKER_CONFIG=str(config)), check=True,
                   capture_output=True)
    return DockerCLI(config)


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A real OCI registry on 127.0.0.1 (the OCI plugin's test registry)."""
    from plugins.oci.tests.oci_registry import start_registry, stop_registry
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    stop_registry(server)
