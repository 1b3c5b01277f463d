"""The PEP 517 build backend of modelrunner-whisper: setuptools, plus whisper-server in the wheel.

Why: `pip install modelrunner-whisper` must give a working engine with no second step. Before
setuptools builds the wheel (or the editable install), this puts
``modelrunner_whisper/bin/whisper-server`` in the source tree, taken from the cache
(``~/.cache/modelrunner/whisper-server/<key>/``) when a finished build for this machine, CPU and
``CMAKE_ARGS`` is there, else compiled from the whisper.cpp source in the pinned pywhispercpp
sdist (``modelrunner_whisper/build.py``, loaded by path: the package imports modelrunner, which
a build environment does not have). ``pip`` and ``filelock`` (and, without a system one,
``cmake``) are asked for as build requirements only when a compile is due.

When ``MODELRUNNER_WHISPER_SERVER_PATH`` names a binary at build time, nothing is built or
shipped: the engine uses that binary.
"""

import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401 - the rest of the PEP 517 interface, unchanged
    build_sdist,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

SOURCE = Path(__file__).resolve().parent.parent


def _build_module():
    name = "_modelrunner_whisper_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, SOURCE / "modelrunner_whisper" / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _configured_elsewhere(build):
    explicit = build.configured_path()
    return bool(explicit and build._from_setting(explicit))


def _compile_requires():
    build = _build_module()
    if _configured_elsewhere(build) or build.cache_usable(build.cached_binary()):
        return []
    needs = ["pip", "filelock>=3.12"]
    if not shutil.which("cmake"):
        needs.append("cmake>=3.21")
    return needs


def _ship():
    build = _build_module()
    shipped = SOURCE / "modelrunner_whisper" / "bin"
    if _configured_elsewhere(build):
        build._log(f"using the configured {build.configured_path()}; shipping no whisper-server")
        shutil.rmtree(shipped, ignore_errors=True)
        return
    build.ship(shipped)


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + _compile_requires()


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + _compile_requires()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _ship()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _ship()   # the editable install imports the source tree, where bin/ now is
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
