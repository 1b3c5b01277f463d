"""`model configure MODEL [-- FLAGS]` (DMR's hidden `configure`, alias `config`): a model's
runner configuration, persisted by the server (POST /engines/_configure).

Besides the core's context size, keep-alive and mode it carries DMR's engine blocks: ``--think``
and ``--reasoning-budget`` (the ``llamacpp`` block, llama-server's ``--reasoning-budget``),
``--hf_overrides`` and ``--gpu-memory-utilization`` (the ``vllm`` block), ``--chat-template``
(the ``llamacpp`` block: a llama.cpp built-in name, or the text of a template file read here, on
the client: the server never opens a path a client names). The server validates them; this
command only checks what it must parse (JSON, the file) so a typo fails before any request.
"""

import json
import os

import click

from .. import reference as refs
from .client import Client, fail
from .terminal import echo

_TRUE = ("true", "1", "t", "yes", "on")
_FALSE = ("false", "0", "f", "no", "off")


class _ConfigureCommand(click.Command):
    """DMR's ``--think`` is a Go bool flag: ``--think``, ``--think=true`` or ``--think=false``.
    click spells the negative ``--no-think``; this maps the ``=value`` forms onto the two, before
    ``--`` only (what follows it is the engine's runtime flags)."""

    def parse_args(self, ctx, args):
        out, passthrough = [], False
        for arg in args:
            if not passthrough and arg.startswith("--think="):
                value = arg.split("=", 1)[1].strip().lower()
                if value not in _TRUE + _FALSE:
                    raise click.BadParameter(f"{value!r} is not a boolean", param_hint="--think")
                arg = "--think" if value in _TRUE else "--no-think"
            passthrough = passthrough or arg == "--"
            out.append(arg)
        return super().parse_args(ctx, out)


def _template(value):
    """A file's text (an existing file, read here), else ``value`` as a built-in name."""
    if not os.path.isfile(value):
        return value
    try:
        with open(value, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read the chat template {value}: {e}")


@click.command(cls=_ConfigureCommand, context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.argument("flags", nargs=-1, type=click.UNPROCESSED)
@click.option("--context-size", type=int, help="Context size in tokens (-1: the model's own)")
@click.option("--keep-alive", help="How long an idle model stays loaded (5m, 0, -1 = forever)")
@click.option("--mode", type=click.Choice(["completion", "embedding", "reranking", "image-generation"]))
@click.option("--backend")
@click.option("--think/--no-think", default=None,
              help="Let a reasoning model think (llama.cpp reasoning budget -1) or not (0)")
@click.option("--reasoning-budget", type=click.IntRange(min=-1),
              help="llama.cpp thinking tokens: -1 unlimited, 0 none, N at most N")
@click.option("--hf_overrides", "--hf-overrides", "hf_overrides",
              help="vLLM: JSON object that overrides the model's Hugging Face config")
@click.option("--speculative-draft-model", help="Draft model for speculative decoding")
@click.option("--speculative-num-tokens", type=click.IntRange(0, 256),
              help="Tokens the draft model proposes at a time")
@click.option("--speculative-min-acceptance-rate", type=click.FloatRange(0, 1),
              help="Minimum draft probability to propose a token")
@click.option("--gpu-memory-utilization", type=float,
              help="vLLM: fraction of GPU memory for the model, in (0, 1]")
@click.option("--chat-template", metavar="NAME|FILE",
              help="llama.cpp: a built-in chat template (gemma, llama3, chatml...; auto: the "
                   "model's own or the one for its architecture) or a Jinja template file")
def configure(model, flags, context_size, keep_alive, mode, backend, think, reasoning_budget,
              hf_overrides, gpu_memory_utilization, speculative_draft_model,
              speculative_num_tokens, speculative_min_acceptance_rate, chat_template):
    """Set a model's context size, runtime flags (after --), keep-alive, thinking and vLLM
    options; persisted."""
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
    if reasoning_budget is None and think is not None:
        reasoning_budget = -1 if think else 0
    if reasoning_budget is not None:
        body["llamacpp"] = {"reasoning-budget": reasoning_budget}
    if chat_template is not None:
        body.setdefault("llamacpp", {})["chat-template"] = _template(chat_template)
    speculative = {key: value for key, value in (
        ("draft_model", speculative_draft_model), ("num_tokens", speculative_num_tokens),
        ("min_acceptance_rate", speculative_min_acceptance_rate)) if value is not None}
    if speculative:
        body["speculative"] = speculative
    vllm = {}
    if hf_overrides is not None:
        try:
            vllm["hf-overrides"] = json.loads(hf_overrides)
        except ValueError as e:
            fail(f"--hf_overrides is not JSON: {e}")
        if not isinstance(vllm["hf-overrides"], dict):
            fail("--hf_overrides must be a JSON object, e.g. '{\"rope_theta\": 20000}'")
    if gpu_memory_utilization is not None:
        if not 0 < gpu_memory_utilization <= 1:
            fail("--gpu-memory-utilization must be in (0, 1]")
        vllm["gpu-memory-utilization"] = gpu_memory_utilization
    if vllm:
        body["vllm"] = vllm
    path = f"/engines/{backend}/_configure" if backend else "/engines/_configure"
    data = Client().json("POST", path, json=body)
    echo(f"Configured {refs.display(data['Model'])} ({data['Backend']}, {data['Mode']}): "
               f"{json.dumps(data['Config'])}")
