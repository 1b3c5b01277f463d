"""Find or build whisper.cpp's ``whisper-server``, the runner process of the whisper engine.

Where the binary is looked for, in order:

1. ``MODELRUNNER_WHISPER_SERVER_PATH`` (setting ``whisper_server_path``): a file, or a
   directory holding ``whisper-server``;
2. the binary shipped in this package, ``modelrunner_whisper/bin/whisper-server``: building the
   wheel (or an editable install) puts it there (``build_backend/``);
3. the cache, ``$MODELRUNNER_CACHE_DIR`` (default ``~/.cache/modelrunner``)
   ``/whisper-server/<key>/bin/whisper-server``, key = the pywhispercpp version, plus a hash of
   ``CMAKE_ARGS`` when there are any; a ``-march=native`` build is used only on the CPU it was
   built for (``build-info.json`` beside it).

Not ``whisper-server`` on ``PATH``: upstream's listens on TCP only, and modelrunner's runners
listen on the Unix socket the scheduler gives them. The build applies one patch for that
(:data:`UNIX_SOCKET_PATCH`: a ``--host`` ending in ``.sock`` is a Unix socket, as llama-server
does it), so only a binary built here (or configured explicitly) is run.

Building (``modelrunner-whisper-build``, or the wheel build) takes the whisper.cpp source
vendored in the pywhispercpp sdist from PyPI, pinned below with its sha256, and compiles only the
``whisper-server`` target, Release. ``CMAKE_ARGS`` chooses a GPU build (``-DGGML_CUDA=on``...);
with none, CUDA is on when ``nvcc`` and an NVIDIA GPU are found.
"""

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

PYWHISPERCPP_VERSION = "1.5.1"   # vendors whisper.cpp 1.8.5
# sha256 of pywhispercpp-1.5.1.tar.gz (9,756,087 bytes) as PyPI served it on 2026-12-06: what is
# compiled is that source or nothing. MODELRUNNER_PYWHISPERCPP_SDIST_SHA256 overrides it.
PYWHISPERCPP_SDIST_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"

BINARY = "whisper-server"
INFO = "build-info.json"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DWHISPER_BUILD_TESTS=OFF",
    "-DWHISPER_BUILD_EXAMPLES=ON",   # the server is one of the examples
    "-DWHISPER_BUILD_SERVER=ON",
    "-DWHISPER_SDL2=OFF",
    "-DWHISPER_CURL=OFF",
    "-DGGML_NATIVE=ON",
]
# ggml's AMX matmul crashes on some weights (see plugins/llamacpp's build.py): left out on x86
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

# whisper-server binds host:port only; a --host ending in ".sock" becomes a Unix socket (the
# scheduler gives each runner one). Marker: the patched binary's --help names it.
UNIX_SOCKET_PATCH = (
    "    if (!svr->bind_to_port(sparams.hostname, sparams.port))",
    "    if (sparams.hostname.size() > 5 &&\n"
    "        sparams.hostname.compare(sparams.hostname.size() - 5, 5, \".sock\") == 0) {\n"
    "        svr->set_address_family(AF_UNIX);  // modelrunner: a Unix socket runner\n"
    "    }\n"
    "    if (!svr->bind_to_port(sparams.hostname, sparams.port))",
)
HELP_PATCH = (
    'Hostname/ip-adress for the server\\n"',
    'Hostname/ip-adress for the server (a path ending in .sock: a Unix socket)\\n"',
)


def _log(message):
    print(f"[modelrunner-whisper-build] {message}", flush=True)


def extra_cmake_args(cuda=None):
    """``CMAKE_ARGS`` split as a shell would; with none, ``-DGGML_CUDA=ON`` when CUDA is here."""
    extra = shlex.split(os.environ.get("CMAKE_ARGS", ""))
    if not extra and (cuda if cuda is not None else cuda_available()):
        extra = ["-DGGML_CUDA=ON"]
    return extra


def cmake_flags(extra=()):
    """Ours, then ``extra``: cmake keeps the last value, so the user's win."""
    flags = list(CMAKE_FLAGS)
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    return flags + list(extra)


def cuda_available():
    if not shutil.which("nvcc") or not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def cache_root():
    return Path(os.path.expanduser(os.environ.get("MODELRUNNER_CACHE_DIR")
                                   or "~/.cache/modelrunner"))


def build_key(extra=()):
    if not extra:
        return PYWHISPERCPP_VERSION
    return f"{PYWHISPERCPP_VERSION}-{hashlib.sha256(chr(0).join(extra).encode()).hexdigest()[:12]}"


def cached_binary(extra=None):
    extra = extra_cmake_args() if extra is None else extra
    return cache_root() / "whisper-server" / build_key(extra) / "bin" / BINARY


def shipped_binary():
    return Path(__file__).resolve().parent / "bin" / BINARY


def cpu_signature():
    """A hash of this CPU's instruction-set flags: a -march=native build runs on that CPU only."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((l for l in f if l.startswith(("flags", "Features"))), "")
    except OSError:
        return None
    words = sorted(set(line.split(":", 1)[-1].split()))
    return hashlib.sha256(" ".join(words).encode()).hexdigest()[:16] if words else None


def build_info(extra):
    info = {"pywhispercpp": PYWHISPERCPP_VERSION, "cmake_args": list(extra),
            "machine": platform.machine(), "unix_socket_patch": True}
    if "-DGGML_NATIVE=OFF" not in cmake_flags(extra):
        info["cpu"] = cpu_signature()
    if any(flag.upper().startswith("-DGGML_CUDA=") and flag.split("=", 1)[1].lower() in
           ("on", "1", "yes", "true") for flag in extra):
        info["gpu"] = "CUDA"
    return info


def read_build_info(binary):
    try:
        return json.loads((Path(binary).parent / INFO).read_text())
    except (OSError, ValueError):
        return {}


def cache_usable(path):
    """A cached build we may run: runnable, built for this machine and CPU, and no folder up to
    the cache root writable by others (their binary would be run, or shipped in a wheel)."""
    path = Path(path)
    if not (path.is_file() and os.access(path, os.X_OK)):
        return False
    info = read_build_info(path)
    if info.get("machine") not in (None, platform.machine()):
        return False
    if info.get("cpu") not in (None, cpu_signature()):
        _log(f"ignoring {path}: a -march=native build for another CPU")
        return False
    root, here = cache_root(), path
    while True:
        st = here.stat()
        if st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022:
            _log(f"ignoring {path}: {here} can be written by others")
            return False
        if here == root or here.parent == here:
            return True
        here = here.parent


def configured_path(settings=None):
    value = settings.get("whisper_server_path", None) if settings is not None else None
    return value or os.environ.get("MODELRUNNER_WHISPER_SERVER_PATH") or None


def _from_setting(value):
    path = Path(os.path.expanduser(str(value)))
    if path.is_dir():
        path = path / BINARY
    return path if path.is_file() else None


def find_whisper_server(settings=None):
    """The whisper-server to run, or None (see the module's docstring for the order)."""
    explicit = configured_path(settings)
    if explicit:
        return _from_setting(explicit)   # a setting that points nowhere is not a fallback
    shipped = shipped_binary()
    if shipped.is_file() and os.access(shipped, os.X_OK):
        return shipped
    cached = cached_binary()
    return cached if cache_usable(cached) else None


def check_sdist(path):
    expected = os.environ.get("MODELRUNNER_PYWHISPERCPP_SDIST_SHA256") or PYWHISPERCPP_SDIST_SHA256
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != expected:
        raise RuntimeError(f"{Path(path).name} has sha256 {digest}, not the pinned {expected}: "
                           f"refusing to build from it")


def download_source(workdir):
    """pip-download the pinned pywhispercpp sdist, check it, extract it, patch the server;
    returns the whisper.cpp source folder."""
    workdir = Path(workdir)
    spec = f"pywhispercpp=={PYWHISPERCPP_VERSION}"
    _log(f"downloading the {spec} sdist from PyPI")
    env = {k: v for k, v in os.environ.items() if not k.startswith("_PYPROJECT_HOOKS_")}
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                    "pywhispercpp", "--dest", str(workdir), spec], check=True, env=env)
    archive = workdir / f"pywhispercpp-{PYWHISPERCPP_VERSION}.tar.gz"
    if not archive.is_file():
        raise RuntimeError(f"pip download left no {archive.name} in {workdir}")
    check_sdist(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    source = workdir / f"pywhispercpp-{PYWHISPERCPP_VERSION}" / "whisper.cpp"
    patch_server(source / "examples" / "server" / "server.cpp")
    return source


def patch_server(server_cpp):
    text = Path(server_cpp).read_text()
    for old, new in (UNIX_SOCKET_PATCH, HELP_PATCH):
        if text.count(old) != 1:
            raise RuntimeError(f"{server_cpp} changed: cannot apply modelrunner's patch at {old!r}")
        text = text.replace(old, new)
    Path(server_cpp).write_text(text)


def _atomic_copy(source, target, mode=0o755):
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _write_info(folder, info):
    fd, tmp = tempfile.mkstemp(prefix=".build-info.", dir=folder)
    with os.fdopen(fd, "w") as out:
        json.dump(info, out, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, Path(folder) / INFO)


def build(force=False, jobs=None, cuda=None):
    """Build whisper-server into the cache unless a usable build is there; returns its path."""
    extra = extra_cmake_args(cuda)
    target = cached_binary(extra)
    if cache_usable(target) and not force:
        _log(f"{target} already exists; nothing to do (--force rebuilds)")
        return target
    if not shutil.which("cmake"):
        raise RuntimeError("cmake is required to build whisper-server (apt-get install cmake)")
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent.parent / ".build.lock")):
        if cache_usable(target) and not force:
            return target
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="whisper-server-build-") as tmp:
            source = download_source(tmp)
            build_dir = Path(tmp) / "build"
            flags = cmake_flags(extra)
            _log(f"configuring: {shlex.join(flags)}")
            subprocess.run(["cmake", "-S", str(source), "-B", str(build_dir), *flags], check=True)
            jobs = jobs or os.cpu_count() or 1
            _log(f"compiling {BINARY} with {jobs} jobs")
            subprocess.run(["cmake", "--build", str(build_dir), "--target", BINARY,
                            "-j", str(jobs)], check=True)
            _atomic_copy(build_dir / "bin" / BINARY, target)
            _write_info(target.parent, build_info(extra))
        _log(f"built {target} in {time.monotonic() - started:.0f}s")
        return target


def ship(folder=None, cuda=None):
    """Copy the build this environment asks for into ``folder`` (default: this package's
    ``bin/``), building it into the cache first when needed. What the wheel build calls."""
    folder = Path(folder) if folder else shipped_binary().parent
    cached = build(cuda=cuda)
    target = folder / BINARY
    info = read_build_info(cached)
    if not (target.is_file() and read_build_info(target) == info
            and target.stat().st_size == cached.stat().st_size):
        _atomic_copy(cached, target)
        _write_info(folder, info)
    _log(f"shipping {target}")
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="modelrunner-whisper-build",
        description=f"Find or build whisper-server (whisper.cpp from pywhispercpp "
                    f"{PYWHISPERCPP_VERSION}) for modelrunner's whisper engine. CMAKE_ARGS "
                    f"chooses the build (-DGGML_CUDA=on, -DGGML_VULKAN=on, ...).")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has it")
    parser.add_argument("--jobs", "-j", type=int, default=None)
    gpu = parser.add_mutually_exclusive_group()
    gpu.add_argument("--cuda", dest="cuda", action="store_true", default=None)
    gpu.add_argument("--no-cuda", dest="cuda", action="store_false")
    parser.add_argument("--print-path", action="store_true",
                        help="print the whisper-server that would be used, and exit")
    args = parser.parse_args(argv)
    if args.print_path:
        found = find_whisper_server()
        print(found or "")
        return 0 if found else 1
    try:
        result = build(force=args.force, jobs=args.jobs, cuda=args.cuda)
        if os.access(shipped_binary().parent.parent, os.W_OK):
            result = ship(cuda=args.cuda)   # the package's copy comes first in the lookup
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        _log(f"failed: {exc}")
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
