"""`model run` on an image model writes PNG files instead of chatting (cli/run_image.py).

The CLI tells an image model from a chat model by what the server says of it, never by a format
or engine name of its own: the tiny Stable Diffusion pipeline of the diffusers plugin's tests,
packaged into the session server, against SmolLM2 in the same server.
"""

import io

from PIL import Image

from modelrunner.cli.client import Client
from modelrunner.cli.run_image import is_image_model, run_image
from plugins.diffusers.tests.conftest import image_model, tiny_sd_dir, tiny_sd_files  # noqa: F401


def test_an_image_model_gets_pngs_named_after_the_prompt(server, image_model, tmp_path, capsys):
    client = Client(server.url)
    assert is_image_model(client, image_model)
    assert not is_image_model(client, "ai/smollm2")
    (path,) = run_image(client, image_model, "a cat", steps=2, seed=3, directory=tmp_path)
    assert path.parent == tmp_path and path.name.startswith("a-cat-") and path.suffix == ".png"
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "PNG" and image.size == (64, 64)
    assert str(path) in capsys.readouterr().out
