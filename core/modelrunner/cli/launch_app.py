"""`model launch APP [--model M] [--config] [-- APP ARGS]`: run a coding agent or chat app
against this server, as `docker model launch` and `ollama launch` do.

Not to be confused with :mod:`.launch`, which starts the *server* in the background; this
command uses it (the CLI's autostart for a server on this machine) and then *execs the app*, with
the variables and arguments :mod:`.apps` gives for it, so the app owns the terminal, its exit
status is the command's, and nothing of `model` stays behind.

Before that it checks what would fail later with a worse message: the app not on PATH (the
command that installs it instead), the model not in the store (pulled, as DMR's launcher does),
and a context too small for the app's prompt (a warning naming the context the app needs: the
context of the model's loaded runner, else the model's own).
"""

import os
import shlex
import shutil
import sys

import click

from .. import reference as refs
from .apps import APPS, KEY_VARIABLE, Target
from .client import Client, error_text, fail
from .http import ConnectError, HTTPError
from .terminal import echo

UNREACHABLE = "unreachable"


@click.command(name="launch")
@click.argument("app", required=False)
@click.argument("app_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- APP ARGS]")
@click.option("-m", "--model", help="The model the app uses (default: the only model in the "
                                    "store)")
@click.option("--config", "show_config", is_flag=True,
              help="Print what launching would set (variables, arguments; keys masked) and exit")
def launch(app, app_args, model, show_config):
    """Launch a coding agent or app configured to use this server.

    Without APP, lists the apps. APPS: claude, codex, opencode, aider, openwebui, copilot.

    \b
    Examples:
      model launch claude --model ai/qwen3-coder
      model launch opencode -- run "explain this repository"
      model launch codex --config
    """
    if not app:
        list_apps()
        return
    spec = APPS.get(app.lower())
    if spec is None:
        fail(f"unknown app {app!r} (apps: {', '.join(APPS)})")
    program = shutil.which(spec.program)
    if program is None and not show_config:
        fail(f"{spec.title} is not installed (no {spec.program!r} on PATH); install it with: "
             f"{spec.install}")
    key = os.environ.get(KEY_VARIABLE) or None
    client = Client(autostart=not show_config)
    model, context, where = resolve_model(client, model, pull=not show_config)
    if spec.context and context and context < spec.context:
        echo(f"Warning: {spec.title} needs a context of at least {spec.context} tokens "
             f"({spec.context_why}); {model} has {context} ({where}). Choose a model with a "
             f"longer context, or raise it if the model allows: model configure "
             f"--context-size {spec.context} {model}", err=True)
    setup = spec.setup(Target(client.base_url, model, key, context))
    ca = os.environ.get("MODEL_RUNNER_TLS_CA")
    if client.base_url.startswith("https:") and ca and "NODE_EXTRA_CA_CERTS" not in os.environ:
        # the node apps trust the server's CA; a user's own (a company proxy's) is kept
        setup.env["NODE_EXTRA_CA_CERTS"] = ca
    args = setup.args + list(app_args or setup.default_args)
    if show_config:
        print_config(spec, client.base_url, model, context, where, setup, args, key,
                     installed=program is not None)
        return
    for note in setup.notes:
        echo(f"Note: {note}", err=True)
    env = dict(os.environ, **setup.env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(program, [spec.program, *args], env)


def list_apps():
    """The apps, whether each is on PATH, and the context each needs."""
    width = max(len(name) for name in APPS)
    for name, spec in APPS.items():
        state = "" if shutil.which(spec.program) else f"  (not installed: {spec.install})"
        need = f", needs {spec.context // 1024}k context" if spec.context else ""
        echo(f"  {name:<{width}}  {spec.title} ({spec.dialect}{need}){state}")
    echo("\nUsage: model launch APP [--model MODEL] [--config] [-- APP ARGS]")


def resolve_model(client, model, pull):
    """(model, context or None, where the context comes from). Without ``model``: the store's
    only model. ``pull``: a model not in the store is pulled. With ``pull`` off (--config) an
    unreachable server is no error: the config is printed without what it would have said."""
    get = client.send if pull else client.http.request  # the latter raises ConnectError
    try:
        if model is None:
            model = _only_model(get)
        resp = get("GET", f"/models/{model}")
        if resp.status_code == 404 and pull:
            echo(f"{model} is not in the store; pulling it", err=True)
            from .commands import pull_model
            pull_model(model)
            resp = get("GET", f"/models/{model}")
        if resp.status_code == 404:
            fail(f"model {model} is not in the store (model pull {model})")
        if resp.status_code >= 400:  # a key the server refuses: its words, not a guess
            fail(error_text(resp))
        running = _runner_context(get, model)
        if running:
            return model, running, "its loaded runner's"
        context = ((resp.json() or {}).get("config") or {}).get("context_size") \
            if resp.status_code == 200 else None
        return model, context, "the model's"
    except (ConnectError, HTTPError):  # --config only: client.send exits or starts the server
        return model, None, UNREACHABLE


def _only_model(get):
    resp = get("GET", "/models")
    if resp.status_code >= 400:
        fail(error_text(resp))
    models = resp.json()
    tags = [_short(m["tags"][0]) for m in models if m.get("tags")]
    if len(tags) == 1:
        return tags[0]
    if not tags:
        fail("the store has no models: pull one (model pull ai/smollm2) or name one with --model")
    fail(f"name the model with --model (the store has {', '.join(tags)})")


def _short(tag):
    """A tag as people type it: ``ai/smollm2`` (docker.io/ and :latest go; the namespace stays,
    as the apps show it in their model pickers)."""
    shown = tag.removeprefix("docker.io/")
    return shown.removesuffix(":latest")


def _runner_context(get, model):
    """The context a loaded runner of ``model`` serves (the engine may have fitted it below the
    model's maximum), or None when none is loaded."""
    resp = get("GET", "/engines/ps")
    if resp.status_code != 200:
        return None
    wanted = refs.normalize(model)
    for row in resp.json() or []:
        try:
            if refs.normalize(row["model_name"]) == wanted and row.get("context_size"):
                return row["context_size"]
        except (KeyError, ValueError):
            continue
    return None


def print_config(spec, base_url, model, context, where, setup, args, key, installed):
    """--config: what the app gets, keys masked."""
    echo(f"{spec.name}: {spec.title} ({spec.dialect}) against {base_url}")
    if where == UNREACHABLE:
        echo(f"Note: nothing answers at {base_url} now; `model launch {spec.name}` starts the "
             f"server (on this machine) and checks the model's context")
    if model:
        echo(f"Model: {model}" + (f" (context {context}: {where})" if context else ""))
    else:
        echo("Model: the app's own default (name one with --model)")
    if spec.context:
        echo(f"Needs: a context of at least {spec.context} tokens ({spec.context_why})")
    echo("Environment:")
    for name, value in setup.env.items():
        if name in setup.secret and key:
            value = f"********  # {KEY_VARIABLE}, masked"
        echo(f"  {name}={value}")
    echo("Command:")
    echo(f"  {shlex.join([spec.program, *args])}")
    for note in setup.notes:
        echo(f"Note: {note}")
    if not installed:
        echo(f"Not installed (no {spec.program!r} on PATH): {spec.install}")
