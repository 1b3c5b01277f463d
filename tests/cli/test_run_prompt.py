"""What `model run` makes of a typed line: @file inclusion and image paths (cli/run_prompt.py)."""

import base64

import pytest

from modelrunner.cli.run_prompt import PromptError, extract_images, include_files, user_content

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("line one\nline two\n")
    (tmp_path / "my notes.md").write_text("# spaced")
    (tmp_path / "cat.png").write_bytes(PNG)
    return tmp_path


def test_an_at_file_is_replaced_by_its_text(here):
    assert include_files("Summarise @notes.txt please") == "Summarise line one\nline two\n please"
    assert include_files('Read @"my notes.md"') == "Read # spaced"
    assert include_files(f"@{here / 'notes.txt'}").startswith("line one")


def test_an_email_address_is_not_a_file(here):
    assert include_files("mail bob@example.com") == "mail bob@example.com"


@pytest.mark.parametrize("text, says", [("see @missing.txt", "@missing.txt: no such file"),
                                         ("see @.", "is a directory")])
def test_a_missing_file_is_a_clear_error(here, text, says):
    with pytest.raises(PromptError, match=says):
        include_files(text)


def test_image_paths_become_image_parts_and_leave_the_text(here):
    content = user_content("What is in ./cat.png ?")
    assert content[0] == {"type": "text", "text": "What is in ?"}
    assert content[1]["type"] == "image_url"
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == PNG
    assert user_content("@cat.png")[0]["type"] == "image_url"


def test_a_word_that_only_looks_like_an_image_stays_text(here):
    assert extract_images("is a.png smaller than a.jpg?") == ("is a.png smaller than a.jpg?", [])
    assert user_content("plain text") == "plain text"


def test_a_missing_or_fake_image_is_a_clear_error(here):
    with pytest.raises(PromptError, match="no such image file"):
        extract_images("look at ./gone.png")
    (here / "fake.jpg").write_text("not an image")
    with pytest.raises(PromptError, match="not a PNG, JPEG or WebP"):
        extract_images("look at ./fake.jpg")
