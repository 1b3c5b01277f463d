"""The diffusers runner's command line (``python -m modelrunner_diffusers.runner``): a pure
function tested without torch and without starting anything (tests/test_diffusers_args.py).
The engine (engine.py) reads and checks the settings and finds what the runner loads."""

from modelrunner import engine_args


def build_argv(python, model_path, address, *, device="auto", dtype="auto", steps=50,
               max_scale=2.0, threads=0):
    """The runner for the pipeline at ``model_path`` (a pipeline folder, or a .dduf file),
    listening at ``address`` (``--socket`` for unix://, ``--host``/``--port`` for http://, where
    it then requires its API key): the device and dtype ("auto" is resolved by the runner, which
    imports torch), the default inference steps, the largest side as a multiple of the model's
    native size, and torch's CPU threads when set (0: torch's default)."""
    argv = [str(python), "-m", "modelrunner_diffusers.runner", "--model", str(model_path),
            *engine_args.listen_args(address, "--socket"), "--device", device, "--dtype", dtype,
            "--steps", str(steps), "--max-scale", str(max_scale)]
    # No "--served-model-name" check (DMR's 421): the gateway already routed the request by
    # the model's ID, and a tag added while the runner is loaded would be refused wrongly.
    if threads:
        argv += ["--threads", str(threads)]
    return argv
