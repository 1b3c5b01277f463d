"""Model uploads are bounded: by the max_upload setting (413) and by the store's free disk space
(507), refused before the body is read; a body of unknown length stops at the cap."""

import io

import falcon
import falcon.testing
import pytest

from modelrunner.app import create_app
from modelrunner.settings import load_settings
from modelrunner.uploads import CappedStream, free_space

BLOB = "/api/blobs/sha256:" + "0" * 64


def client(tmp_path, **settings):
    """The server in-process, asked as a local program would (loopback Host, an upload type)."""
    return falcon.testing.TestClient(create_app(load_settings(
        models_path=str(tmp_path / "models"), **settings)),
        headers={"Host": "127.0.0.1", "Content-Type": "application/octet-stream"})


def test_an_upload_above_max_upload_is_refused_with_413(tmp_path):
    c = client(tmp_path, max_upload="1KiB")
    for path in ("/models/load", BLOB):
        answer = c.simulate_post(path, body=b"x" * 2048)
        assert answer.status_code == 413, (path, answer.text)
    assert c.simulate_post(BLOB, body=b"x" * 512).status_code == 400  # under the cap: read


def test_an_upload_larger_than_the_free_disk_space_is_refused_with_507(tmp_path):
    c = client(tmp_path)  # max_upload 0: no cap, but the disk still bounds it
    huge = str(free_space(tmp_path) + (1 << 30))
    for path in ("/models/load", BLOB):
        answer = c.simulate_post(path, body=b"x", headers={"Content-Length": huge})
        assert answer.status_code == 507, (path, answer.text)


def test_a_body_of_unknown_length_stops_at_the_cap():
    stream = CappedStream(io.BytesIO(b"x" * 3000), 1000)
    assert len(stream.read(800)) == 800
    with pytest.raises(falcon.HTTPContentTooLarge):
        stream.read(800)
