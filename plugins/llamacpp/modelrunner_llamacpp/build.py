"""Find or build llama.cpp's ``llama-server``, the runner process of the llama.cpp engine.

Where the binary is looked for, in order:

1. ``MODELRUNNER_LLAMA_SERVER_PATH`` (setting ``llama_server_path``), then DMR's
   ``LLAMA_SERVER_PATH``: a file, or a directory holding ``llama-server`` (or DMR's
   ``com.docker.llama-server``);
2. the cache, ``$MODELRUNNER_CACHE_DIR`` (default ``~/.cache/modelrunner``)
   ``/llama-server/<llama-cpp-python version>/bin/llama-server``;
3. ``llama-server`` on ``PATH``.

Building (``modelrunner-llamacpp-build``, or ``python -m modelrunner_llamacpp.build``) takes the
llama.cpp source vendored in the llama-cpp-python sdist from PyPI, pinned below, so the build needs
only PyPI, a C++ compiler and cmake. CUDA is enabled when ``nvcc`` is found and ``nvidia-smi -L``
lists a GPU. The result is copied into the cache atomically; a build is skipped when the cached
binary exists (``--force`` rebuilds).
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

BINARY = "llama-server"
DMR_BINARY = "com.docker.llama-server"

CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DGGML_NATIVE=ON",
]


# ggml's AMX matmul (compiled in when -march=native finds AMX, as on Sapphire Rapids) segfaults on
# the first Q4_1 matmul in this llama.cpp (seen with SmolLM2-135M Q4_1), so x86 builds leave AMX
# out; the AVX-512/AVX2 paths and weight repacking still apply.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def cmake_flags(cuda):
    flags = list(CMAKE_FLAGS)
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    if cuda:
        flags.append("-DGGML_CUDA=ON")
    return flags


def _log(message):
    print(f"[modelrunner-llamacpp-build] {message}", flush=True)


def cache_dir():
    root = os.environ.get("MODELRUNNER_CACHE_DIR") or "~/.cache/modelrunner"
    return Path(os.path.expanduser(root)) / "llama-server" / LLAMA_CPP_PYTHON_VERSION


def cached_binary():
    return cache_dir() / "bin" / BINARY


def _from_setting(value):
    """A configured path: the binary itself, or a directory that holds it."""
    path = Path(os.path.expanduser(str(value)))
    if path.is_dir():
        for name in (BINARY, DMR_BINARY):
            if (path / name).is_file():
                return path / name
        return None
    return path if path.is_file() else None


def configured_path(settings=None):
    """The explicitly configured binary path (setting, MODELRUNNER_*, DMR name), or None."""
    candidates = []
    if settings is not None:
        candidates.append(settings.get("llama_server_path", None))
    candidates += [os.environ.get("MODELRUNNER_LLAMA_SERVER_PATH"),
                   os.environ.get("LLAMA_SERVER_PATH")]
    return next((c for c in candidates if c), None)


def find_llama_server(settings=None):
    """The llama-server binary to run, or None. See the module docstring for the order."""
    explicit = configured_path(settings)
    if explicit:
        # An explicit setting that points nowhere is an error, not a reason to use another binary.
        return _from_setting(explicit)
    cached = cached_binary()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(BINARY)
    return Path(found) if found else None


def cuda_available():
    """True when nvcc is installed and an NVIDIA GPU is visible (nvidia-smi -L lists one)."""
    if not shutil.which("nvcc") or not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def download_source(workdir):
    """pip-download the llama-cpp-python sdist and extract it; returns the llama.cpp source dir."""
    workdir = Path(workdir)
    spec = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
    _log(f"downloading {spec} sdist from PyPI")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(workdir), spec], check=True)
    archives = sorted(workdir.glob("llama_cpp_python-*.tar.gz")) + \
        sorted(workdir.glob("llama-cpp-python-*.tar.gz"))
    if not archives:
        raise RuntimeError(f"pip download left no sdist in {workdir}")
    _log(f"extracting {archives[0].name}")
    with tarfile.open(archives[0]) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(workdir, filter="data")
        else:  # Python < 3.11.4
            tar.extractall(workdir)
    sources = [p for p in workdir.glob("llama*cpp*python-*/vendor/llama.cpp") if p.is_dir()]
    if not sources:
        raise RuntimeError("the sdist holds no vendor/llama.cpp")
    return sources[0]


def configure(source, build_dir, cuda=None):
    cuda = cuda_available() if cuda is None else cuda
    flags = cmake_flags(cuda)
    _log(f"configuring ({'CUDA' if cuda else 'CPU'} build) in {build_dir}")
    subprocess.run(["cmake", "-S", str(source), "-B", str(build_dir), *flags], check=True)


def compile_server(build_dir, jobs=None):
    jobs = jobs or os.cpu_count() or 1
    _log(f"compiling {BINARY} with {jobs} jobs (this takes a while)")
    subprocess.run(["cmake", "--build", str(build_dir), "--target", BINARY, "-j", str(jobs)],
                   check=True)
    binary = Path(build_dir) / "bin" / BINARY
    if not binary.is_file():
        raise RuntimeError(f"the build produced no {binary}")
    return binary


def install(binary, target=None):
    """Copy ``binary`` to the cache path atomically (copy to a temp name, then rename)."""
    target = Path(target or cached_binary())
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{BINARY}.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(binary, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _log(f"installed {target}")
    return target


def build(force=False, jobs=None, cuda=None, workdir=None, configure_only=False, keep=False):
    """Build llama-server into the cache unless it is there; returns the binary path.

    With ``configure_only`` it stops after cmake's configure step and returns the build dir.
    """
    target = cached_binary()
    if target.is_file() and not force and not configure_only:
        _log(f"{target} already exists; nothing to do (--force rebuilds)")
        return target
    if not shutil.which("cmake"):
        raise RuntimeError("cmake is required to build llama-server (apt-get install cmake)")
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent.parent / ".build.lock")):
        if target.is_file() and not force and not configure_only:
            _log(f"{target} was built meanwhile; nothing to do")
            return target
        started = time.monotonic()
        tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="llama-server-build-"))
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            source = download_source(tmp)
            build_dir = tmp / "build"
            configure(source, build_dir, cuda=cuda)
            if configure_only:
                _log(f"configured in {time.monotonic() - started:.0f}s; stopping (--configure-only)")
                return build_dir
            binary = compile_server(build_dir, jobs=jobs)
            result = install(binary, target)
            _log(f"done in {time.monotonic() - started:.0f}s")
            return result
        finally:
            if not keep and not workdir and not configure_only:
                shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="modelrunner-llamacpp-build",
        description=f"Find or build llama-server (llama.cpp from llama-cpp-python "
                    f"{LLAMA_CPP_PYTHON_VERSION}) for modelrunner's llama.cpp engine.")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has it")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs")
    gpu = parser.add_mutually_exclusive_group()
    gpu.add_argument("--cuda", dest="cuda", action="store_true", default=None,
                     help="force a CUDA build")
    gpu.add_argument("--no-cuda", dest="cuda", action="store_false", help="force a CPU build")
    parser.add_argument("--workdir", help="build here instead of a temporary directory (kept)")
    parser.add_argument("--configure-only", action="store_true",
                        help="download, extract and configure, then stop (a quick check)")
    parser.add_argument("--from-binary", metavar="PATH",
                        help="install an already built llama-server into the cache")
    parser.add_argument("--print-path", action="store_true",
                        help="print the llama-server that would be used, and exit")
    args = parser.parse_args(argv)

    if args.print_path:
        found = find_llama_server()
        print(found or "")
        return 0 if found else 1
    if args.from_binary:
        install(Path(args.from_binary))
        return 0
    explicit = configured_path()
    if explicit and not args.force and not args.configure_only:
        found = _from_setting(explicit)
        if found:
            _log(f"using the configured {found}; nothing to build")
            return 0
        _log(f"configured llama-server path {explicit} does not exist; building into the cache")
    try:
        result = build(force=args.force, jobs=args.jobs, cuda=args.cuda, workdir=args.workdir,
                       configure_only=args.configure_only)
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        _log(f"failed: {exc}")
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
