"""The llama.cpp engine: GGUF models served by llama.cpp's own ``llama-server``.

Each loaded model is one ``llama-server`` process at the address the scheduler gives (a Unix
socket today), its argv built by :mod:`modelrunner_llamacpp.args`. The binary comes from
:mod:`modelrunner_llamacpp.build` (shipped in the package by the wheel build); this module asks
it what it supports (``--help``, ``--list-devices``, its system info) once per binary.
"""

import os
import re
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import modelrunner
from modelrunner import ConfigureOption, Engine, EngineError, RunnerCommand, engine_args

from . import memory, prompt_cache, templates
from .args import (RUNTIME_FLAGS, build_argv, chat_template, plan, reasoning_budget, speculative,
                   take_flag)
from .build import find_llama_server, read_build_info

BUILD_HINT = "run: modelrunner-llamacpp-build"


# ggml's backend registration functions, as found in a binary's symbols or strings; and the
# names its system info gives backends, where they differ from ours.
SYSTEM_INFO_NAMES = {"MTL": "Metal", "BLAS": None, "CPU": None}
GPU_SYMBOLS = {b"ggml_backend_cuda_reg": "CUDA", b"ggml_backend_vk_reg": "Vulkan",
               b"ggml_backend_metal_reg": "Metal", b"ggml_backend_sycl_reg": "SYCL",
               b"ggml_backend_opencl_reg": "OpenCL", b"ggml_backend_cann_reg": "CANN"}


class _BinaryInfo:
    """What one llama-server binary supports: version, flags from --help, GPU devices, and
    what it was built for (build-info.json beside our builds; else read from the binary)."""

    def __init__(self, path):
        self.path = Path(path)
        self.version = self._version()
        self.flags = self._flags()
        self.gpu = self._gpu()
        self.amx, self.gpu_backends = self._scan()
        self.build = read_build_info(self.path)
        self.system_info = self._system_info()

    def _run(self, *args):
        try:
            out = subprocess.run([str(self.path), *args], capture_output=True, text=True,
                                 timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"error: {exc}"
        return (out.stdout or "") + (out.stderr or "")

    def _version(self):
        match = re.search(r"^version:\s*(.+)$", self._run("--version"), re.MULTILINE)
        return match.group(1).strip() if match else "unknown"

    def _flags(self):
        return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", self._run("--help")))

    def _gpu(self):
        if "--list-devices" not in self.flags:
            return False
        text = self._run("--list-devices")
        devices = text.split("Available devices:", 1)[-1]
        # A CPU-only build lists "(none)"; a GPU build lists e.g. "CUDA0: NVIDIA H100 (...)".
        return any(re.match(r"^\s*\w+\d+:", line) for line in devices.splitlines())

    def _system_info(self):
        """{backend: [features on]} from llama.cpp's own system info line, e.g. {"CPU": ["SSE3",
        "AVX2", ...], "CUDA": ["USE_GRAPHS", ...]}: what this binary was compiled for. Verbose
        logging prints it before the model loads, so a missing model file gets it in
        milliseconds, with nothing loaded."""
        with tempfile.TemporaryDirectory(prefix="mr-llama-probe-") as tmp:
            text = self._run("-m", f"{tmp}/none.gguf", "--host", f"{tmp}/probe.sock", "-lv", "4")
        match = re.search(r"system_info: [^|]*\|(.*)$", text, re.MULTILINE)
        found, backend = {}, None
        for part in (match.group(1).split("|") if match else []):
            head, sep, rest = part.partition(" : ")
            if sep:
                backend, part = head.strip(), rest
                found.setdefault(backend, [])
            key, _, value = part.partition("=")
            if backend and key.strip() and value.strip() not in ("0", ""):
                found[backend].append(key.strip())
        return found

    def _scan(self):
        """(AMX, GPU backends) compiled in: ggml's AMX matmul crashes on Q4_1 weights (see
        build.py); the backends name what the binary can offload to, GPU or not."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return False, "unknown"
        gpus = [name for symbol, name in GPU_SYMBOLS.items() if symbol in data]
        return b"AMX is not ready to be used!" in data, "+".join(gpus) or "none"

    def describe(self):
        """Engine.build_info: version, GPU backend, CPU features (from llama.cpp's system info),
        and for our own builds the llama-cpp-python source and CMAKE_ARGS (build-info.json)."""
        gpus = {SYSTEM_INFO_NAMES.get(b, b) for b in self.system_info} - {None}
        gpus |= set(self.gpu_backends.split("+")) - {"none", "unknown"}
        info = {"version": f"llama-server {self.version}", "gpu": "+".join(sorted(gpus)) or "none",
                "cpu_features": self.system_info.get("CPU", []), "path": str(self.path)}
        if self.build:
            info["source"] = f"llama-cpp-python {self.build.get('llama_cpp_python')} sdist"
            info["cmake_args"] = " ".join(self.build.get("cmake_args") or [])
        return info

    def has(self, flag):
        return flag in self.flags


_info_cache = {}
_info_lock = threading.Lock()


def binary_info(path):
    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _info_lock:
        if key not in _info_cache:
            _info_cache[key] = _BinaryInfo(path)
        return _info_cache[key]


def _gguf_metadata(bundle):
    """The model's GGUF key/values: the artifact config's ``gguf`` map, else read from the file."""
    meta = bundle.config.get("gguf") if isinstance(bundle.config, dict) else None
    if meta and meta.get("general.architecture"):
        return dict(meta)
    files = bundle.gguf_files
    # read here, not at import: API workers load this module and never import gguf
    return modelrunner.model_files.read_gguf(files[0])["gguf"] if files else {}


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    api_key_env = "LLAMA_API_KEY"  # llama-server --api-key, from the environment (not argv)
    formats = ("gguf",)
    modes = ("completion", "embedding", "reranking")
    install_hint = BUILD_HINT
    runtime_flags = RUNTIME_FLAGS
    # a chat runner's slots are saved into the store's cache area before it stops and restored
    # when the next one starts (prompt_cache.py)
    prompt_cache = True
    configure_blocks = ("llamacpp", "speculative")

    @property
    def long_prompts_at_once(self):
        """``llamacpp_long_prompts_at_once`` (1): llama-server gives a request the first free
        slot, in the order they came, and fills each batch slot by slot, so a returning
        session's few new tokens queue behind every long prompt sent before it."""
        try:
            return max(0, int(self.setting("llamacpp_long_prompts_at_once") or 0)) or None
        except (TypeError, ValueError):
            return 1
    env_prefixes = ("LLAMA_",)  # llama-server reads LLAMA_ARG_* (and LLAMA_ARGS, as DMR's)
    # DMR's `configure` options for the llamacpp block (reasoning-budget before think: an
    # explicit budget wins over --think)
    configure_options = (
        ConfigureOption("reasoning-budget", "llamacpp", "reasoning-budget", "int", metavar="N",
                        help="thinking tokens: -1 unlimited, 0 none, N at most N"),
        ConfigureOption("think", "llamacpp", "reasoning-budget", "bool",
                        values={"true": -1, "false": 0},
                        help="let a reasoning model think (reasoning budget -1) or not (0)"),
        ConfigureOption("chat-template", "llamacpp", "chat-template", "text-or-file",
                        metavar="NAME|FILE",
                        help="a built-in chat template (gemma, llama3, chatml...; auto: the "
                             "model's own or the one for its architecture) or a Jinja template "
                             "file"),
    )
    defaults = {
        "llama_server_path": None,   # the binary (also LLAMA_SERVER_PATH); default: the cache
        "llamacpp_slots": 4,         # parallel request slots per runner (--parallel)
        # long uncached prompts a runner processes at once (the rest wait, in order, so a
        # returning session is not queued behind them: its slot would be taken); 0 = no limit
        "llamacpp_long_prompts_at_once": 1,
        "llamacpp_threads": 0,       # --threads; 0 = the number of physical cores
        "llamacpp_batch_size": None,  # --batch-size; unset = llama-server's default
        "llamacpp_mmap": True,       # false adds --load-mode none (--no-mmap on older builds)
        "llamacpp_gpu_layers": None,  # -ngl; unset = 999 when the build has a GPU backend
    }

    def __init__(self, settings=None):
        super().__init__(settings)
        # the binding of each chat runner's saved slots, by its argv (which holds its socket):
        # made when its command is built (pending), kept from after_ready to before_stop (live)
        self._pending, self._live = {}, {}
        self._bindings_lock = threading.Lock()

    def binary(self):
        return find_llama_server(self.settings)

    def validate_configure(self, blocks):
        """``llamacpp.reasoning-budget`` must be an int >= -1, ``speculative``'s numbers in
        range, ``llamacpp.chat-template`` a built-in name or a template's text (a 400 at
        `_configure` time)."""
        try:
            reasoning_budget(modelrunner.RunnerConfig(extra=dict(blocks)))
            speculative(modelrunner.RunnerConfig(extra=dict(blocks)))
            block = blocks.get("llamacpp") or {}
            if "chat-template" in block:
                templates.check(block["chat-template"])
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    def validate_runtime_flags(self, flags):
        """The allow-list, and ``--chat-template`` names one of llama.cpp's built-in templates
        (a file or a template's text goes through ``configure --chat-template``)."""
        super().validate_runtime_flags(flags)
        value, _ = take_flag(
            engine_args.split_flags([f for f in flags if isinstance(f, str)]), ("--chat-template",))
        try:
            if value is not None:
                templates.check(value, text_allowed=False)
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    def installed(self):
        path = self.binary()
        if path is None:
            return False, BUILD_HINT
        try:
            info = binary_info(path)
        except OSError as exc:
            return False, f"llama-server at {path} cannot run ({exc}); {BUILD_HINT}"
        if info.version == "unknown" and not info.flags:
            return False, f"llama-server at {path} does not run; {BUILD_HINT}"
        return True, f"llama-server {info.version} at {path}"

    def build_info(self):
        path = self.binary()
        if path is None:
            return {}
        try:
            return binary_info(path).describe()
        except OSError:
            return {}

    def gpus(self, bundle, config):
        """One GPU for a build with a GPU backend compiled in (llama-server offloads all the
        layers it can to what it sees; a placement that hands out none would hide them all),
        none for a CPU build."""
        binary = self.binary()
        try:
            return 1 if binary is not None and binary_info(binary).gpu_backends not in (
                "none", "unknown") else 0
        except OSError:
            return 0

    def command(self, bundle, config, address):
        if not bundle.gguf_files:
            raise EngineError(f"model {bundle.model_id} has no GGUF file", status=400)
        binary = self.binary()
        if binary is None:
            raise EngineError(f"llama-server is not installed: {BUILD_HINT}", status=412)
        info = binary_info(binary)
        meta, tokens = self._template_inputs(bundle, config)
        try:
            argv = build_argv(
                binary, bundle, config, address, has=info.has, gpu=info.gpu, amx=info.amx,
                has_pooling=config.mode != "embedding" or self._has_pooling(bundle),
                slots=self.setting("llamacpp_slots"), threads=self.setting("llamacpp_threads"),
                batch_size=self.setting("llamacpp_batch_size"),
                mmap=self.setting("llamacpp_mmap"), gpu_layers=self.setting("llamacpp_gpu_layers"),
                meta=meta, tokens=tokens, slot_save_path=self._slot_save_path(bundle, config, info))
        except ValueError as exc:  # a draft model without GGUF, a bad configured block
            raise EngineError(str(exc)) from None
        choice = chat_template(bundle, config, meta, tokens)
        # a configured template's text: in the environment, not in argv (the runner log prints it)
        env = {"LLAMA_ARG_CHAT_TEMPLATE": choice.text} if choice and choice.text else {}
        if "--slot-save-path" in argv:
            self._remember_binding(bundle, config, info, argv, env)
        return RunnerCommand(argv=argv, env=env, health_path="/health")

    @staticmethod
    def _slot_save_path(bundle, config, info):
        """The cache folder the scheduler gave a chat runner, when this llama-server can save
        slots there. Not for a multimodal runner: llama-server refuses (501) to save or restore
        the slots of one."""
        if bundle.cache_dir is None or config.mode != "completion" or bundle.mmproj or \
                not info.has("--slot-save-path"):
            return None
        return bundle.cache_dir

    def _remember_binding(self, bundle, config, info, argv, env):
        """Bind the saves of the runner ``argv`` starts to what starts it: this binary's build as
        it is now (an in-place upgrade while it runs must not relabel its KV as the new build's),
        its KV-shaping flags and environment (the server's LLAMA_* that reach it, then the
        command's), and the model's KV bytes per token (to size a save before writing it)."""
        bound = prompt_cache.binding(bundle.model_id, info.describe(), argv, {**os.environ, **env})
        try:
            _, per_token = self._memory_parts(bundle, config, self._shape(self._metadata(bundle)),
                                              1)
        except Exception:  # noqa: BLE001 - no shape: sizes are learnt from earlier saves
            per_token = None
        with self._bindings_lock:
            self._pending[tuple(argv)] = (bound, per_token)
            while len(self._pending) > 64:  # commands built but never started (checks)
                self._pending.pop(next(iter(self._pending)))

    def _cache_binding(self, runner):
        """(the runner's binding for its saved slots, the model's KV bytes per token), or None
        when it saves none: the one computed when its command was built."""
        argv = list(runner.command.argv) if runner.command is not None else []
        if runner.cache_dir is None or "--slot-save-path" not in argv:
            return None
        key = tuple(argv)
        with self._bindings_lock:
            found = self._live.get(key) or self._pending.pop(key, None)
        if found is None:  # a command this engine did not build: what runs is the binary there
            try:
                build = binary_info(argv[0]).describe()
            except OSError:
                return None
            found = (prompt_cache.binding(runner.bundle.model_id, build, argv,
                                          {**os.environ, **runner.command.env}), None)
        with self._bindings_lock:
            self._live[key] = found
            while len(self._live) > 1024:  # runners that crashed (no before_stop)
                self._live.pop(next(iter(self._live)))
        return found

    def _cache_budget(self):
        """The prompt cache area's byte budget (``prompt_cache_budget``), None when unbounded or
        unreadable (the area then is off, and no runner gets a folder)."""
        try:
            return modelrunner.units.parse_bytes(
                self.settings.get("prompt_cache_budget", None)) or None
        except Exception:  # noqa: BLE001 - "off", unset, a typo: the core reports it
            return None

    def after_ready(self, runner):
        """Restore the newest prompt caches saved for this model, build and settings into the new
        runner's slots, before any request reaches it (prompt_cache.py)."""
        found = self._cache_binding(runner)
        if found is not None:
            restored = prompt_cache.restore(runner, found[0])
            if restored:
                prompt_cache.log.info("restored %d saved prompt(s) into %s", len(restored),
                                      runner.bundle.model_id)

    def before_stop(self, runner):
        """Save each slot that took a request into the store's cache area, within its budget
        (prompt_cache.py)."""
        found = self._cache_binding(runner)
        if found is not None:
            try:
                prompt_cache.save(runner, found[0], budget=self._cache_budget(),
                                  kv_per_token=found[1])
            finally:
                with self._bindings_lock:
                    self._live.pop(tuple(runner.command.argv), None)

    def runner_details(self, bundle, config):
        """``{"chat_template": which template runs and why}`` for ``model ps``."""
        choice = chat_template(bundle, config, *self._template_inputs(bundle, config))
        return {"chat_template": choice.why} if choice else {}

    def model_details(self, bundle, config):
        """The same for ``model inspect`` and GET /models/{ref}: which template a chat runner
        of the model would use, and why, before any runner starts."""
        return self.runner_details(bundle, config)

    def _template_inputs(self, bundle, config):
        """(GGUF key/values, the template tokens of its vocabulary) for :func:`chat_template`:
        read only for a completion runner with no configured or packaged template. A config map
        without ``tokenizer.chat_template`` is checked against the file itself, so a packager
        that left the key out never gets a GGUF's own template overridden."""
        if (config.mode != "completion" or templates.configured(config) is not None
                or bundle.chat_template is not None or not bundle.gguf_files):
            return None, ()
        meta = self._metadata(bundle)
        if not meta.get("tokenizer.chat_template"):
            try:
                meta = modelrunner.model_files.read_gguf(bundle.gguf_files[0])["gguf"]
            except Exception:  # noqa: BLE001 - an unreadable file fails at load, not here
                return None, ()
        if meta.get("tokenizer.chat_template"):
            return meta, ()
        try:
            return meta, templates.vocab_markers(bundle.gguf_files[0])
        except (OSError, ValueError, struct.error):
            return meta, ()

    def _has_pooling(self, bundle):
        try:
            meta = _gguf_metadata(bundle)
        except Exception:  # noqa: BLE001 - an unreadable file fails at load, not here
            return True
        arch = str(meta.get("general.architecture", ""))
        return f"{arch}.pooling_type" in meta

    def choose_context(self, bundle, config, budget):
        """The context each request gets: the configured one exactly, else the largest that fits.

        Configured means ``--ctx-size``/``-c`` among the runtime flags, ``_configure``'s
        context-size (-1: the model's maximum), or a context packaged into the model that differs
        from the GGUF's own maximum (``model package --context-size``). Anything else is fitted
        to ``budget`` with this runner's slots (:func:`memory.fit_context`), from the same parts
        as :meth:`estimate_memory`.
        """
        meta = self._metadata(bundle)
        shape = self._shape(meta)
        flags = engine_args.split_flags(list(config.runtime_flags or []))
        ctx_flag, _ = take_flag(flags, ("--ctx-size", "-c"))
        configured, how = engine_args.as_int(ctx_flag), "configured (--ctx-size runtime flag)"
        if configured is None and config.context_size is not None:
            configured, how = engine_args.as_int(config.context_size), "configured"
        if configured is not None:
            if configured > 0:
                return configured, how
            return shape.max_context, "configured: the model's maximum"
        packaged = engine_args.as_int((bundle.config or {}).get("context_size"))
        if packaged and packaged > 0 and packaged != shape.max_context:
            return packaged, "packaged with the model"
        slots = plan(bundle, config, self.setting("llamacpp_slots"))["slots"]
        fixed, per_token = self._memory_parts(bundle, config, shape, slots)
        return memory.fit_context(fixed, per_token, slots, budget, shape.max_context)

    def estimate_memory(self, bundle, config):
        """Weights (the GGUF files, mmapped and all touched) + KV cache + compute buffers.

        KV bytes = pool tokens * sum over layers of head_count_kv * (key_length + value_length)
        * the cache type's bytes (f16: 2), the pool being the ``--ctx-size`` of :func:`args.plan`
        (slots * the context :meth:`choose_context` gave; the model's training context when
        none is configured). See :mod:`modelrunner_llamacpp.memory`.
        """
        shape = self._shape(self._metadata(bundle))
        the_plan = plan(bundle, config, self.setting("llamacpp_slots"))
        pool = the_plan["pool"] or shape.max_context or memory.UNKNOWN_MAX
        fixed, per_token = self._memory_parts(bundle, config, shape, the_plan["slots"])
        total = fixed + memory.pool_bytes(per_token, pool)
        draft = getattr(bundle, "draft", None)
        if draft is not None:  # the draft model's weights and its own cache, for the same pool
            draft_shape = self._shape(self._metadata(draft))
            draft_fixed, draft_per_token = self._memory_parts(draft, config, draft_shape,
                                                              the_plan["slots"])
            total += draft_fixed + memory.pool_bytes(draft_per_token, pool)
        return int(total)

    @staticmethod
    def _shape(meta):
        try:
            return memory.model_shape(meta)
        except memory.BadShape as exc:
            raise EngineError(str(exc)) from None

    def _metadata(self, bundle):
        try:
            return _gguf_metadata(bundle)
        except Exception:  # noqa: BLE001 - an unreadable file fails at load, not here
            return {}

    def _memory_parts(self, bundle, config, shape, slots):
        weights = sum(p.stat().st_size for p in bundle.gguf_files)
        if bundle.mmproj:
            weights += bundle.mmproj.stat().st_size
        flags = engine_args.split_flags(list(config.runtime_flags or []))
        cache_k, _ = take_flag(flags, ("--cache-type-k", "-ctk"))
        cache_v, _ = take_flag(flags, ("--cache-type-v", "-ctv"))
        return memory.memory_parts(weights, shape, slots, self.setting("llamacpp_batch_size"),
                                   cache_k or "f16", cache_v or "f16")
