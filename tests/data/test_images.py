"""check_images: readable images kept, unreadable ones counted, too many rejected."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from autotl.data.images import check_images, is_image_file
from autotl.errors import DataError


def png(size=(3, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_accepts_paths_bytes_and_image_dicts(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png())
    items = [path, str(path), png(), {"bytes": png(), "path": None},
             {"bytes": None, "path": str(path)}, b"junk"]
    seen = []
    checked = check_images(items, where="here", describe=str,
                           digest=lambda i, data: seen.append(i))
    assert checked.kept == [0, 1, 2, 3, 4]
    assert checked.skipped == 1
    assert checked.unreadable[0][0] == "5"
    assert seen == [0, 1, 2, 3, 4]


def test_more_than_half_unreadable_raises():
    with pytest.raises(DataError, match="2 of 3 images in here are unreadable"):
        check_images([png(), b"x", None], where="here", describe=lambda i: f"item {i}")


def test_exactly_half_unreadable_is_skipped():
    assert check_images([png(), b"x"], where="here", describe=str).skipped == 1


def test_image_suffixes(tmp_path):
    assert is_image_file(tmp_path / "a.JPG")
    assert not is_image_file(tmp_path / ".a.png")
    assert not is_image_file(tmp_path / "a.txt")


def test_truncated_jpeg_is_unreadable():
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, format="JPEG")
    whole = buffer.getvalue()
    checked = check_images([whole, whole[: len(whole) // 2], whole], where="here",
                           describe=str)
    assert checked.kept == [0, 2]
    assert checked.unreadable[0][0] == "1"
