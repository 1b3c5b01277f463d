"""A node's side of copying a bundle (transfer.py): what lands on a node's disk, and what never.

The node's functions are plain Python, so these need no cluster; the whole copy through Ray is
in test_ray_placement.py.
"""

import hashlib
import os

import pytest

from modelrunner_ray import transfer

REL = "bundles/sha256/" + "ab" * 32 + "/model/model.gguf"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_a_bundle_file_arrives_whole_private_and_only_after_its_hash_matches(tmp_path):
    data = os.urandom(3 * 1024 + 7)
    transfer.write_chunk(str(tmp_path), REL, "t1", 1024, data[1024:], len(data))
    transfer.write_chunk(str(tmp_path), REL, "t1", 0, data[:1024], len(data))
    target = tmp_path / REL
    assert not target.exists()  # nothing at the runner's path before the commit

    transfer.commit(str(tmp_path), REL, "t1", len(data), sha(data))

    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o077 == 0
    assert tmp_path.stat().st_mode & 0o077 == 0  # the node's store is the user's alone
    assert [p.name for p in target.parent.iterdir()] == ["model.gguf"]
    assert transfer.missing(str(tmp_path), [(REL, len(data))]) == []


def test_bytes_changed_on_the_way_are_refused_and_leave_nothing_behind(tmp_path):
    data = b"weights" * 100
    transfer.write_chunk(str(tmp_path), REL, "t2", 0, data[:-1] + b"X", len(data))
    with pytest.raises(transfer.TransferError, match="expected"):
        transfer.commit(str(tmp_path), REL, "t2", len(data), sha(data))
    assert list((tmp_path / REL).parent.iterdir()) == []

    transfer.write_chunk(str(tmp_path), REL, "t3", 0, data[:10], len(data))  # a short transfer
    with pytest.raises(transfer.TransferError):
        transfer.commit(str(tmp_path), REL, "t3", len(data), sha(data))
    assert list((tmp_path / REL).parent.iterdir()) == []


@pytest.mark.parametrize("rel", ["../outside", "bundles/../../outside", "/etc/outside",
                                 "bundles/sha256/x/../../../outside", "models.json",
                                 "bundles//outside", "bundles/sha256/\0/x"])
def test_a_path_outside_the_nodes_bundles_is_refused(tmp_path, rel):
    root = tmp_path / "node"
    with pytest.raises(transfer.TransferError, match="refused"):
        transfer.write_chunk(str(root), rel, "t", 0, b"x", 1)
    with pytest.raises(transfer.TransferError, match="refused"):
        transfer.missing(str(root), [(rel, 1)])
    assert not (tmp_path / "outside").exists()


def test_a_symlink_planted_in_the_nodes_bundles_is_not_followed(tmp_path):
    root, elsewhere = tmp_path / "node", tmp_path / "elsewhere"
    (root / "bundles").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "bundles" / "sha256").symlink_to(elsewhere)
    with pytest.raises(transfer.TransferError, match="not a plain folder"):
        transfer.write_chunk(str(root), REL, "t", 0, b"x", 1)
    assert list(elsewhere.iterdir()) == []  # not even a folder was made there


def test_a_symlink_at_a_bundle_files_place_is_not_a_copy_and_is_replaced(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"abc")
    (tmp_path / REL).parent.mkdir(parents=True)
    (tmp_path / REL).symlink_to(secret)
    assert transfer.missing(str(tmp_path), [(REL, 3)]) == [(REL, 3)]
    transfer.write_chunk(str(tmp_path), REL, "t", 0, b"xyz", 3)
    transfer.commit(str(tmp_path), REL, "t", 3, sha(b"xyz"))
    assert not (tmp_path / REL).is_symlink() and (tmp_path / REL).read_bytes() == b"xyz"
    assert secret.read_bytes() == b"abc"


def test_a_chunk_beyond_the_files_size_is_refused(tmp_path):
    for offset, data, size in [(1 << 40, b"x", 10), (-1, b"x", 10), (8, b"xyz", 10)]:
        with pytest.raises(transfer.TransferError, match="refused a chunk"):
            transfer.write_chunk(str(tmp_path), REL, "t", offset, data, size)
    assert not list(tmp_path.rglob("*.partial-*"))


def test_partial_files_no_transfer_finished_are_swept_after_an_hour(tmp_path):
    transfer.write_chunk(str(tmp_path), REL, "old", 0, b"x", 2)
    transfer.write_chunk(str(tmp_path), REL, "new", 0, b"x", 2)
    old = tmp_path / (REL + ".partial-old")
    os.utime(old, (0, 0))
    assert transfer.missing(str(tmp_path), [(REL, 2)]) == [(REL, 2)]
    assert not old.exists() and (tmp_path / (REL + ".partial-new")).exists()


def test_a_bad_transfer_token_cannot_name_another_file(tmp_path):
    with pytest.raises(transfer.TransferError, match="token"):
        transfer.write_chunk(str(tmp_path), REL, "../../x", 0, b"x", 1)


def test_missing_lists_absent_and_wrong_sized_files_and_a_full_disk_is_an_error(tmp_path):
    data = b"abc"
    transfer.write_chunk(str(tmp_path), REL, "t", 0, data, 3)
    transfer.commit(str(tmp_path), REL, "t", 3, sha(data))
    other = REL.replace("model.gguf", "template.jinja")
    assert transfer.missing(str(tmp_path), [(REL, 3), (other, 5)]) == [(other, 5)]
    assert transfer.missing(str(tmp_path), [(REL, 4)]) == [(REL, 4)]
    with pytest.raises(transfer.TransferError, match="bytes free"):
        transfer.free_space_for(str(tmp_path), [(REL, 1 << 62)])


def test_the_sender_lists_every_file_of_a_bundle_relative_to_the_store(tmp_path):
    bundle = tmp_path / "bundles" / "sha256" / ("cd" * 32)
    (bundle / "model").mkdir(parents=True)
    (bundle / "model" / "model.gguf").write_bytes(b"1234")
    (bundle / "config.json").write_text("{}")
    (bundle / "model" / "link").symlink_to("/etc/passwd")  # never sent
    assert transfer.bundle_files(str(tmp_path), str(bundle)) == [
        (f"bundles/sha256/{'cd' * 32}/config.json", 2),
        (f"bundles/sha256/{'cd' * 32}/model/model.gguf", 4)]
