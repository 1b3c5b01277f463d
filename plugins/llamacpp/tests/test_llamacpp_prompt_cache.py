"""Prompt caches that outlive the runner (issue 30): llama-server's slots saved by the engine's
``before_stop`` into the store's cache area and restored by ``after_ready`` into the next runner.

Real llama-server on SmolLM2, a short agent-like prompt (a system prompt with tools), at
temperature 0, 4 slots of 1,024 tokens: what the scheduler does around a runner's life, driven
by hand with the engine's own RunnerCommand.
"""

import json
import os
import shutil
import stat
import time

import pytest

from modelrunner import RunnerConfig, RunnerHandle
from modelrunner.testing import load_settings
from plugins.llamacpp.tests.llamacpp_helpers import Runner, make_bundle

from modelrunner_llamacpp import engine as engine_module
from modelrunner_llamacpp import prompt_cache
from modelrunner_llamacpp.engine import LlamaCppEngine

SYSTEM = ("You are a coding agent. Tools: read_file(path) returns a file's text; "
          "write_file(path, text) writes it; list_dir(path) lists a folder; grep(pattern, path) "
          "finds lines; run_shell(command) runs a command and returns its output. Answer briefly.")
MESSAGES = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Which tool lists a folder?"}]


def chat(runner):
    with runner.client() as client:
        answer = client.post("/v1/chat/completions", json={
            "messages": MESSAGES, "max_tokens": 8, "temperature": 0}).json()
    return answer


def handle(runner):
    return RunnerHandle(address=runner.socket, bundle=runner.bundle, config=runner.config,
                        command=runner.command)


@pytest.fixture(scope="module")
def cached(engine, llama_server, smollm2, tmp_path_factory):
    """A chat runner whose bundle has a cache folder: one conversation answered uncached, the
    runner's slots saved and the runner stopped, then a new runner with them restored."""
    root = tmp_path_factory.mktemp("cached")
    bundle = make_bundle(root / "bundle", smollm2, {"format": "gguf", "context_size": 1024},
                         model_id="sha256:" + "ab" * 32)
    bundle.cache_dir = root / "cache"
    bundle.cache_dir.mkdir(mode=0o700)
    config = RunnerConfig(mode="completion")
    first = Runner(engine, bundle, config).start()
    try:
        cold = chat(first)
        again = chat(first)  # from llama-server's own prompt cache, in its memory
        engine.before_stop(handle(first))
    finally:
        first.stop()
    saved = sorted(p.name for p in bundle.cache_dir.iterdir())
    second = Runner(engine, bundle, config).start()
    engine.after_ready(handle(second))
    yield {"bundle": bundle, "cold": cold, "again": again, "saved": saved, "runner": second,
           "config": config}
    second.stop()


def test_a_saved_cache_restores_after_an_unload_and_answers_the_same(cached):
    folder = cached["bundle"].cache_dir
    assert "--slot-save-path" in cached["runner"].command.argv
    # one slot took the conversation: one published pair, private, nothing half-written
    stems = {name.split(".")[0] for name in cached["saved"]}
    assert len(stems) == 1 and len(cached["saved"]) == 2, cached["saved"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cold, again = cached["cold"], cached["again"]
    assert cold["timings"]["cache_n"] == 0
    warm = chat(cached["runner"])
    # the answer is the one the first runner gave from its own prompt cache: the same KV, the
    # same last token run alone. (Not always the uncached one: a full prompt and a last token run
    # alone round differently in llama.cpp, and a greedy near-tie can go either way, with
    # llama-server's own in-memory cache too.)
    assert warm["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    # the returning conversation's prompt came from the restored slot: only its last token ran
    assert warm["timings"]["cache_n"] >= cold["usage"]["prompt_tokens"] - 1
    assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] == warm["timings"]["cache_n"]
    assert warm["timings"]["prompt_n"] <= 1


def _copy(folder, stem, new, sidecar=True, **changes):
    shutil.copyfile(folder / f"{stem}.bin", folder / f"{new}.bin")
    if sidecar:
        data = {**json.loads((folder / f"{stem}.json").read_text()), **changes}
        (folder / f"{new}.json").write_text(json.dumps(data))


def _bound(engine, runner):
    return prompt_cache.binding(runner.bundle.model_id, engine.build_info(), runner.command.argv,
                                {**os.environ, **runner.command.env})


def test_a_cache_from_another_build_or_flag_set_is_skipped_and_kept_for_when_they_return(
        cached, engine):
    folder = cached["bundle"].cache_dir
    stem = cached["saved"][0].split(".")[0]
    sidecar = json.loads((folder / f"{stem}.json").read_text())
    _copy(folder, stem, "other-model", model="sha256:" + "cd" * 32)
    _copy(folder, stem, "other-build", build={**sidecar["build"], "version": "llama-server 0.0"})
    _copy(folder, stem, "other-flags", kv={**sidecar["kv"], "--ctx-size": "2048"})
    restored = prompt_cache.restore(handle(cached["runner"]), _bound(engine, cached["runner"]))
    assert [s for _, s in restored] == [stem]
    # another model's file is nothing to this folder; the others return with their flags
    kept = {"other-build.bin", "other-build.json", "other-flags.bin", "other-flags.json"}
    assert sorted(p.name for p in folder.iterdir()) == sorted([*cached["saved"], *kept])
    for name in kept:
        os.unlink(folder / name)


def _age(folder, *names, seconds=3600):
    past = time.time() - seconds
    for name in names:
        os.utime(folder / name, (past, past))


def test_a_crash_mid_save_or_a_corrupted_file_leaves_nothing_that_loads(cached, engine):
    folder = cached["bundle"].cache_dir
    stem = cached["saved"][0].split(".")[0]
    _copy(folder, stem, "no-sidecar", sidecar=False)           # killed before its sidecar
    shutil.copyfile(folder / f"{stem}.bin", folder / "tmp-unpublished.bin")  # still a temp
    _age(folder, "no-sidecar.bin", "tmp-unpublished.bin")     # ... and long dead
    shutil.copyfile(folder / f"{stem}.bin", folder / "tmp-being-written.bin")  # another runner's
    _copy(folder, stem, "truncated")                          # a short write
    with open(folder / "truncated.bin", "r+b") as f:
        f.truncate(os.path.getsize(folder / f"{stem}.bin") // 2)
    (folder / "torn.bin").write_bytes(b"")                    # a sidecar cut short
    (folder / "torn.json").write_text('{"format": 2, "mod')
    _copy(folder, stem, "zflipped")                           # bytes flipped on the disk
    with open(folder / "zflipped.bin", "r+b") as f:           # (the newest: offered first)
        f.seek(os.path.getsize(folder / f"{stem}.bin") // 2)
        f.write(b"\xff" * 64)
    restored = prompt_cache.restore(handle(cached["runner"]), _bound(engine, cached["runner"]))
    assert [s for _, s in restored] == [stem]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*cached["saved"],
                                                               "tmp-being-written.bin"])
    os.unlink(folder / "tmp-being-written.bin")


def test_copies_of_one_conversation_fill_one_slot_not_all(cached, engine):
    folder = cached["bundle"].cache_dir
    stem = cached["saved"][0].split(".")[0]
    _copy(folder, stem, "zcopy")
    restored = prompt_cache.restore(handle(cached["runner"]), _bound(engine, cached["runner"]))
    assert [s for _, s in restored] == ["zcopy"]
    for name in ("zcopy.bin", "zcopy.json"):
        os.unlink(folder / name)


def _runner(engine, smollm2, root, config=None):
    bundle = make_bundle(root / "bundle", smollm2, {"format": "gguf", "context_size": 1024},
                         model_id="sha256:" + "ef" * 32)
    bundle.cache_dir = root / "cache"
    bundle.cache_dir.mkdir(mode=0o700, exist_ok=True)
    return Runner(engine, bundle, config or RunnerConfig(mode="completion")).start()


class CutOff(RunnerHandle):
    """A runner killed while it saves: the file is written, the answer never comes."""

    def request(self, method, path, body=None, timeout=30.0):
        answer = super().request(method, path, body, timeout)
        if "action=save" in path:
            raise TimeoutError("timed out")
        return answer


def test_reloading_a_conversation_keeps_one_save_of_it(engine, llama_server, smollm2, tmp_path):
    """Unload, reload, the conversation returns, unload again: the folder holds its newest save
    only; and a save cut off mid-way leaves no temp file."""
    folder = tmp_path / "cache"
    for cycle in range(2):
        runner = _runner(engine, smollm2, tmp_path)
        try:
            engine.after_ready(handle(runner))
            chat(runner)
            if cycle:
                cut = CutOff(address=runner.socket, bundle=runner.bundle, config=runner.config,
                             command=runner.command)
                assert prompt_cache.save(cut, _bound(engine, runner)) == []
                assert not list(folder.glob("tmp-*"))
            engine.before_stop(handle(runner))
        finally:
            runner.stop()
    assert len(list(folder.glob("*.bin"))) == 1 and len(list(folder.glob("*.json"))) == 1


def test_a_save_is_bound_to_what_started_the_runner(llama_server, smollm2, tmp_path,
                                                    monkeypatch):
    """llama-server upgraded in place while the runner runs, RoPE set through the environment:
    the save says the build and settings that made its KV, and a runner started otherwise does
    not get it."""
    engine = LlamaCppEngine(settings=load_settings(llamacpp_slots=4))
    monkeypatch.setenv("LLAMA_ARG_ROPE_FREQ_BASE", "1000")
    runner = _runner(engine, smollm2, tmp_path)
    monkeypatch.delenv("LLAMA_ARG_ROPE_FREQ_BASE")
    started = engine.build_info()
    try:
        engine.after_ready(handle(runner))
        chat(runner)
        real = engine_module.binary_info

        class Upgraded:
            def __init__(self, path):
                self.info = real(path)

            def describe(self):
                return {**self.info.describe(), "version": "llama-server 99999 (upgraded)"}

        monkeypatch.setattr(engine_module, "binary_info", Upgraded)
        engine.before_stop(handle(runner))
    finally:
        runner.stop()
    monkeypatch.undo()
    (side,) = (tmp_path / "cache").glob("*.json")
    sidecar = json.loads(side.read_text())
    assert sidecar["build"] == {k: v for k, v in started.items() if k != "path"}
    assert sidecar["env"] is not None
    without = prompt_cache.binding(runner.bundle.model_id, started, runner.command.argv,
                                   dict(os.environ))   # a runner started with no RoPE override
    assert prompt_cache.scan(tmp_path / "cache", without) == []
    assert side.exists()


def test_a_slot_bigger_than_the_budget_is_not_written(cached):
    # SmolLM2-135M holds about 23 KB of KV per token: the conversation is well over 256 KiB
    small = LlamaCppEngine(settings=load_settings(llamacpp_slots=4, prompt_cache_budget="256KiB"))
    folder = cached["bundle"].cache_dir
    before = sorted(p.name for p in folder.iterdir())
    chat(cached["runner"])
    small.before_stop(handle(cached["runner"]))
    assert sorted(p.name for p in folder.iterdir()) == before


def test_only_chat_runners_with_a_cache_folder_save_slots(engine, llama_server, smollm2,
                                                          tmp_path):
    bundle = make_bundle(tmp_path / "bundle", smollm2, {"format": "gguf", "context_size": 512})
    assert "--slot-save-path" not in engine.runner_command(bundle, RunnerConfig(), "/s").argv
    bundle.cache_dir = tmp_path / "cache"
    argv = engine.runner_command(bundle, RunnerConfig(mode="embedding"), "/s").argv
    assert "--slot-save-path" not in argv
    argv = engine.runner_command(bundle, RunnerConfig(), "/s").argv
    assert argv[argv.index("--slot-save-path") + 1] == str(tmp_path / "cache") + "/"
    # llama-server answers 501 to a multimodal runner's save and restore
    (bundle.path / "model" / "model.mmproj").write_bytes(b"GGUF")
    assert "--slot-save-path" not in engine.runner_command(bundle, RunnerConfig(), "/s").argv


def test_the_binding_holds_the_flags_that_shape_the_kv_cache():
    argv = ["llama-server", "--host", "/a.sock", "--threads", "2", "-c", "4096", "-np", "4",
            "--kv-unified", "-ctk", "q8_0", "--flash-attn=on", "--temp", "0.2", "--seed", "-1"]
    assert prompt_cache.kv_shape(argv) == {"--ctx-size": "4096", "--parallel": "4",
                                           "--kv-unified": True, "--cache-type-k": "q8_0",
                                           "--flash-attn": "on"}
    other_socket = [*argv[:2], "/b.sock", *argv[3:]]
    assert prompt_cache.binding("m", {"version": "v", "path": "/x"}, argv) == \
        prompt_cache.binding("m", {"version": "v", "path": "/y"}, other_socket)
    # settings given through the environment shape the cache as much; a chat template does not
    plain = prompt_cache.binding("m", {}, argv, {"PATH": "/bin", "LLAMA_ARG_CHAT_TEMPLATE": "x"})
    assert plain == prompt_cache.binding("m", {}, argv, {})
    assert plain != prompt_cache.binding("m", {}, argv, {"LLAMA_ARG_ROPE_FREQ_BASE": "1000"})
    assert plain != prompt_cache.binding("m", {}, argv, {"LLAMA_ARGS": "-c 2048"})


def test_a_slot_that_took_a_request_is_saved_whatever_the_build_reports():
    assert prompt_cache._used({"id": 0, "n_prompt_tokens": 12, "id_task": 3})
    assert not prompt_cache._used({"id": 0, "n_ctx": 1024, "is_processing": False})
    assert prompt_cache._used({"id": 0, "id_task": 3, "prompt": "hello"})  # no n_prompt_tokens
    assert not prompt_cache._used({"id": 0, "id_task": -1})
