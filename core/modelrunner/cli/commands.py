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
from .docker import install_docker_plugin
from .show import purge, show
from .tables import print_table, table as _table
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
        click.echo(json.dumps(data, indent=2))
        return
    models = Client().json("GET", "/models")
    if model:
        wanted = refs.display(refs.normalize(model)).split(":")[0]
        models = [m for m in models if any(refs.display(t).split(":")[0] == wanted
                                           for t in m["tags"])]
    if as_json:
        click.echo(json.dumps(models, indent=2))
        return
    if quiet:
        for m in models:
            click.echo(m["id"].split(":")[1][:12])
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
        click.echo(f"{name} is broken: {reason} (`model rm {name}` removes it; pulling it again "
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
    click.echo(json.dumps(Client().json("GET", path, params=params), indent=2))


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove all tags of the model")
def rm(models, force):
    """Remove models (a tag of a multi-tag model is only untagged)."""
    client = Client()
    for model in models:
        for line in client.json("DELETE", f"/models/{model}", params={"force": str(force).lower()}):
            for verb, value in line.items():
                click.echo(f"{verb}: {refs.display(value) if verb == 'Untagged' else value}")


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source, target):
    """Give a model another name."""
    ref = refs.parse(target)
    data = Client().json("POST", f"/models/{source}/tag",
                         params={"repo": ref.name, "tag": ref.tag or "latest"})
    click.echo(f"Model {source} tagged successfully with {refs.display(data['target'])}")


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
    with Client().stream("POST", "/models/create", json=body,
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
@click.option("-l", "--license", "licenses", multiple=True, type=click.Path(exists=True))
@click.option("--chat-template", type=click.Path(exists=True, dir_okay=False))
@click.option("--mmproj", type=click.Path(exists=True, dir_okay=False))
@click.option("--context-size", type=click.IntRange(min=1))
@click.option("--push", "push_after", is_flag=True, help="Push to the registry afterwards")
def package(name, gguf, safetensors_dir, dduf, licenses, chat_template, mmproj, context_size,
            push_after):
    """Package model files as an OCI artifact and load it into the store as NAME."""
    from .. import packaging
    try:
        refs.parse(name)
        if sum(bool(x) for x in (gguf, safetensors_dir, dduf)) != 1:
            fail("give exactly one of --gguf, --safetensors-dir, --dduf")
        if gguf:
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
    with os.fdopen(read_fd, "rb") as tar:
        data = Client().json("POST", "/models/load", params={"tag": name},
                             content=iter(lambda: tar.read(1 << 20), b""),
                             headers={"Content-Type": "application/x-tar"})
    click.echo(f"Model packaged as {refs.display(refs.normalize(name))} "
               f"({data['id'].split(':')[1][:12]})")
    if push_after:
        push.callback(name)


def _show_progress(lines):
    from .progress import show_progress  # rich: only pull and push draw bars
    show_progress(lines)


@click.command()
def prune():
    """Remove what no model needs: unreferenced blobs, partial downloads, leftovers of crashes."""
    from ..packaging.units import format_size as human_size
    data = Client().json("POST", "/models/prune")
    parts = [f"{data[k]} {label}" for k, label in (
        ("blobs", "unreferenced blob(s)"), ("incomplete", "partial download(s)"),
        ("manifests", "orphan manifest(s)"), ("bundles", "stale bundle(s)"),
        ("temporary", "temporary file(s)")) if data.get(k)]
    click.echo(f"Removed {', '.join(parts) if parts else 'nothing'}; freed "
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
        click.echo(json.dumps(data, indent=2))
    else:
        for p in data["problems"]:
            done = p.get("repaired")
            suffix = f" [{done}]" if done else (" [not repaired]" if data["repair"] else "")
            click.echo(f"{p['what']}: {p['problem']}{suffix}")
        checked = data["checked"]
        garbage = f"; {len(data['garbage'])} item(s) of garbage (model prune removes them)" \
            if data["garbage"] else ""
        click.echo(f"Checked {checked['models']} model(s), {checked['blobs']} blob(s) "
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
    print_table(table)


# What DMR's `status --json` calls a runner reached at an address (MODEL_RUNNER_HOST), as
# modelrunner always is: docker/model-runner types.ModelRunnerEngineKindMobyManual.
ENGINE_KIND = "Docker Engine (Manual Install)"


def openai_endpoint(base_url):
    """The OpenAI-compatible base URL DMR's `status --json` reports for a runner at an address
    (``<base>/v1/``); Compose injects it into services as <MODEL>_URL."""
    return base_url.rstrip("/") + "/v1/"


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="DMR's JSON: running, backends, kind, endpoint, endpointHost")
def status(as_json):
    """Whether the server runs, and each engine's state."""
    from .http import HTTPError
    client = Client()
    try:
        resp = client.http.get("/engines/status")
        data = resp.json() if resp.status_code < 400 else {}
        running = resp.status_code < 400
    except (HTTPError, ValueError):
        data, running = {}, False
    if as_json:
        endpoint = openai_endpoint(client.base_url)
        click.echo(json.dumps({"running": running, "backends": data, "kind": ENGINE_KIND,
                               "endpoint": endpoint, "endpointHost": endpoint}))
        if not running:
            sys.exit(1)
        return
    if not running:
        fail(f"modelrunner is not running at {client.base_url} (start it with: model serve)")
    click.echo(f"modelrunner is running at {client.base_url}")
    table = _table("BACKEND", "STATUS", "DETAILS")
    for name, text in data.items():
        state, _, details = text.partition(": ")
        table.add_row(name, state, details)
    print_table(table)


@click.command()
def version():
    """Client and server versions."""
    from .. import __version__
    click.echo(f"Client: modelrunner {__version__}")
    click.echo(f"Server: modelrunner {Client().json('GET', '/version')['version']}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json):
    """Installed plugins, their versions and hooks."""
    data = Client().json("GET", "/plugins")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = _table("PLUGIN", "VERSION", "HOOKS")
    for p in data:
        name = p["name"] + (" (default)" if p["default"] else "")
        hooks = ", ".join(p["hooks"]) if not p.get("error") else f"failed to load: {p['error']}"
        table.add_row(name, p["version"] or "", hooks)
    print_table(table)


@click.command()
def ps():
    """Models loaded now."""
    rows = Client().json("GET", "/engines/ps")
    # runners placed on other machines (a placement plugin) say where; DMR's columns otherwise
    nodes = any(r.get("node") for r in rows)
    table = _table("MODEL NAME", "BACKEND", "MODE", "UNTIL", *(["NODE"] if nodes else []))
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
        table.add_row(refs.display(r["model_name"]), r["backend_name"], r["mode"], until,
                      *([r.get("node") or "local"] if nodes else []))
    print_table(table)


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
    click.echo(f"Unloaded {data['unloaded_runners']} model(s)")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.argument("flags", nargs=-1, type=click.UNPROCESSED)
@click.option("--context-size", type=int)
@click.option("--keep-alive")
@click.option("--mode", type=click.Choice(["completion", "embedding", "reranking", "image-generation"]))
@click.option("--backend")
def configure(model, flags, context_size, keep_alive, mode, backend):
    """Set a model's context size, runtime flags (after --) and keep-alive; persisted."""
    if model == "show":
        click.echo(json.dumps(Client().json("GET", "/engines/_configure",
                                            params={"model": flags[0]} if flags else None), indent=2))
        return
    body = {"model": model, "mode": mode or "completion"}
    if context_size is not None:
        body["context-size"] = context_size
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if flags:
        body["runtime-flags"] = list(flags)
    path = f"/engines/{backend}/_configure" if backend else "/engines/_configure"
    data = Client().json("POST", path, json=body)
    click.echo(f"Configured {refs.display(data['Model'])} ({data['Backend']}, {data['Mode']}): "
               f"{json.dumps(data['Config'])}")


@click.command()
@click.option("--host", help="Address to bind (default: settings host, 127.0.0.1)")
@click.option("--port", type=int, help="Port (default: settings port, 12434)")
@click.option("-w", "--workers", type=int, help="gunicorn worker processes")
@click.option("-d", "--detach", is_flag=True, help="Run in the background; return once it answers")
@click.option("--tls", is_flag=True,
              help="Serve https: with tls_cert/tls_key (MODEL_RUNNER_TLS_CERT/_KEY), else a "
                   "self-signed certificate made in <models_path>/tls/")
def serve(host, port, workers, detach, tls):
    """Serve the API with gunicorn and gevent workers."""
    from pathlib import Path

    from ..settings import load_settings
    settings = load_settings()
    host = host or settings.host
    bind = f"{host}:{port or settings.port}"
    conf = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    cert = str(settings.get("tls_cert") or "")
    if tls and not cert:
        from ..tls import self_signed
        hosts = [host, *(settings.get("allowed_hosts") or [])]
        cert, key = map(str, self_signed(Path(settings.models_path) / "tls", hosts))
        argv += ["--certfile", cert, "--keyfile", key]
    argv.append("modelrunner.app:create_app()")
    if not detach:
        os.execv(sys.executable, argv)
    import subprocess
    from ..private import private_dir, private_open
    log_dir = private_dir(Path(settings.models_path) / "logs")
    with private_open(log_dir / "serve.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    from .http import HTTP
    scheme = "https" if cert else "http"
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"{scheme}://{local if ':' not in local else f'[{local}]'}:{port or settings.port}"
    probe = HTTP(url, ca_file=os.environ.get("MODEL_RUNNER_TLS_CA") or cert or None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"the server exited; see {log_dir / 'serve.log'}")
        try:
            probe.get("/", timeout=1)
            click.echo(f"modelrunner is serving at {url} (pid {proc.pid}, "
                       f"logs in {log_dir / 'serve.log'})")
            return
        except Exception:
            time.sleep(0.1)
    fail("the server did not answer within 30 s")


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
    commands["stop"] = unload         # DMR: `unload`/`stop`
    commands["config"] = configure    # DMR: `configure`/`config`
    return commands
