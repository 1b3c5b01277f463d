"""`model status` says which llama.cpp build runs: version, GPU backend, CPU features."""

import json
import re
from pathlib import Path

import pytest

# llama.cpp's names for x86 CPU features, and the /proc/cpuinfo flag of each
CPUINFO_FLAGS = {"SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c",
                 "FMA": "fma", "BMI2": "bmi2", "AVX_VNNI": "avx_vnni", "AVX512": "avx512f",
                 "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni",
                 "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8"}


def test_status_names_the_llama_server_build_that_runs(server, engine, llama_server):
    status = json.loads(server.model("status", "--json").stdout)
    build = status["builds"]["llama.cpp"]
    assert build["version"].startswith("llama-server ")
    assert build["path"] == str(engine.binary())
    assert build["gpu"] in ("none", "CUDA", "Vulkan", "Metal", "ROCm", "SYCL") or "+" in build["gpu"]
    assert build["cpu_features"], build
    assert status["backends"]["llama.cpp"].startswith("Running: llama-server")  # DMR's shape
    text = server.model("status").stdout
    line = next(line for line in text.splitlines() if line.startswith("llama.cpp build: "))
    assert build["version"] in line and f"GPU: {build['gpu']}" in line
    assert "CPU: " + " ".join(build["cpu_features"]) in line


def test_a_native_build_claims_only_cpu_features_this_machine_has(engine, llama_server):
    """The features come from llama.cpp's own system info: a build for another CPU would list
    what this one lacks (and die on an illegal instruction)."""
    features = engine.build_info()["cpu_features"]
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or "flags" not in cpuinfo.read_text():
        pytest.skip("not x86 Linux: no /proc/cpuinfo flags to compare with")
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.MULTILINE).group(1).split())
    claimed = {f for f in features if f in CPUINFO_FLAGS}
    assert claimed, features
    assert {f for f in claimed if CPUINFO_FLAGS[f] not in flags} == set()
