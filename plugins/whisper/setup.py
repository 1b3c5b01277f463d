"""The wheel carries a native program (whisper-server), so it is tagged for this platform
(py3-none-<platform>): pip must not install a Linux x86-64 binary on another machine.
Everything else is in pyproject.toml; build_backend/ puts the binary in place."""

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True   # a platform wheel, installed as one


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        _, _, platform_tag = super().get_tag()
        return "py3", "none", platform_tag   # any Python 3: the binary does not load Python


setup(distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
