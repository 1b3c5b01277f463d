"""The store's cache area (issue 30): saved prompt caches kept within a byte budget, least
recently used first; `model df` shows their space and `model prune --caches` gives it back.

What goes in the files is the engine's business (llama.cpp's: plugins/llamacpp/tests/
test_llamacpp_prompt_cache.py); here they are plain bytes.
"""

import os
import stat
import time

import falcon.testing

from modelrunner.app import create_app
from modelrunner.settings import load_settings
from modelrunner.store import FilesystemStore
from modelrunner.store.prompt_caches import PromptCaches
from modelrunner.testing.artifacts import add_to_store, write_small_gguf

from test_trust import LOCAL


def save(folder, stem, size, used):
    """A published entry, ``size`` bytes of data and its sidecar, last used at ``used``."""
    for name, data in ((f"{stem}.bin", b"k" * size), (f"{stem}.json", b"{}")):
        (folder / name).write_bytes(data)
        os.utime(folder / name, (used, used))


def test_the_budget_evicts_the_least_recently_used_prompts(tmp_path):
    caches = PromptCaches(tmp_path / "models", budget=2500)
    one, two = caches.folder("sha256:" + "a" * 64), caches.folder("sha256:" + "b" * 64)
    assert stat.S_IMODE(one.stat().st_mode) == 0o700
    now = time.time()
    save(one, "old", 1000, now - 300)
    save(two, "middle", 1000, now - 200)
    save(one, "new", 1000, now - 100)
    os.utime(one / "old.bin")             # restored just now: the most recently used
    assert caches.usage() == 3006
    assert caches.enforce() == 1002
    assert sorted(p.name for p in one.iterdir()) == ["new.bin", "new.json", "old.bin", "old.json"]
    assert list(two.iterdir()) == []
    assert caches.usage() == 2004


def test_df_shows_the_cache_area_and_prune_caches_empties_it(tmp_path):
    settings = load_settings(models_path=str(tmp_path / "models"), prompt_cache_budget="1GiB")
    client = falcon.testing.TestClient(create_app(settings), headers=LOCAL)
    model = add_to_store(FilesystemStore(tmp_path / "models"),
                         write_small_gguf(tmp_path / "m.gguf"), ["ai/kept"])
    folder = PromptCaches.from_settings(settings).folder(model.id)
    save(folder, "conversation", 4096, time.time())
    df = client.simulate_get("/engines/df").json
    assert df["prompt_cache_disk_usage"] == 4098 and df["prompt_cache_budget"] == 1024**3
    kept = client.simulate_post("/models/prune")          # garbage only: caches are no garbage
    assert kept.status_code == 200 and "prompt_caches" not in kept.json
    assert len(list(folder.iterdir())) == 2
    pruned = client.simulate_post("/models/prune", json={"caches": True})
    assert pruned.status_code == 200 and pruned.json["prompt_caches"] == 1
    assert list(folder.iterdir()) == []
    refused = client.simulate_post("/models/prune", json={"caches": "yes"})
    assert refused.status_code == 400


def test_a_deleted_models_saved_prompts_go_with_the_next_prune(tmp_path):
    """A model removed from the store leaves its users' prompts in its cache folder until
    ``model prune`` (which keeps the caches of models the store still has)."""
    settings = load_settings(models_path=str(tmp_path / "models"), prompt_cache_budget="1GiB")
    client = falcon.testing.TestClient(create_app(settings), headers=LOCAL)
    gone = PromptCaches.from_settings(settings).folder("sha256:" + "d" * 64)
    save(gone, "conversation", 4096, time.time())
    pruned = client.simulate_post("/models/prune")
    assert pruned.status_code == 200 and pruned.json["prompt_caches"] == 1
    assert not gone.exists()


def test_a_cache_area_that_is_not_ours_or_not_a_size_stops_nothing(tmp_path):
    """Odd things in the area (a folder where an entry would be) and a budget that is no size
    are logged and skipped: eviction, prune and the server go on."""
    caches = PromptCaches(tmp_path / "models", budget=10)
    folder = caches.folder("sha256:" + "e" * 64)
    (folder / "stray").mkdir()
    save(folder, "big", 100, time.time() - 300)
    assert caches.enforce() == 102 and (folder / "stray").is_dir()
    assert caches.clear() == (0, 0)
    for off in ("off", "no", "0", 0, False):
        assert not PromptCaches.from_settings(load_settings(
            models_path=str(tmp_path / "models"), prompt_cache_budget=off)).enabled
    assert not PromptCaches.from_settings(load_settings(
        models_path=str(tmp_path / "models"), prompt_cache_budget="lots")).enabled
