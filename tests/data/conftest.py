"""Tiny on-disk inputs for the data-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (8, 8),
                shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = {"L": shade, "P": shade % 256, "RGBA": (shade, 0, 0, 255)}.get(mode, (shade, 0, 0))
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``image_folder({"cat": 3, "dog": 2})`` → a folder of class subfolders of PNGs."""

    def make(counts: dict[str, int], root: Path | None = None) -> Path:
        root = root or tmp_path / "images"
        root.mkdir(parents=True, exist_ok=True)
        for c, (name, n) in enumerate(counts.items()):
            for i in range(n):
                write_image(root / name / f"{i}.png", shade=(10 * c + i) % 256)
        return root

    return make


@pytest.fixture
def make_image() -> Callable[..., Path]:
    """``make_image(path, mode="RGB", size=(8, 8))`` writes one image file."""
    return write_image
