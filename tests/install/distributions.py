"""The repository's distributions, read from their pyproject.toml files, for the install tests.

One place that knows where each distribution's code lives (the core under ``core/``, each plugin
and example beside its ``pyproject.toml``) and what it declares, so the static import check and
the fresh-venv installs walk the same list.
"""

import ast
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def canonical(name):
    """PEP 503 normal form: ``Zope.Event`` and ``zope-event`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Distribution:
    name: str
    root: Path                      # the folder of its pyproject.toml
    packages: list                  # its top-level package folders
    requires: list                  # [Requirement] of [project] dependencies
    extras: dict = field(default_factory=dict)   # {extra: [Requirement]}

    @property
    def declared(self):
        return {canonical(r.name) for r in self.requires}

    def declared_with(self, extra):
        return self.declared | {canonical(r.name) for r in self.extras.get(extra, [])}

    @property
    def declared_anywhere(self):
        return self.declared.union(*({canonical(r.name) for r in reqs}
                                     for reqs in self.extras.values()))


def _read(pyproject):
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    setuptools = data.get("tool", {}).get("setuptools", {})
    where = setuptools.get("packages", {}).get("find", {}).get("where", ["."])
    packages = sorted(p.parent for base in where
                      for p in (pyproject.parent / base).glob("*/__init__.py")
                      if p.parent.name not in ("tests", "build"))
    return Distribution(
        name=project["name"], root=pyproject.parent, packages=packages,
        requires=[Requirement(r) for r in project.get("dependencies", [])],
        extras={k: [Requirement(r) for r in v]
                for k, v in project.get("optional-dependencies", {}).items()})


def distributions():
    """The core, then each plugin, then each example."""
    files = [ROOT / "pyproject.toml", *sorted(ROOT.glob("plugins/*/pyproject.toml")),
             *sorted(ROOT.glob("examples/*/pyproject.toml"))]
    return [_read(f) for f in files]


@dataclass(frozen=True)
class Import:
    module: str       # the top-level name: "falcon" for ``from falcon.testing import x``
    path: Path
    line: int
    lazy: bool        # inside a function: runs only on the path that needs it


def imports(path):
    """Every absolute import in one source file, with whether it sits in a function body."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(a.name.split(".")[0], Path(path), child.lineno, lazy)
                             for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append(Import(child.module.split(".")[0], Path(path), child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


def third_party(found, own=()):
    """The imports that are neither the standard library nor one of ``own`` packages."""
    return [i for i in found if i.module not in sys.stdlib_module_names and i.module not in own
            and i.module != "__future__"]
