"""The diffusers runner: one pipeline, served over HTTP on a Unix socket (or, placed on another
machine, on a TCP address, where it requires its API key).

    python -m modelrunner_diffusers.runner --model DIR_OR_DDUF (--socket PATH | --host H --port P)
        [--device auto|cpu|cuda[:N]|mps] [--dtype auto|float16|bfloat16|float32]
        [--steps 50] [--max-scale 2] [--threads 0]

Routes (DMR's ``python/diffusers_server/server.py`` and OpenAI's Images API):

``GET /health``                  200 ``{"status":"ok"}`` once the pipeline is loaded, 503 before
``GET /v1/models``               the loaded model
``POST /v1/images/generations``  ``{model, prompt, n (1-10), size "WxH", response_format
                                 "b64_json", negative_prompt, num_inference_steps, guidance_scale,
                                 seed}`` -> ``{created, data: [{b64_json}]}`` (PNG)

A ``.dduf`` model is loaded with ``from_pretrained(dir, dduf_file=name)`` where diffusers still
supports that, else unpacked once beside the file (see :func:`extract_dduf`).

No 421 for another model name: the gateway already chose this runner by the model's ID.

One generation runs at a time (a lock); the others wait. Bad requests get 400 with OpenAI's error
object. A request with a ``seed`` gives the same PNG bytes every time. Progress ("step i/N") goes
to stdout, which the scheduler writes to the runner's log file.
"""

import argparse
import base64
import hmac
import importlib
import importlib.metadata
import importlib.util
import inspect
import io
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import ThreadingHTTPServer

from modelrunner import JSONRequestHandler, UnixHTTPServer

MAX_BODY = 10 * 2**20
# the engine's api_key_env: with it set, every request but /health needs "Authorization: Bearer"
API_KEY_ENV = "MODELRUNNER_DIFFUSERS_API_KEY"
MAX_IMAGES = 10
MAX_STEPS = 1000
SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


def log(message):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


class RequestError(Exception):
    """A request we refuse: HTTP status, OpenAI error type, the parameter at fault."""

    def __init__(self, message, status=400, kind="invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param
        self.code = code

    def body(self):
        return {"error": {"message": str(self), "type": self.kind, "param": self.param,
                          "code": self.code}}


# -- environment ---------------------------------------------------------------------------------


def hide_broken_torch_extensions(names=("torchaudio", "torchvision")):
    """Make installed-but-unloadable torchaudio/torchvision invisible to transformers/diffusers.

    transformers imports torchaudio whenever it is installed (``audio_utils``), and torchvision
    when it is; a build made for another torch fails to load its native library, which would take
    every pipeline down with it. Image generation needs neither, so one that does not import is
    hidden (``sys.modules[name] = None`` makes ``find_spec`` answer None and imports fail cleanly).
    Returns the names hidden.
    """
    hidden = []
    for name in names:
        if name in sys.modules:
            continue
        if importlib.util.find_spec(name) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure means: unusable here
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            sys.modules[name] = None
            hidden.append(name)
            log(f"{name} is installed but does not load beside this torch ({type(e).__name__}); "
                f"ignoring it")
    return hidden


# -- the pipeline --------------------------------------------------------------------------------


class Generator:
    """A loaded diffusers pipeline and what requests may ask of it."""

    def __init__(self, model, device="auto", dtype="auto", steps=50, max_scale=2.0, threads=0):
        self.model = model
        self.threads = threads
        self.requested_device = device
        self.requested_dtype = dtype
        self.default_steps = steps
        self.max_scale = max_scale
        self.pipe = None
        self.lock = threading.Lock()

    def load(self):
        hide_broken_torch_extensions()
        started = time.monotonic()
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as dlogging

        dlogging.disable_progress_bar()
        self.torch = torch
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        device = self.requested_device
        if device == "auto":
            if torch.cuda.is_available():
                device = "cuda"
            elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        dtype_name = self.requested_dtype
        if dtype_name == "auto":
            dtype_name = "float16" if device.startswith(("cuda", "mps")) else "float32"
        dtype = getattr(torch, dtype_name)
        self.device, self.dtype_name = device, dtype_name

        path = os.path.abspath(self.model)
        log(f"loading {path} on {device} in {dtype_name} (torch {torch.__version__}, "
            f"diffusers {_version('diffusers')}, {torch.get_num_threads()} CPU threads)")
        # diffusers renamed torch_dtype to dtype (the old name warns); use what it knows
        from diffusers.pipelines import pipeline_utils

        dtype_kw = {"dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype": dtype}
        if path.endswith(".dduf") and _reads_dduf():
            pipe = DiffusionPipeline.from_pretrained(os.path.dirname(path),
                                                     dduf_file=os.path.basename(path), **dtype_kw)
        elif path.endswith(".dduf"):
            folder = extract_dduf(path)
            pipe = DiffusionPipeline.from_pretrained(folder, **dtype_kw)
        else:
            pipe = DiffusionPipeline.from_pretrained(path, **dtype_kw)
        pipe = pipe.to(device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.default_size = self._default_size()
        self.call_params = set(inspect.signature(pipe.__call__).parameters)
        log(f"loaded {type(pipe).__name__} in {time.monotonic() - started:.1f}s; default size "
            f"{self.default_size[0]}x{self.default_size[1]}, sizes "
            f"{self.min_side}..{self.max_side} in steps of 8")

    def _default_size(self):
        pipe = self.pipe
        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        side = getattr(pipe, "default_sample_size", None)
        if side:
            side = int(side) * scale
        else:
            for name in ("unet", "transformer", "prior"):
                component = getattr(pipe, name, None)
                sample = getattr(getattr(component, "config", None), "sample_size", None)
                if sample:
                    side = (sample[0] if isinstance(sample, (list, tuple)) else int(sample)) * scale
                    break
        side = int(side or 512)
        return side, side

    @property
    def min_side(self):
        return max(8, 8 * int(getattr(self.pipe, "vae_scale_factor", 8) or 8))

    @property
    def max_side(self):
        return int(max(self.default_size) * self.max_scale) // 8 * 8

    # -- requests -------------------------------------------------------------------------------

    def parse(self, body):
        """Validate an images request; returns the keyword arguments for :meth:`generate`."""
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestError("prompt is required and must be a non-empty string", param="prompt")
        n = body.get("n", 1)
        if n is None:
            n = 1
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise RequestError(f"n must be an integer from 1 to {MAX_IMAGES}, got {n!r}",
                               param="n")
        fmt = body.get("response_format") or "b64_json"
        if fmt == "url":
            raise RequestError("response_format 'url' is not supported: this server stores no "
                               "images; use 'b64_json'", param="response_format")
        if fmt != "b64_json":
            raise RequestError(f"response_format must be 'b64_json', got {fmt!r}",
                               param="response_format")
        width, height = self.parse_size(body.get("size"))
        negative = body.get("negative_prompt")
        if negative is not None and not isinstance(negative, str):
            raise RequestError("negative_prompt must be a string", param="negative_prompt")
        steps = body.get("num_inference_steps")
        if steps is None:
            steps = self.default_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise RequestError(f"num_inference_steps must be an integer from 1 to {MAX_STEPS}",
                               param="num_inference_steps")
        guidance = body.get("guidance_scale")
        if guidance is None:
            guidance = 7.5
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
                or not 0 <= guidance <= 100:
            raise RequestError("guidance_scale must be a number from 0 to 100",
                               param="guidance_scale")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or not 0 <= seed < 2**63):
            raise RequestError("seed must be a non-negative integer", param="seed")
        return {"prompt": prompt, "n": n, "width": width, "height": height,
                "negative_prompt": negative or None, "steps": steps,
                "guidance_scale": float(guidance), "seed": seed}

    def parse_size(self, size):
        if size is None or size == "auto":
            return self.default_size
        if not isinstance(size, str):
            raise RequestError(f"size must be a string like '{self.default_size[0]}x"
                               f"{self.default_size[1]}'", param="size")
        match = SIZE_RE.match(size)
        if not match:
            raise RequestError(f"size {size!r} is not WIDTHxHEIGHT (e.g. '{self.default_size[0]}x"
                               f"{self.default_size[1]}')", param="size")
        width, height = int(match.group(1)), int(match.group(2))
        if width % 8 or height % 8:
            raise RequestError(f"size {size!r}: width and height must be multiples of 8",
                               param="size")
        lo, hi = self.min_side, self.max_side
        if not (lo <= width <= hi and lo <= height <= hi):
            raise RequestError(f"size {size!r} is outside what this model supports: each side "
                               f"from {lo} to {hi} (default {self.default_size[0]}x"
                               f"{self.default_size[1]})", param="size")
        return width, height

    def generate(self, prompt, n, width, height, negative_prompt, steps, guidance_scale, seed):
        """Run the pipeline; returns a list of PNG bytes."""
        torch = self.torch
        kwargs = {"prompt": prompt, "num_images_per_prompt": n, "width": width, "height": height,
                  "num_inference_steps": steps, "output_type": "pil"}
        if "guidance_scale" in self.call_params:
            kwargs["guidance_scale"] = guidance_scale
        if negative_prompt and "negative_prompt" in self.call_params:
            kwargs["negative_prompt"] = negative_prompt
        if seed is not None:
            # A CPU generator gives the same noise on every device; a cuda generator is faster
            # on cuda. Either way the same seed gives the same image on the same machine.
            gen_device = self.device if self.device.startswith("cuda") else "cpu"
            kwargs["generator"] = torch.Generator(device=gen_device).manual_seed(seed)
        started = time.monotonic()

        def progress(pipe, step, timestep, callback_kwargs):
            log(f"step {step + 1}/{steps} ({time.monotonic() - started:.1f}s)")
            return callback_kwargs

        if "callback_on_step_end" in self.call_params:
            kwargs["callback_on_step_end"] = progress
        with self.lock:
            log(f"generating {n} image(s) {width}x{height}, {steps} steps, seed {seed}")
            with torch.inference_mode():
                result = self.pipe(**kwargs)
            images = result.images if hasattr(result, "images") else result[0]
            pngs = [png_bytes(image) for image in images]
        log(f"generated {len(pngs)} image(s) in {time.monotonic() - started:.1f}s")
        return pngs


def _reads_dduf():
    """Whether this diffusers loads DDUF files itself (``from_pretrained(..., dduf_file=)``).

    diffusers 0.32 added it; later releases removed it again ("Loading pipelines from DDUF files
    is no longer supported"), so the source is read rather than the version.
    """
    try:
        from diffusers import DiffusionPipeline

        source = inspect.getsource(DiffusionPipeline.from_pretrained)
    except Exception:  # noqa: BLE001 - no source to read: extract, which always works
        return False
    return "dduf_file" in source and "DDUF_REMOVAL" not in source


def extract_dduf(path):
    """Unpack a DDUF (a zip of a pipeline folder, stored uncompressed) beside itself, once.

    The folder is ``.<name>.extracted`` in the file's directory (inside the model's bundle, so
    it goes when the model is removed) and is reused while the file's size and mtime match.
    Entries that would land outside the folder are refused.
    """
    import shutil
    import zipfile

    src = os.path.abspath(path)
    parent, name = os.path.split(src)
    target = os.path.join(parent, f".{name}.extracted")
    st = os.stat(src)
    stamp = f"{st.st_size} {st.st_mtime_ns}\n"
    marker = os.path.join(target, ".dduf-source")
    try:
        with open(marker) as f:
            if f.read() == stamp:
                return target
    except OSError:
        pass
    started = time.monotonic()
    tmp = f"{target}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        with zipfile.ZipFile(src) as zf:
            names = zf.namelist()
            if "model_index.json" not in names:
                raise RuntimeError(f"{name} is not a DDUF pipeline: it has no model_index.json")
            for info in zf.infolist():
                parts = info.filename.replace("\\", "/").split("/")
                if info.filename.startswith("/") or ".." in parts:
                    raise RuntimeError(f"{name}: entry {info.filename!r} escapes the archive")
            zf.extractall(tmp)
        with open(os.path.join(tmp, ".dduf-source"), "w") as f:
            f.write(stamp)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"extracted {name} ({len(names)} files) in {time.monotonic() - started:.1f}s "
        f"(this diffusers reads no DDUF files itself)")
    return target


def png_bytes(image):
    """PNG encoding with no time or text chunks, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except Exception:  # noqa: BLE001
        return "unknown"


# -- HTTP ----------------------------------------------------------------------------------------


class _Serving:
    """What the handler reads from its server: the pipeline, and whether it is loaded."""

    def __init__(self, address, handler, generator):
        self.generator = generator
        self.ready = False
        self.model_name = os.path.basename(os.path.abspath(generator.model))
        super().__init__(address, handler)


class RunnerServer(_Serving, UnixHTTPServer):
    allow_reuse_address = True


class NetworkRunnerServer(_Serving, ThreadingHTTPServer):
    """On a TCP address (a runner placed on another machine): only with an API key set."""

    daemon_threads = True

    def __init__(self, address, handler, generator):
        if ":" in address[0]:  # an IPv6 host
            self.address_family = socket.AF_INET6
        super().__init__(address, handler, generator)


class Handler(JSONRequestHandler):
    server_version = "modelrunner-diffusers"

    def address_string(self):
        return "gateway"  # a Unix socket has no client address; on TCP only the gateway has the key

    def log_message(self, fmt, *args):
        if getattr(self, "_quiet", False):
            return
        log(f"{self.command} {self.path} -> " + (fmt % args).split('" ', 1)[-1])

    def _send(self, status, payload):
        self.send_json(status, payload)

    def _authorized(self):
        """The scheduler's secret, when it gave one, is on the request; else a 401 is sent."""
        key = os.environ.get(API_KEY_ENV)
        if not key:
            return True
        given = self.headers.get("Authorization") or ""
        if hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        self.close_connection = True
        self._send(401, RequestError("invalid API key", status=401,
                                     kind="authentication_error").body())
        return False

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path != "/health" and not self._authorized():
            return
        if path == "/health":
            self._quiet = True  # polled every 50 ms while loading
            if self.server.ready:
                self._send(200, {"status": "ok"})
            else:
                self._send(503, {"status": "loading"})
        elif path in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name,
                                                         "object": "model", "created": 0,
                                                         "owned_by": "docker"}]})
        else:
            self._send(404, RequestError(f"no route GET {path}", status=404,
                                         kind="not_found_error").body())

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if not self._authorized():
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(413 if length > MAX_BODY else 400,
                       RequestError("request body too large or without Content-Length").body())
            return
        raw = self.rfile.read(length) if length else b""
        if path not in ("/v1/images/generations", "/images/generations"):
            self._send(404, RequestError(f"no route POST {path}", status=404,
                                         kind="not_found_error").body())
            return
        if not self.server.ready:
            self._send(503, RequestError("the model is still loading", status=503,
                                         kind="server_error").body())
            return
        try:
            try:
                body = json.loads(raw or b"{}")
            except ValueError as e:
                raise RequestError(f"the request body is not valid JSON: {e}") from None
            args = self.server.generator.parse(body)
            pngs = self.server.generator.generate(**args)
        except RequestError as e:
            log(f"400 {e}")
            self._send(e.status, e.body())
            return
        except Exception as e:  # noqa: BLE001 - the pipeline failed: answer, keep serving
            traceback.print_exc()
            sys.stdout.flush()
            self._send(500, RequestError(f"image generation failed: {type(e).__name__}: {e}",
                                         status=500, kind="server_error").body())
            return
        self._send(200, {"created": int(time.time()),
                         "data": [{"b64_json": base64.b64encode(p).decode("ascii")}
                                  for p in pngs]})


def serve(args):
    if args.socket is None and not os.environ.get(API_KEY_ENV):
        log(f"refusing to serve on {args.host}:{args.port} without an API key ({API_KEY_ENV})")
        return 2
    generator = Generator(args.model, device=args.device, dtype=args.dtype, steps=args.steps,
                          max_scale=args.max_scale, threads=args.threads)
    if args.socket is None:
        server = NetworkRunnerServer((args.host, args.port), Handler, generator)
        where = f"{args.host}:{args.port}"
    else:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
        server = RunnerServer(args.socket, Handler, generator)
        where = args.socket
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="http")
    thread.start()

    def stop(signum, frame):
        log(f"signal {signum}: stopping")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        generator.load()
    except Exception:
        traceback.print_exc()
        sys.stdout.flush()
        server.server_close()
        _unlink(args.socket)
        return 1
    server.ready = True
    log(f"ready on {where}")
    thread.join()
    server.server_close()
    _unlink(args.socket)
    return 0


def _unlink(path):
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m modelrunner_diffusers.runner",
                                     description="Serve a diffusers pipeline on a Unix socket "
                                                 "(or a TCP address, with its API key).")
    parser.add_argument("--model", required=True,
                        help="a diffusers pipeline directory (model_index.json) or a .dduf file")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="the Unix socket to listen on")
    where.add_argument("--host", help=f"the address to listen on (needs {API_KEY_ENV})")
    parser.add_argument("--port", type=int, help="the TCP port, with --host")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float16", "bfloat16",
                                                            "float32"))
    parser.add_argument("--steps", type=int, default=50,
                        help="num_inference_steps when a request gives none")
    parser.add_argument("--max-scale", type=float, default=2.0,
                        help="largest side as a multiple of the model's default size")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; 0 = torch's default (one per core)")
    args = parser.parse_args(argv)
    if (args.host is None) != (args.port is None):
        parser.error("--host and --port go together")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
