"""`model run MODEL [PROMPT]`: placeholder replaced below."""
import click


@click.command()
@click.argument("model")
@click.argument("prompt", nargs=-1)
def run(model, prompt):
    """Chat with a model (one-shot with PROMPT, else interactive)."""
    raise SystemExit("not yet")
