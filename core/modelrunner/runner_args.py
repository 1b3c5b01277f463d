"""The pieces every engine's ``args.py`` builds a runner's command line from.

An engine's argument builder is a pure function (its plugin's ``build_argv``); what each of them
needs besides its own flags is the same: read a number from a setting or a model's config, read a
setting's yes or no (:func:`truthy`), split ``--flag=value`` and take a flag and its value out of
the user's runtime flags, and say where the runner listens. They live here once, exported by
``modelrunner``, so no engine plugin keeps its own copy.
"""

from .engines import _NUMBER, EngineError  # a negative number is a value, not a flag
from .runners import listen_on
from .settings import truthy  # noqa: F401  (exported: a setting's yes or no)


def as_int(value):
    """``value`` (an int, or a string from a setting, the environment or a model's config) as
    an int; None when it is not one."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def split_flags(flags):
    """``--flag=value`` -> ``--flag``, ``value``: one spelling to look flags up in (and the only
    one some parsers, llama-server's among them, take). Short flags are left as they are."""
    out = []
    for flag in flags:
        if flag.startswith("--") and "=" in flag:
            out += flag.split("=", 1)
        else:
            out.append(flag)
    return out


def take_flags(flags, names, nargs=1):
    """Remove every ``names`` flag and its value from ``flags`` (split ones, see
    :func:`split_flags`); returns ``(values, rest)``, the values in the order given (the last
    one is what the runner would have used).

    ``nargs="+"`` takes every following word that is not a flag (``--served-model-name a b``);
    a negative number is a value. A flag left with no value stays in ``rest``, for the runner to
    refuse.
    """
    values, rest, i = [], [], 0
    while i < len(flags):
        if flags[i] in names and i + 1 < len(flags):
            i += 1
            if nargs == "+":
                while i < len(flags) and not (flags[i].startswith("-")
                                              and not _NUMBER.match(flags[i])):
                    values.append(flags[i])
                    i += 1
            else:
                values.append(flags[i])
                i += 1
            continue
        rest.append(flags[i])
        i += 1
    return values, rest


def listen_args(address, socket_flag):
    """Where a runner listens: ``[socket_flag, path]`` for a unix:// address (or a bare path),
    ``["--host", host, "--port", port]`` for http:// (a runner placed on another machine).

    Each runner names its socket its own way: llama-server ``--host``, ``vllm serve`` ``--uds``.
    An address no runner can listen on is the scheduler's error (EngineError, 500).
    """
    try:
        host, port = listen_on(address)
    except ValueError as e:
        raise EngineError(str(e), status=500) from None
    return [socket_flag, host] if port is None else ["--host", host, "--port", str(port)]
