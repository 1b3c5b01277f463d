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
from modelrunner.store.prompt_caches import PromptCaches

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
    folder = PromptCaches.from_settings(settings).folder("sha256:" + "c" * 64)
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
