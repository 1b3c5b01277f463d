"""The core's `model` commands: model management and engine control, as `docker model` has them."""

import json
import os
import sys
import time

import click

from .. import reference as refs
from .client import Client, fail
from .bench import bench
from .compose import compose
from .configure import configure
from .docker import install_docker_plugin
from .launch_app import launch
from .run import run
from .search import search
from .show import purge, show
from .tables import print_table, table as _table
from .terminal import echo
from .runner_commands import COMMANDS as RUNNER_COMMANDS
from .telemetry import logs, requests


def _ago(ts):
    if not ts:
        return ""
    delta = max(0, time.time() - ts)
    for unit, seconds in (("year", 31536000), ("month", 2592000), ("day", 86400),
                          ("hour", 3600), ("minute", 60)):
        if delta >= seconds:
            n = int(delta // seconds)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago"


@click.command(name="list")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON")
@click.option("-q", "--quiet", is_flag=True, help="Only model IDs")
@click.option("--openai", is_flag=True, help="The OpenAI model list (GET /engines/v1/models)")
def list_models(model, as_json, quiet, openai):
    """List models in the local store."""
    if openai:
        data = Client().json("GET", "/engines/v1/models")
        if model:
            wanted = refs.display(refs.normalize(model)).split(":")[0]
            data["data"] = [m for m in data["data"]
                            if refs.display(refs.normalize(m["id"])).split(":")[0] == wanted]
        echo(json.dumps(data, indent=2))
        return
    models = Client().json("GET", "/models")
    if model:
        wanted = refs.display(refs.normalize(model)).split(":")[0]
        models = [m for m in models if any(refs.display(t).split(":")[0] == wanted
                                           for t in m["tags"])]
    if as_json:
        echo(json.dumps(models, indent=2))
        return
    if quiet:
        for m in models:
            echo(m["id"].split(":")[1][:12])
        return
    table = _table("MODEL NAME", "PARAMETERS", "QUANTIZATION", "ARCHITECTURE", "MODEL ID",
                   "CREATED", "CONTEXT", "SIZE")
    broken = []
    for m in models:
        c = m.get("config") or {}
        short = m["id"].split(":")[-1][:12]
        for tag in m["tags"] or ["<none>"]:
            name = refs.display(tag) if tag != "<none>" else tag
            if m.get("broken"):
                table.add_row(name, "broken", "", "", short, "", "", "")
                broken.append((name if tag != "<none>" else short, m["broken"]))
                continue
            table.add_row(name, c.get("parameters", ""), c.get("quantization", ""),
                          c.get("architecture", ""), short, _ago(m.get("created")),
                          str(c.get("context_size") or ""), c.get("size", ""))
    print_table(table)
    for name, reason in broken:
        echo(f"{name} is broken: {reason} (`model rm {name}` removes it; pulling it again "
                   f"repairs it)")


@click.command()
@click.argument("model")
@click.option("--openai", is_flag=True, help="The OpenAI model object (/engines/v1/models/MODEL)")
@click.option("-r", "--remote", is_flag=True, help="Inspect the model in its registry")
def inspect(model, openai, remote):
    """Show a model's details as JSON."""
    if openai:
        path, params = f"/engines/v1/models/{model}", None
    else:
        path, params = f"/models/{model}", ({"remote": "true"} if remote else None)
    echo(json.dumps(Client().json("GET", path, params=params), indent=2))


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove all tags of the model")
def rm(models, force):
    """Remove models (a tag of a multi-tag model is only untagged)."""
    client = Client()
    for model in models:
        for line in client.json("DELETE", f"/models/{model}", params={"force": str(force).lower()}):
            for verb, value in line.items():
                echo(f"{verb}: {refs.display(value) if verb == 'Untagged' else value}")


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source, target):
    """Give a model another name."""
    ref = refs.parse(target)
    data = Client().json("POST", f"/models/{source}/tag",
                         params={"repo": ref.name, "tag": ref.tag or "latest"})
    echo(f"Model {source} tagged successfully with {refs.display(data['target'])}")


@click.command()
@click.argument("model")
def pull(model):
    """Pull a model from a registry or Hugging Face."""
    pull_model(model)


def pull_model(model):
    """Pull ``model`` through the server, drawing progress bars; exits 1 on failure."""
    body = {"from": model}
    if refs.parse(model).is_huggingface and os.environ.get("HF_TOKEN"):
        body["bearer-token"] = os.environ["HF_TOKEN"]
    with Client(autostart=True).stream("POST", "/models/create", json=body,
                         headers={"Accept": "application/json"}) as resp:
        _show_progress(resp.iter_lines())


@click.command()
@click.argument("model")
def push(model):
    """Push a model to its registry."""
    body = {}
    if refs.parse(model).is_huggingface and os.environ.get("HF_TOKEN"):
        body["bearer-token"] = os.environ["HF_TOKEN"]
    with Client().stream("POST", f"/models/{model}/push", json=body,
                         headers={"Accept": "application/json"}) as resp:
        _show_progress(resp.iter_lines())


@click.command()
@click.argument("name")
@click.option("--gguf", type=click.Path(exists=True, dir_okay=False), help="GGUF file (first shard)")
@click.option("--safetensors-dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dduf", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", metavar="NAME",
              help="A format a plugin's engine serves: package the --file(s) as they are, "
                   "with config format NAME")
@click.option("--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A file of a --format model (repeat for several)")
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE",
              help="A --format model's config entry (VALUE is JSON if it parses, else text)")
@click.option("-l", "--license", "licenses", multiple=True, type=click.Path(exists=True))
@click.option("--chat-template", type=click.Path(exists=True, dir_okay=False))
@click.option("--mmproj", type=click.Path(exists=True, dir_okay=False))
@click.option("--context-size", type=click.IntRange(min=1))
@click.option("--from", "source", metavar="MODEL",
              help="Start from a stored model: a new context size or chat template, same weights")
@click.option("--push", "push_after", is_flag=True, help="Push to the registry afterwards")
def package(name, gguf, safetensors_dir, dduf, fmt, files, config_items, licenses, chat_template,
            mmproj, context_size, source, push_after):
    """Package model files as an OCI artifact and load it into the store as NAME.

    A format a plugin adds: --format NAME --file F [--file G] [--config KEY=VALUE]."""
    if source:
        repackage(source, name, context_size, chat_template,
                  others=gguf or safetensors_dir or dduf or fmt or files or config_items
                  or licenses or mmproj)
        if push_after:
            push.callback(name)
        return
    from .. import packaging
    try:
        refs.parse(name)
        if sum(bool(x) for x in (gguf, safetensors_dir, dduf, fmt)) != 1:
            fail("give exactly one of --gguf, --safetensors-dir, --dduf, --format")
        if (files or config_items) and not fmt:
            fail("--file and --config go with --format")
        if fmt:
            if chat_template or mmproj:
                fail("--chat-template and --mmproj go with --gguf; a --format model takes them "
                     "as --file")
            config = packaging.parse_config_items(config_items)
            if context_size is not None:
                config["context_size"] = context_size
            artifact = packaging.build_format_artifact(fmt, files, config=config,
                                                       licenses=licenses)
        elif gguf:
            artifact = packaging.build_gguf_artifact(gguf, licenses=licenses,
                                                     chat_template=chat_template, mmproj=mmproj,
                                                     context_size=context_size)
        elif safetensors_dir:
            artifact = packaging.build_safetensors_artifact(safetensors_dir)
        else:
            artifact = packaging.build_dduf_artifact(dduf)
    except (packaging.PackagingError, refs.InvalidReference, OSError) as e:
        fail(str(e))
    read_fd, write_fd = os.pipe()

    def produce():
        with os.fdopen(write_fd, "wb") as out:
            try:
                packaging.write_model_tar(artifact, out)
            except BrokenPipeError:
                pass

    import threading
    threading.Thread(target=produce, daemon=True).start()
    client = Client(autostart=True)
    with os.fdopen(read_fd, "rb") as tar:
        data = client.json("POST", "/models/load", params={"tag": name},
                             content=iter(lambda: tar.read(1 << 20), b""),
                             headers={"Content-Type": "application/x-tar"})
    echo(f"Model packaged as {refs.display(refs.normalize(name))} "
               f"({data['id'].split(':')[1][:12]})")
    if fmt:
        _note_unserved_format(client, fmt)
    if push_after:
        push.callback(name)


def _note_unserved_format(client, fmt):
    """Say so when no engine of the server serves a --format model's format (a typo, or a plugin
    not installed here): the model is stored all the same, as DMR stores what it cannot run."""
    resp = client.send("GET", "/engines/options")
    if resp.status_code != 200:
        return
    if not any(fmt in (engine.get("formats") or ()) for engine in (resp.json() or {}).values()):
        echo(f"Note: no engine installed on the server serves {fmt} models; a plugin "
             f"whose engine declares the format {fmt!r} runs it", err=True)


def repackage(source, name, context_size, chat_template, others=None):
    """`package --from SOURCE`: POST /models/{SOURCE}/repackage; the server reuses the weights."""
    if others:
        fail("--from takes only --context-size and --chat-template (and --push): the weights "
             "come from the model")
    if context_size is None and chat_template is None:
        fail("--from needs --context-size and/or --chat-template")
    body = {"target": name}
    if context_size is not None:
        body["context_size"] = context_size
    if chat_template is not None:
        try:
            with open(chat_template, encoding="utf-8") as f:
                body["chat_template"] = f.read()
        except (OSError, UnicodeDecodeError) as e:
            fail(f"cannot read the chat template {chat_template}: {e}")
    data = Client().json("POST", f"/models/{source}/repackage", json=body)
    echo(f"Model packaged as {refs.display(data['target'])} "
               f"({data['id'].split(':')[1][:12]}) from {source}")


def _show_progress(lines):
    from .progress import show_progress  # rich: only pull and push draw bars
    show_progress(lines)


@click.command()
@click.option("--caches", is_flag=True,
              help="Also remove the saved prompt caches (a returning conversation then pays its "
                   "whole prompt again)")
def prune(caches):
    """Remove what no model needs: unreferenced blobs, partial downloads, leftovers of crashes."""
    from ..packaging.units import format_size as human_size
    data = Client().json("POST", "/models/prune", json={"caches": True} if caches else None)
    parts = [f"{data[k]} {label}" for k, label in (
        ("blobs", "unreferenced blob(s)"), ("incomplete", "partial download(s)"),
        ("manifests", "orphan manifest(s)"), ("bundles", "stale bundle(s)"),
        ("temporary", "temporary file(s)"), ("prompt_caches", "saved prompt cache(s)"))
        if data.get(k)]
    echo(f"Removed {', '.join(parts) if parts else 'nothing'}; freed "
               f"{human_size(data.get('bytes', 0))}")


@click.command()
@click.option("--repair", is_flag=True, help="Remove what is corrupt (a model that loses a blob "
                                             "stays, listed as broken, until a pull repairs it)")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON report")
def fsck(repair, as_json):
    """Check the store: re-hash blobs, check manifests, configs, the index and bundles."""
    from ..packaging.units import format_size as human_size
    data = Client().json("POST", "/models/fsck", json={"repair": repair})
    if as_json:
        echo(json.dumps(data, indent=2))
    else:
        for p in data["problems"]:
            done = p.get("repaired")
            suffix = f" [{done}]" if done else (" [not repaired]" if data["repair"] else "")
            echo(f"{p['what']}: {p['problem']}{suffix}")
        checked = data["checked"]
        garbage = f"; {len(data['garbage'])} item(s) of garbage (model prune removes them)" \
            if data["garbage"] else ""
        echo(f"Checked {checked['models']} model(s), {checked['blobs']} blob(s) "
                   f"({human_size(checked['bytes'])}), {checked['manifests']} manifest(s), "
                   f"{checked['bundles']} bundle(s) in {data['seconds']:.1f}s: "
                   f"{len(data['problems'])} problem(s){garbage}")
    if not data["ok"]:
        sys.exit(1)


@click.command()
def df():
    """Disk used by models."""
    from ..packaging.units import format_size as human_size
    data = Client().json("GET", "/engines/df")
    table = _table("TYPE", "SIZE")
    table.add_row("Models", human_size(data["models_disk_usage"]))
    table.add_row("Inference engine", human_size(data["default_backend_disk_usage"]))
    if "prompt_cache_disk_usage" in data:  # modelrunner's cache area (DMR has none)
        budget = data.get("prompt_cache_budget")
        table.add_row("Prompt caches", human_size(data["prompt_cache_disk_usage"])
                      + (f" (budget {human_size(budget)})" if budget else " (off)"))
    print_table(table)


# What DMR's `status --json` calls a runner reached at an address (MODEL_RUNNER_HOST), as
# modelrunner always is: docker/model-runner types.ModelRunnerEngineKindMobyManual.
ENGINE_KIND = "Docker Engine (Manual Install)"


def openai_endpoint(base_url):
    """The OpenAI-compatible base URL DMR's `status --json` reports for a runner at an address
    (``<base>/v1/``); Compose injects it into services as <MODEL>_URL."""
    return base_url.rstrip("/") + "/v1/"


def describe_build(info):
    """One line for an engine's build (Engine.build_info): version, GPU backend, CPU features."""
    parts = [str(info["version"])] if info.get("version") else []
    if info.get("gpu"):
        parts.append(f"GPU: {info['gpu']}")
    if "cpu_features" in info:
        parts.append(f"CPU: {' '.join(info['cpu_features']) or 'unknown'}")
    parts += [f"{key}: {value}" for key, value in info.items()
              if key not in ("version", "gpu", "cpu_features", "path") and isinstance(value, str)
              and value]
    return ", ".join(parts)


def _builds(client):
    """GET /engines/builds, or {} (a server without it, or a key that may not ask)."""
    from .http import HTTPError
    try:
        resp = client.http.get("/engines/builds")
        return resp.json() if resp.status_code < 400 else {}
    except (HTTPError, ValueError):
        return {}


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="DMR's JSON: running, backends, kind, endpoint, endpointHost; and builds "
                   "(modelrunner's: each engine's version, GPU backend, CPU features)")
def status(as_json):
    """Whether the server runs, each engine's state, and which build of each runs."""
    from .http import HTTPError
    client = Client()
    try:
        resp = client.http.get("/engines/status")
        data = resp.json() if resp.status_code < 400 else {}
        running = resp.status_code < 400
    except (HTTPError, ValueError):
        data, running = {}, False
    builds = _builds(client) if running else {}
    if as_json:
        endpoint = openai_endpoint(client.base_url)
        echo(json.dumps({"running": running, "backends": data, "kind": ENGINE_KIND,
                               "endpoint": endpoint, "endpointHost": endpoint,
                               "builds": builds}))
        if not running:
            sys.exit(1)
        return
    if not running:
        fail(f"modelrunner is not running at {client.base_url} (start it with: model serve)")
    echo(f"modelrunner is running at {client.base_url}")
    table = _table("BACKEND", "STATUS", "DETAILS")
    for name, text in data.items():
        state, _, details = text.partition(": ")
        table.add_row(name, state, details)
    print_table(table)
    for name, info in builds.items():
        echo(f"{name} build: {describe_build(info)}")


@click.command()
def version():
    """Client and server versions."""
    from .. import __version__
    echo(f"Client: modelrunner {__version__}")
    echo(f"Server: modelrunner {Client().json('GET', '/version')['version']}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json):
    """Installed plugins, their versions and hooks."""
    data = Client().json("GET", "/plugins")
    if as_json:
        echo(json.dumps(data, indent=2))
        return
    table = _table("PLUGIN", "VERSION", "HOOKS")
    for p in data:
        name = p["name"] + (" (default)" if p["default"] else "")
        hooks = ", ".join(p["hooks"]) if not p.get("error") else f"failed to load: {p['error']}"
        table.add_row(name, p["version"] or "", hooks)
    print_table(table)


@click.command()
def ps():
    """Models loaded now, with the context each got and why."""
    rows = Client().json("GET", "/engines/ps")
    # runners placed on other machines (a placement plugin) say where; DMR's columns otherwise
    nodes = any(r.get("node") for r in rows)
    table = _table("MODEL NAME", "BACKEND", "MODE", "UNTIL", "CONTEXT", *(["NODE"] if nodes else []))
    for r in rows:
        if r["loading"]:
            until = "Loading..."
        elif r["in_use"]:
            until = "In use"
        elif r["keep_alive"] is None or r["keep_alive"] < 0:
            until = "Forever"
        else:
            left = max(0, r["last_used"] + r["keep_alive"] - time.time())
            until = f"{int(left // 60)} minutes from now" if left >= 60 else f"{int(left)} seconds from now"
        context = str(r.get("context_size") or "")
        if context and r.get("context_reason"):
            context += f" ({r['context_reason']})"
        table.add_row(refs.display(r["model_name"]), r["backend_name"], r["mode"], until, context,
                      *([r.get("node") or "local"] if nodes else []))
    print_table(table)
    for r in rows:  # what the engine says besides (runner_details): e.g. its chat template, why
        for name, text in (r.get("details") or {}).items():
            echo(f"{refs.display(r['model_name'])}: {str(name).replace('_', ' ')}: {text}")


@click.command()
@click.argument("models", nargs=-1)
@click.option("--all", "everything", is_flag=True)
@click.option("--backend")
def unload(models, everything, backend):
    """Unload models from memory."""
    if not models and not everything and not backend:
        fail("name models to unload, or use --all")
    data = Client().json("POST", "/engines/unload",
                         json={"models": list(models), "all": everything, "backend": backend})
    echo(f"Unloaded {data['unloaded_runners']} model(s)")


@click.command()
@click.option("--host", help="Address to bind (default: settings host, 127.0.0.1)")
@click.option("--port", type=int, help="Port (default: settings port, 12434)")
@click.option("-w", "--workers", type=int, help="gunicorn worker processes")
@click.option("-d", "--detach", is_flag=True, help="Run in the background; return once it answers "
                                                   "(`model stop-runner` stops it)")
@click.option("--tls", is_flag=True,
              help="Serve https: with tls_cert/tls_key (MODEL_RUNNER_TLS_CERT/_KEY), else a "
                   "self-signed certificate made in <models_path>/tls/")
def serve(host, port, workers, detach, tls):
    """Serve the API with gunicorn and gevent workers."""
    from .launch import LaunchError, gunicorn_argv, new_spec, start
    if not detach:
        from ..settings import load_settings
        settings = load_settings()
        argv, _ = gunicorn_argv(settings, host or settings.host, port or settings.port, workers,
                                tls)
        os.execv(sys.executable, argv)
    spec = new_spec(host=host, port=port, workers=workers, tls=tls)
    try:
        pid = start(spec, timeout=30)
    except LaunchError as e:
        fail(str(e))
    if pid is None:
        fail(f"modelrunner is already running at {spec['url']}")
    echo(f"modelrunner is serving at {spec['url']} (pid {pid}, logs in {spec['log']})")


COMMANDS = [list_models, inspect, rm, tag, pull, push, package, df, prune, fsck, status, version,
            plugins, ps, unload, configure, serve]


def core_commands():
    """{name: command} for every core command (`ls` is `list` under a second name)."""
    commands = {command.name: command for command in COMMANDS}
    commands["ls"] = list_models
    commands["logs"] = logs
    commands["requests"] = requests
    commands["install-docker-plugin"] = install_docker_plugin
    commands["compose"] = compose
    commands["show"] = show
    commands["bench"] = bench
    commands["purge"] = purge
    commands["search"] = search
    commands["run"] = run
    commands["launch"] = launch       # DMR: `docker model launch`, Ollama: `ollama launch`
    commands["stop"] = unload         # DMR: `unload`/`stop`
    commands["config"] = configure    # DMR: `configure`/`config`
    commands.update(RUNNER_COMMANDS)  # start-runner, stop-runner, restart-runner
    return commands
