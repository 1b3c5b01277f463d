"""The plugin platform holds: one public API, every hook documented and tested, a core that names
no plugin, and hooks that work for a plugin registered in-process."""

import ast
import re
from pathlib import Path

import falcon
import falcon.testing
import pytest

import modelrunner
from modelrunner import hookimpl, hookspecs
from modelrunner.app import create_app
from modelrunner.runtime import Runtime
from modelrunner.settings import load_settings
from modelrunner.store import FilesystemStore

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name in dir(hookspecs)
               if hasattr(getattr(hookspecs, name), "modelrunner_spec"))
PLUGIN_SOURCES = [p for p in (ROOT / "plugins").glob("*/modelrunner_*/**/*.py")] + \
    [p for p in (ROOT / "examples").glob("*/modelrunner_*/**/*.py")]
PLUGIN_TESTS = [p for p in (ROOT / "plugins").glob("*/tests/**/*.py")] + \
    [p for p in (ROOT / "examples").glob("*/tests/**/*.py")]


def test_the_contract_has_the_hooks_we_document():
    assert {"make_store", "register_engines", "register_sources", "register_routes",
            "register_dialects", "register_commands", "on_request", "on_runner", "on_pull",
            "on_server_start", "on_worker_exit"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_the_plugin_guide(hook):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert f"### `{hook}`" in guide, f"docs/plugins.md has no section for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    """A test somewhere implements or calls the hook (naming it, as the lists here do, does
    not count)."""
    sources = list(ROOT.glob("tests/**/test_*.py"))
    sources += list(ROOT.glob("plugins/*/tests/test_*.py")) + list(ROOT.glob("examples/*/tests/test_*.py"))
    pattern = re.compile(rf"\bdef {hook}\(|\.{hook}\(")
    assert any(pattern.search(p.read_text()) for p in sources), f"no test exercises {hook}"


def _core_imports(path):
    """(line, module, names) of every import of modelrunner's core in a file, and (line,
    "modelrunner", [attr]) of every ``modelrunner.attr`` read after ``import modelrunner``."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "modelrunner" or alias.name.startswith("modelrunner."):
                    yield node.lineno, alias.name, []
                    if alias.name == "modelrunner":
                        aliases.add(alias.asname or "modelrunner")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "modelrunner" or node.module.startswith("modelrunner.")):
            yield node.lineno, node.module, [a.name for a in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases:
            yield node.lineno, "modelrunner", [node.attr]


def _imports_past_the_sdk(paths, testing=False):
    """What the files import of the core beyond ``modelrunner.__all__`` (and, for tests,
    ``modelrunner.testing.__all__``)."""
    import modelrunner.testing
    public = {"modelrunner": set(modelrunner.__all__)}
    if testing:
        public["modelrunner.testing"] = set(modelrunner.testing.__all__)
    wrong = []
    for path in paths:
        for line, module, names in _core_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module not in public:
                wrong.append(f"{where} imports {module}")
                continue
            wrong += [f"{where} imports {n}, not in {module}.__all__"
                      for n in names if n not in public[module]]
    return wrong


def test_plugins_and_examples_import_only_the_public_api():
    assert PLUGIN_SOURCES
    wrong = _imports_past_the_sdk(PLUGIN_SOURCES)
    assert not wrong, "\n".join(wrong)


def test_plugin_tests_import_only_the_sdk_and_modelrunner_testing():
    """A plugin's tests need nothing the SDK and its test kit do not give (issue 27): what
    they reach for past them, modelrunner.testing gives them (its harness.py)."""
    assert PLUGIN_TESTS
    wrong = _imports_past_the_sdk(PLUGIN_TESTS, testing=True)
    assert not wrong, "\n".join(wrong)


def test_the_sdk_holds_only_what_plugins_use():
    """Every public name is used by a plugin or an example (their code or tests), or is the
    contract of a hook no installed plugin implements (a store, a runtime's type)."""
    contract = {"__version__", "Store", "Runtime"}
    used = set()
    for path in PLUGIN_SOURCES + PLUGIN_TESTS:
        for _, module, names in _core_imports(path):
            if module == "modelrunner":
                used.update(names)
    unused = set(modelrunner.__all__) - used - contract
    assert not unused, f"no plugin uses {sorted(unused)}: keep them in their core module"
    assert len(modelrunner.__all__) <= 48, "the SDK is growing: group a family in a namespace"


def test_a_family_is_one_name_whose_members_load_on_use():
    assert modelrunner.media_types.GGUF == "application/vnd.docker.ai.gguf.v3"
    assert "parse" in dir(modelrunner.references)
    assert str(modelrunner.references.parse("smollm2")) == "docker.io/ai/smollm2:latest"
    with pytest.raises(AttributeError):
        modelrunner.media_types.NOT_A_TYPE
    with pytest.raises(AttributeError):
        modelrunner.media_types.GGUF = "x"


def test_the_sdk_reference_lists_exactly_the_public_names():
    """docs/plugins.md's reference table and ``modelrunner.__all__`` cannot drift apart: a row
    per name, and a family's row names each of its members."""
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split("\n## The SDK reference\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([^`]+)` \|(.*)$", section, re.M))
    listed = re.findall(r"^\| `([^`]+)` \|", section, re.M)
    assert len(listed) == len(set(listed)), "a name has two rows"
    assert sorted(listed) == sorted(modelrunner.__all__)
    for name, (_, members) in modelrunner._NAMESPACES.items():
        missing = [m for m in members if f"`{m}`" not in rows[name]]
        assert not missing, f"the row of {name} does not name {missing}"


def test_the_testing_extra_holds_what_modelrunner_testing_imports():
    """``pip install modelrunner[testing]`` is enough for modelrunner.testing: every module it
    imports is the standard library's, the core's, or a dependency of the core or the extra."""
    import sys
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]
    declared = {re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].lower().replace("-", "_")
                for req in project["dependencies"] + extra["testing"]}
    assert "modelrunner[testing]" in extra["test"], "the test extra includes testing"
    imported = set()
    for path in (ROOT / "core" / "modelrunner" / "testing").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - declared - {"modelrunner"}
    assert not outside, f"modelrunner.testing imports {sorted(outside)}, not in [testing]"


def test_every_public_name_resolves():
    for name in modelrunner.__all__:
        assert getattr(modelrunner, name) is not None, name


def test_importing_modelrunner_loads_nothing_heavy():
    import subprocess
    import sys
    code = ("import sys, modelrunner; "
            "print(sorted(m for m in ('falcon', 'dynaconf', 'gevent', 'httpx', 'gguf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_core_names_no_plugin():
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
    names = [f"modelrunner_{p}" for p in plugins] + [f"modelrunner-{p}" for p in plugins]
    found = []
    for path in (ROOT / "core" / "modelrunner").rglob("*.py"):
        if "testing" in path.parts:
            continue
        text = path.read_text()
        found += [f"{path.relative_to(ROOT)} names {n}" for n in names if n in text]
    # the CLI learns engines and sources from the server or the installed plugins: none of their
    # names is a string of its code (docstrings may tell a story with them)
    engines_and_sources = _engine_and_source_names()
    assert {"llama.cpp", "vllm", "diffusers", "huggingface", "dockerhub"} <= engines_and_sources
    word = re.compile(r"(?<![\w.-])(?:" + "|".join(
        re.escape(n) for n in sorted(engines_and_sources, key=len, reverse=True)) + r")(?![\w-])",
        re.IGNORECASE)
    for path in sorted((ROOT / "core" / "modelrunner" / "cli").rglob("*.py")):
        found += [f"{path.relative_to(ROOT)}:{line} names {match.group(0)!r} in {text!r}"
                  for line, text in _string_literals(path) for match in word.finditer(text)]
    assert not found, "\n".join(found)


def _engine_and_source_names():
    """What users call the plugins' engines and sources: each Engine and Source class's ``name``
    and ``search_key``, and the folder of the plugin that holds it."""
    names = set()
    for path in PLUGIN_SOURCES:
        for cls in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(cls, ast.ClassDef) or not any(
                    getattr(base, "id", getattr(base, "attr", None)) in ("Engine", "Source")
                    for base in cls.bases):
                continue
            names.add(path.relative_to(ROOT).parts[1])
            names.update(node.value.value for node in cls.body
                         if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                         and isinstance(node.value.value, str) and node.value.value
                         and any(getattr(t, "id", None) in ("name", "search_key")
                                 for t in node.targets))
    return names


def _string_literals(path):
    """(line, text) of every string constant in a module but its docstrings (f-strings' parts
    included)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


# -- hooks, with plugins registered in-process ----------------------------------------------------


@pytest.fixture
def settings(tmp_path):
    return load_settings(models_path=str(tmp_path / "models"))


class MarkedStore(FilesystemStore):
    """The filesystem store under another name, as a plugin's store would be."""


def test_a_plugin_store_replaces_the_default_store(plugin_manager, settings):
    class StorePlugin:
        @hookimpl
        def make_store(self, settings):
            return MarkedStore(settings.models_path)

    plugin_manager.register(StorePlugin(), name="marked-store")
    runtime = Runtime(settings, plugin_manager)
    assert isinstance(runtime.store, MarkedStore)


class Teapot:
    max_body = 8
    dialect = "tea"

    def on_post(self, req, resp):
        raise modelrunner.ModelRunnerError("I am a teapot", status=418)


class Tea(modelrunner.Dialect):
    name = "tea"

    def error_body(self, error):
        return modelrunner.model_files.canonical_json(
            {"tea_error": {"status": error.status, "message": str(error), "kind": error.kind}})


class TeapotDialect:
    @hookimpl
    def register_routes(self, app, runtime):
        app.add_route("/tea/pot", Teapot())

    @hookimpl
    def register_dialects(self, register):
        register(Tea())


def test_a_dialect_shapes_the_errors_of_its_own_routes(plugin_manager, settings):
    plugin_manager.register(TeapotDialect(), name="teapot")
    # a local client, as the trust boundary wants: loopback Host, JSON bodies
    client = falcon.testing.TestClient(create_app(runtime=Runtime(settings, plugin_manager)),
                                       headers={"Host": "127.0.0.1",
                                                "Content-Type": "application/json"})

    raised = client.simulate_post("/tea/pot", body=b"{}")
    assert raised.status_code == 418
    assert raised.json == {"tea_error": {"status": 418, "message": "I am a teapot",
                                         "kind": "server_error"}}
    too_big = client.simulate_post("/tea/pot", body=b"x" * 9)  # the resource's own body limit
    assert too_big.status_code == 413 and "tea_error" in too_big.json
    # refused before routing (a page on another origin): still the route's dialect
    foreign = client.simulate_post("/tea/pot", body=b"{}",
                                   headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "tea_error" in foreign.json
    wrong_method = client.simulate_get("/tea/pot")
    assert wrong_method.status_code == 405 and "tea_error" in wrong_method.json
    # a core route keeps DMR's plain text
    missing = client.simulate_get("/models/ai/nothing-here")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/plain")


def test_an_engine_gets_the_settings_and_the_core_enforces_its_modes_and_flags(
        plugin_manager, settings, bundle):
    class Echo(modelrunner.Engine):
        name, formats, modes = "echo", ("gguf",), ("completion",)
        runtime_flags = frozenset({"--seed"})

        def command(self, bundle, config, address):
            return modelrunner.RunnerCommand(["echo", address, *config.runtime_flags])

    class EchoPlugin:
        @hookimpl
        def register_engines(self, register, settings):
            register(Echo(settings))

    plugin_manager.register(EchoPlugin(), name="echo")
    runtime = Runtime(settings, plugin_manager)
    engine = runtime.engines["echo"]
    assert engine.settings is settings
    config = modelrunner.RunnerConfig(runtime_flags=["--seed", "-1"])
    assert engine.runner_command(bundle, config, "unix:///r.sock").argv == \
        ["echo", "unix:///r.sock", "--seed", "-1"]
    for bad in (modelrunner.RunnerConfig(mode="embedding"),
                modelrunner.RunnerConfig(runtime_flags=["--model", "x"]),
                modelrunner.RunnerConfig(runtime_flags=["--seed=/etc/passwd"])):
        with pytest.raises(modelrunner.EngineError) as err:
            engine.runner_command(bundle, bad, "unix:///r.sock")
        assert err.value.status == 400
