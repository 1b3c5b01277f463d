"""Find or build llama.cpp's ``llama-server``, the runner process of the llama.cpp engine.

Where the binary is looked for, in order:

1. ``MODELRUNNER_LLAMA_SERVER_PATH`` (setting ``llama_server_path``), then DMR's
   ``LLAMA_SERVER_PATH``: a file, or a directory holding ``llama-server`` (or DMR's
   ``com.docker.llama-server``);
2. the binary shipped in this package, ``modelrunner_llamacpp/bin/llama-server``: building the
   wheel (or an editable install) puts it there (``build_backend/``), so ``pip install
   modelrunner-llamacpp`` gives a working engine with no second step;
3. the cache, ``$MODELRUNNER_CACHE_DIR`` (default ``~/.cache/modelrunner``)
   ``/llama-server/<key>/bin/llama-server``, key = the llama-cpp-python version, plus a hash of
   the extra cmake arguments when there are any (``CMAKE_ARGS``);
4. ``llama-server`` on ``PATH``.

Building (at wheel build time, or ``modelrunner-llamacpp-build`` / ``python -m
modelrunner_llamacpp.build`` to rebuild) takes the llama.cpp source vendored in the
llama-cpp-python sdist from PyPI, pinned below, so the build needs only PyPI, a C++ compiler and
cmake. GPU builds take ``CMAKE_ARGS`` as llama-cpp-python's users know it (``-DGGML_CUDA=on``,
``-DGGML_VULKAN=on``; Metal is on by default on Apple silicon); with no ``CMAKE_ARGS``, CUDA is
enabled when ``nvcc`` is found and ``nvidia-smi -L`` lists a GPU. The result is copied into the
cache atomically, with ``build-info.json`` beside it (its CMAKE_ARGS and GPU backend: ``model
status`` shows them); a finished build in the cache is reused, never recompiled (``--force`` rebuilds).
"""

import argparse
import functools
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# sha256 of its sdist, llama_cpp_python-0.3.36.tar.gz (76,589,250 bytes), as the package index
# served it on 2026-12-01: what is compiled and shipped is that source or nothing. Change both
# together; MODELRUNNER_LLAMA_CPP_SDIST_SHA256 overrides it for another version's sdist.
LLAMA_CPP_PYTHON_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

BINARY = "llama-server"
DMR_BINARY = "com.docker.llama-server"
INFO = "build-info.json"   # beside a binary we built: what it was built for

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


def cmake_flags(cuda=False, extra=()):
    """Our flags, then ``extra`` (CMAKE_ARGS): cmake keeps the last value, so the user's win."""
    flags = list(CMAKE_FLAGS)
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    if cuda:
        flags.append("-DGGML_CUDA=ON")
    return flags + list(extra)


def extra_cmake_args(cuda=None):
    """The build's own cmake arguments: ``CMAKE_ARGS`` (split as a shell would); with none,
    ``-DGGML_CUDA=ON`` when ``cuda`` says so (None: when an NVIDIA GPU and nvcc are here)."""
    extra = shlex.split(os.environ.get("CMAKE_ARGS", ""))
    if not extra and (cuda if cuda is not None else cuda_available()):
        extra = ["-DGGML_CUDA=ON"]
    return extra


def build_key(extra=()):
    """The cache folder's name: the llama-cpp-python version, plus a hash of ``extra``."""
    if not extra:
        return LLAMA_CPP_PYTHON_VERSION
    digest = hashlib.sha256("\0".join(extra).encode()).hexdigest()[:12]
    return f"{LLAMA_CPP_PYTHON_VERSION}-{digest}"


def _log(message):
    print(f"[modelrunner-llamacpp-build] {message}", flush=True)


def cache_dir(extra=None):
    """The cache folder of the build ``extra`` asks for (None: the one this environment asks for)."""
    root = os.environ.get("MODELRUNNER_CACHE_DIR") or "~/.cache/modelrunner"
    key = build_key(extra_cmake_args() if extra is None else extra)
    return Path(os.path.expanduser(root)) / "llama-server" / key


def cached_binary(extra=None):
    return cache_dir(extra) / "bin" / BINARY


def shipped_binary():
    """The binary inside this package, put there when its wheel (or editable install) was built."""
    return Path(__file__).resolve().parent / "bin" / BINARY


def _runnable(path):
    return path.is_file() and os.access(path, os.X_OK)


def cache_usable(path):
    """A cached build we may run or ship: runnable, built for this machine (its build-info.json),
    and out of other users' reach. The binary and every folder above it up to the cache root
    belong to this user (or root) and are not group- or world-writable: a cache someone else
    can write to could hold their binary, which a wheel would then ship."""
    if not _runnable(path):
        return False
    info = read_build_info(path)
    if info and info.get("machine") not in (None, platform.machine()):
        _log(f"ignoring {path}: built for {info.get('machine')}, not {platform.machine()}")
        return False
    if info and info.get("cpu") not in (None, cpu_signature()):
        _log(f"ignoring {path}: a -march=native build for another CPU")
        return False
    root = Path(os.path.expanduser(os.environ.get("MODELRUNNER_CACHE_DIR")
                                   or "~/.cache/modelrunner"))
    here = Path(path)
    while True:
        st = here.stat()
        if st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022:
            _log(f"ignoring the cached build {path}: {here} can be written by others")
            return False
        if here == root or here.parent == here:
            return True
        here = here.parent


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
    if _runnable(shipped_binary()):
        return shipped_binary()
    if cache_usable(cached_binary()):
        return cached_binary()
    found = shutil.which(BINARY)
    return Path(found) if found else None


@functools.lru_cache(maxsize=1)
def cuda_available():
    """True when nvcc is installed and an NVIDIA GPU is visible (nvidia-smi -L lists one)."""
    if not shutil.which("nvcc") or not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def check_sdist(path):
    """Refuse an sdist whose sha256 is not the pinned one (a mirror or index serving other
    bytes under that version)."""
    expected = os.environ.get("MODELRUNNER_LLAMA_CPP_SDIST_SHA256") or LLAMA_CPP_PYTHON_SDIST_SHA256
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise RuntimeError(f"{path.name} has sha256 {digest.hexdigest()}, not the pinned "
                           f"{expected}: refusing to build from it")


def download_source(workdir):
    """pip-download the llama-cpp-python sdist and extract it; returns the llama.cpp source dir."""
    workdir = Path(workdir)
    spec = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
    _log(f"downloading {spec} sdist from PyPI")
    # --no-binary names the one package: ":all:" also built llama-cpp-python's build tools from
    # source (scikit-build-core, hatchling, pathspec, flit_core) just to read its metadata, and
    # failed on a machine with an empty pip cache. The hook variables of our own PEP 517 backend
    # are dropped: a nested build inherited our backend-path and could not find flit_core's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("_PYPROJECT_HOOKS_")}
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--no-binary", "llama-cpp-python", "--dest", str(workdir), spec],
                   check=True, env=env)
    archives = [p for p in (workdir / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz",
                            workdir / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz")
                if p.is_file()]
    if not archives:
        raise RuntimeError(f"pip download left no {spec} sdist in {workdir}")
    check_sdist(archives[0])
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


def configure(source, build_dir, extra=()):
    flags = cmake_flags(extra=extra)
    _log(f"configuring ({describe_gpu(flags)} build{', ' + shlex.join(extra) if extra else ''}) "
         f"in {build_dir}")
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


# What cmake option turns on which GPU backend of ggml, as ``model status`` names it.
GPU_OPTIONS = {"GGML_CUDA": "CUDA", "GGML_HIP": "ROCm", "GGML_VULKAN": "Vulkan",
               "GGML_METAL": "Metal", "GGML_SYCL": "SYCL", "GGML_MUSA": "MUSA",
               "GGML_OPENCL": "OpenCL", "GGML_CANN": "CANN"}
_ON = ("on", "1", "yes", "true", "y")


def _options(flags):
    """{NAME: value} of the ``-DNAME=value`` (or ``-DNAME:TYPE=value``) flags; the last wins."""
    found = {}
    for flag in flags:
        match = re.match(r"-D([A-Za-z0-9_]+)(?::\w+)?=(.*)", flag)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def describe_gpu(flags, system=None):
    """The GPU backends a build with these cmake flags has: "CUDA", "Vulkan", ... or "none".
    ggml turns Metal on by itself on macOS unless told ``-DGGML_METAL=OFF``."""
    options = _options(flags)
    system = system or platform.system()
    found = [name for option, name in GPU_OPTIONS.items()
             if options.get(option, "").lower() in _ON
             or (option == "GGML_METAL" and system == "Darwin" and option not in options)]
    return "+".join(found) or "none"


def build_info(extra):
    """What ``build-info.json`` records beside a binary built with ``extra``: with GGML_NATIVE
    (our default) also the CPU it was compiled for, which :func:`cache_usable` checks."""
    flags = cmake_flags(extra=extra)
    info = {"llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "cmake_args": list(extra),
            "gpu": describe_gpu(flags), "machine": platform.machine()}
    if "-DGGML_NATIVE=ON" in flags and "-DGGML_NATIVE=OFF" not in flags[flags.index(
            "-DGGML_NATIVE=ON"):]:
        info["cpu"] = cpu_signature()
    return info


def cpu_signature():
    """A short hash of this CPU's instruction-set flags (/proc/cpuinfo): a -march=native build
    may use any of them, so another CPU needs its own build."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((l for l in f if l.startswith(("flags", "Features"))), "")
    except OSError:
        return None
    words = sorted(set(line.split(":", 1)[-1].split()))
    return hashlib.sha256(" ".join(words).encode()).hexdigest()[:16] if words else None


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



def read_build_info(binary):
    """The ``build-info.json`` beside ``binary``, or {} (a build made elsewhere)."""
    try:
        return json.loads((Path(binary).parent / INFO).read_text())
    except (OSError, ValueError):
        return {}


def install(binary, target=None, extra=None):
    """Copy ``binary`` to the cache path atomically, with its build-info.json."""
    extra = extra_cmake_args() if extra is None else extra
    target = _atomic_copy(binary, Path(target or cached_binary(extra)))
    _write_info(target.parent, build_info(extra))
    _log(f"installed {target}")
    return target


def build(force=False, jobs=None, cuda=None, workdir=None, configure_only=False, keep=False):
    """Build llama-server into the cache unless it is there; returns the binary path.

    ``CMAKE_ARGS`` (or ``cuda``) chooses the build and so its cache folder. With
    ``configure_only`` it stops after cmake's configure step and returns the build dir.
    """
    extra = extra_cmake_args(cuda)
    target = cached_binary(extra)
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
            configure(source, build_dir, extra=extra)
            if configure_only:
                _log(f"configured in {time.monotonic() - started:.0f}s; stopping (--configure-only)")
                return build_dir
            binary = compile_server(build_dir, jobs=jobs)
            result = install(binary, target, extra=extra)
            _log(f"done in {time.monotonic() - started:.0f}s")
            return result
        finally:
            if not keep and not workdir and not configure_only:
                shutil.rmtree(tmp, ignore_errors=True)


def ship(folder=None, cuda=None):
    """Put the llama-server this environment asks for (``CMAKE_ARGS``) into ``folder`` (default:
    this package's ``bin/``), with its build-info.json: from the cache when a finished build is
    there, else built into the cache first. What the wheel build calls; returns the binary."""
    folder = Path(folder) if folder else shipped_binary().parent
    extra = extra_cmake_args(cuda)
    cached = cached_binary(extra)
    if cache_usable(cached):
        _log(f"reusing the finished build {cached}")
    else:
        cached = build(cuda=cuda)
    info = read_build_info(cached)
    if not info:
        # a build made before build-info.json existed: its cache key says how it was built
        info = build_info(extra)
        _write_info(cached.parent, info)
    target = folder / BINARY
    if not (target.is_file() and read_build_info(target) == info
            and target.stat().st_size == cached.stat().st_size):
        _atomic_copy(cached, target)
        folder.mkdir(parents=True, exist_ok=True)
        _write_info(folder, info)
    _log(f"shipping {target} (GPU backend: {info['gpu']})")
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="modelrunner-llamacpp-build",
        description=f"Find or build llama-server (llama.cpp from llama-cpp-python "
                    f"{LLAMA_CPP_PYTHON_VERSION}) for modelrunner's llama.cpp engine. "
                    f"CMAKE_ARGS chooses the build (-DGGML_CUDA=on, -DGGML_VULKAN=on, ...).")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has it")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs")
    gpu = parser.add_mutually_exclusive_group()
    gpu.add_argument("--cuda", dest="cuda", action="store_true", default=None,
                     help="force a CUDA build (when CMAKE_ARGS is empty)")
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
        if not args.configure_only and os.access(shipped_binary().parent.parent, os.W_OK):
            # the package's own copy comes first in the lookup: a rebuild replaces it too
            result = ship(cuda=args.cuda)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        _log(f"failed: {exc}")
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
