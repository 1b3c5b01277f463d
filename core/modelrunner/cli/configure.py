"""`model configure MODEL [-- FLAGS]` (DMR's hidden `configure`, alias `config`): a model's
runner configuration, persisted by the server (POST /engines/_configure).

The core's options are DMR's: context size, keep-alive, mode, the speculative draft model and
the runtime flags after ``--``. The engine-specific ones (DMR's ``--think``, ``--hf_overrides``...)
are the engines' own data: this command asks the server for them (GET /engines/options), or the
installed plugins when no server answers (so ``--help`` lists them anyway), makes each a click
option, and puts a value given into the body's block the engine named (``{"llamacpp":
{"reasoning-budget": 0}}``). A ``text-or-file`` option's file is read here, on the client: the
server never opens a path a client names. The server validates the values; this command only
checks what it must parse (JSON, the file) so a typo fails before any request.
"""

import json
import os

import click

from .. import reference as refs
from .client import Client, fail
from .http import ConnectError, HTTPError
from .terminal import echo

_TRUE = ("true", "1", "t", "yes", "on")
_FALSE = ("false", "0", "f", "no", "off")
_TYPES = {"int": int, "float": float}


def engine_options():
    """``[(engine name, option)]``: each engine's `_configure` options (``ConfigureOption`` as
    JSON), from the server when one answers, else from the engines installed here."""
    try:
        resp = Client().http.request("GET", "/engines/options", timeout=10)
        described = resp.json() if resp.status_code == 200 else None
    except (ConnectError, HTTPError, ValueError):
        described = None
    if not isinstance(described, dict):
        described = _installed_engines()
    return [(name, option) for name, about in described.items() if isinstance(about, dict)
            for option in about.get("options") or [] if isinstance(option, dict)]


def _installed_engines():
    from ..plugins import get_plugin_manager
    from ..settings import load_settings

    engines = {}
    get_plugin_manager().hook.register_engines(
        register=lambda engine: engines.setdefault(engine.name, engine), settings=load_settings())
    return {name: {"options": [o.to_dict() for o in engine.configure_options]}
            for name, engine in engines.items()}


class _ConfigureCommand(click.Command):
    """The core's options, plus one per engine option (the first engine to declare a flag
    owns it). DMR's bool flags are Go's: ``--think``, ``--think=true`` or ``--think=false``;
    click spells the negative ``--no-think``, so the ``=value`` forms are mapped onto the two,
    before ``--`` only (what follows it is the engine's runtime flags)."""

    def engine_params(self):
        """[(click option, its engine, its description)], asked once."""
        if getattr(self, "_engine_params", None) is None:
            params, seen = [], {p.name for p in self.params}
            taken = {opt for p in self.params for opt in p.opts + p.secondary_opts}
            for engine, spec in engine_options():
                option = _click_option(engine, spec, f"engine_option_{len(params)}")
                if option is None:
                    continue
                names = set(option.opts + option.secondary_opts)
                if names & taken or option.name in seen:
                    continue
                taken |= names
                params.append((option, engine, spec))
            self._engine_params = params
        return self._engine_params

    def get_params(self, ctx):
        params = [*self.params, *(option for option, _, _ in self.engine_params())]
        help_option = self.get_help_option(ctx)
        return params + [help_option] if help_option is not None else params

    def parse_args(self, ctx, args):
        bools = {spec["flag"] for _, _, spec in self.engine_params() if spec.get("type") == "bool"}
        out, passthrough = [], False
        for arg in args:
            name, sep, value = arg.partition("=")
            if not passthrough and sep and name.startswith("--") and name[2:] in bools:
                value = value.strip().lower()
                if value not in _TRUE + _FALSE:
                    raise click.BadParameter(f"{value!r} is not a boolean", param_hint=name)
                arg = name if value in _TRUE else f"--no-{name[2:]}"
            passthrough = passthrough or arg == "--"
            out.append(arg)
        return super().parse_args(ctx, out)


def _click_option(engine, spec, dest):
    flag = str(spec.get("flag") or "")
    if not flag or not spec.get("block") or not spec.get("key"):
        return None
    help_text = f"{engine}: {spec.get('help') or ''}".strip()
    if spec.get("type") == "bool":
        return click.Option([f"--{flag}/--no-{flag}", dest], default=None, help=help_text)
    names = [f"--{flag}"] + [f"--{alias}" for alias in spec.get("aliases") or []]
    return click.Option(names + [dest], type=_TYPES.get(spec.get("type"), str),
                        help=help_text, metavar=spec.get("metavar") or None)


def _value(spec, value):
    """What the body carries for an option's value (the engine validates it)."""
    kind, flag = spec.get("type"), spec["flag"]
    if kind == "bool":
        return (spec.get("values") or {}).get("true" if value else "false", value)
    if kind == "object":
        try:
            value = json.loads(value)
        except ValueError as e:
            fail(f"--{flag} is not JSON: {e}")
        if not isinstance(value, dict):
            fail(f"--{flag} must be a JSON object, e.g. '{{\"rope_theta\": 20000}}'")
        return value
    if kind == "text-or-file":
        return _file_text(value)
    return value


def _file_text(value):
    """A file's text (an existing file, read here), else ``value`` itself (a name)."""
    if not os.path.isfile(value):
        return value
    try:
        with open(value, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {value}: {e}")


@click.command(cls=_ConfigureCommand, context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.argument("flags", nargs=-1, type=click.UNPROCESSED)
@click.option("--context-size", type=int, help="Context size in tokens (-1: the model's own)")
@click.option("--keep-alive", help="How long an idle model stays loaded (5m, 0, -1 = forever)")
@click.option("--mode", help="completion, embedding, reranking, image-generation, or another "
              "mode the model's engine declares (default: completion, else the engine's first)")
@click.option("--backend", help="The engine to configure (default: the one of the model's format)")
@click.option("--speculative-draft-model", help="Draft model for speculative decoding")
@click.option("--speculative-num-tokens", type=click.IntRange(0, 256),
              help="Tokens the draft model proposes at a time")
@click.option("--speculative-min-acceptance-rate", type=click.FloatRange(0, 1),
              help="Minimum draft probability to propose a token")
@click.pass_context
def configure(ctx, model, flags, context_size, keep_alive, mode, backend, speculative_draft_model,
              speculative_num_tokens, speculative_min_acceptance_rate, **engine_values):
    """Set a model's context size, runtime flags (after --), keep-alive and its engine's
    options (listed below, from the engines installed); persisted."""
    if model == "show":
        click.echo(json.dumps(Client().json("GET", "/engines/_configure",
                                            params={"model": flags[0]} if flags else None), indent=2))
        return
    body = {"model": model}
    if mode:
        body["mode"] = mode
    if context_size is not None:
        body["context-size"] = context_size
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if flags:
        body["runtime-flags"] = list(flags)
    for option, _, spec in ctx.command.engine_params():
        value = engine_values.get(option.name)
        if value is not None:  # the first option given for a key wins
            body.setdefault(spec["block"], {}).setdefault(spec["key"], _value(spec, value))
    speculative = {key: value for key, value in (
        ("draft_model", speculative_draft_model), ("num_tokens", speculative_num_tokens),
        ("min_acceptance_rate", speculative_min_acceptance_rate)) if value is not None}
    if speculative:
        body["speculative"] = speculative
    path = f"/engines/{backend}/_configure" if backend else "/engines/_configure"
    data = Client().json("POST", path, json=body)
    echo(f"Configured {refs.display(data['Model'])} ({data['Backend']}, {data['Mode']}): "
               f"{json.dumps(data['Config'])}")
