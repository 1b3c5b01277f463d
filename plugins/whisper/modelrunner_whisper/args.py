"""whisper-server's command line, as data: a pure function of the model, the runner's
configuration and the engine's settings, tested without starting anything (tests/test_whisper_args.py)."""

from modelrunner import EngineError, engine_args

# The runtime flags `_configure` may pass (everything else is the request's: language, prompt,
# temperature, response_format go in each request's form, never in argv).
RUNTIME_FLAGS = frozenset({
    "--threads", "-t", "--processors", "-p", "--beam-size", "-bs", "--best-of", "-bo",
    "--audio-ctx", "-ac", "--max-len", "-ml", "--split-on-word", "-sow", "--flash-attn", "-fa",
    "--no-flash-attn", "-nfa", "--no-gpu", "-ng", "--suppress-nst", "-sns", "--no-fallback",
    "-nf", "--entropy-thold", "-et", "--logprob-thold", "-lpt", "--no-speech-thold", "-nth",
    "--max-context", "-mc",
})


def build_argv(binary, model_file, address, runtime_flags=(), threads=0, gpu=True):
    """``whisper-server -m MODEL --host SOCKET.sock [flags]``.

    ``address`` is the scheduler's: a unix:// socket (the patched server treats a host ending
    in ``.sock`` as one, see build.py), or http://host:port for a runner on another machine.
    ``threads`` 0 keeps whisper-server's default (up to 4); ``gpu`` False adds ``--no-gpu``.
    The configured runtime flags come last: whisper-server keeps the last value of a flag.
    """
    listen = engine_args.listen_args(address, "--host")
    if listen[0] == "--host" and len(listen) == 2 and not listen[1].endswith(".sock"):
        raise EngineError(f"whisper-server listens on a Unix socket whose name ends in .sock, "
                          f"not {listen[1]!r}", status=500)
    argv = [str(binary), "-m", str(model_file), *listen]
    if threads:
        argv += ["--threads", str(int(threads))]
    if not gpu:
        argv.append("--no-gpu")
    return argv + [str(flag) for flag in runtime_flags or ()]
