"""Human units as DMR prints them in model configs and `model ls`."""


def format_parameters(n: int) -> str:
    """Parameter count as gguf-parser prints it, without the space DMR strips: "134.52M", "7.24B"."""
    if n <= 0:
        return "0"
    for scale, unit in ((1e15, "Q"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_size(n: int) -> str:
    """Byte size in binary units with 2 decimals, as DMR's config "size": "256.35MiB"."""
    if n < 1024:
        return f"{int(n)}B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "PiB":
            return f"{value:.2f}{unit}"
    raise AssertionError("unreachable")
