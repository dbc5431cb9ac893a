"""Finding and checking image files before anything trains on them.

DECISION on unreadable images: a few bad files in a large folder should not stop a search, so
an image that PIL cannot open and verify is skipped, counted (``LoadedData.skipped``) and named
in a warning (up to five files). When more than half of the images are unreadable the input is
almost certainly wrong (the wrong folder, a truncated copy, files that are not images), so that
raises :class:`DataError` instead.

Modes (L, RGB, RGBA, P, …) and sizes may differ from file to file: that is not checked here,
because preprocessing converts every image to RGB and resizes it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotl.errors import DataError

log = logging.getLogger(__name__)

#: File suffixes read as images (lower case); other files in a class folder are ignored.
IMAGE_EXTENSIONS = frozenset({
    ".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".tif", ".tiff",
    ".webp",
})
#: Above this fraction of unreadable images the whole input is rejected.
MAX_UNREADABLE_FRACTION = 0.5
#: How many unreadable files a warning or error names.
NAMED_FILES = 5


def is_image_file(path: Path) -> bool:
    """A visible file whose suffix is a known image format."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass(frozen=True)
class CheckedImages:
    """The outcome of :func:`check_images`: which items are readable, which are not and why."""

    kept: list[int]
    unreadable: list[tuple[str, str]]  # (file or row, reason)

    @property
    def skipped(self) -> int:
        return len(self.unreadable)


def check_images(
    items: Sequence[Any],
    *,
    where: str,
    describe: Callable[[int], str],
    digest: Callable[[int, bytes], None] | None = None,
) -> CheckedImages:
    """Open and verify every image; skip unreadable ones (see the module docstring).

    ``items`` holds file paths, raw bytes, or ``{"bytes": …, "path": …}`` dicts (the storage of
    a ``datasets.Image`` column). ``describe(i)`` names item ``i`` in messages. ``digest``, if
    given, receives ``(i, bytes)`` for each readable image so the caller can fingerprint the
    content without reading the files twice.
    """
    kept: list[int] = []
    unreadable: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        try:
            data = _read(item)
            _verify(data)
        except Exception as exc:  # noqa: BLE001 - any failure to read means "unreadable"
            unreadable.append((describe(i), _reason(exc)))
            continue
        if digest is not None:
            digest(i, data)
        kept.append(i)
    checked = CheckedImages(kept, unreadable)
    _report(checked, len(items), where)
    return checked


def _verify(data: bytes) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # header and checksums (PNG CRCs); cheap
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            # verify() does not read JPEG data; a draft decode at 1/8 scale does, catching
            # truncated files for a fraction of a full decode.
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()


def _read(item: Any) -> bytes:
    if isinstance(item, dict):
        if item.get("bytes") is not None:
            return bytes(item["bytes"])
        item = item.get("path")
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, (str, Path)):
        return Path(item).read_bytes()
    msg = f"expected an image file path or bytes, got {type(item).__name__} {item!r:.60}"
    raise TypeError(msg)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        text = "file not found"
    return text[:120]


def _report(checked: CheckedImages, total: int, where: str) -> None:
    bad = checked.unreadable
    if not bad:
        return
    named = "; ".join(f"{name} ({reason})" for name, reason in bad[:NAMED_FILES])
    more = f"; and {len(bad) - NAMED_FILES} more" if len(bad) > NAMED_FILES else ""
    if len(bad) > MAX_UNREADABLE_FRACTION * total:
        msg = (
            f"{len(bad)} of {total} images in {where} are unreadable: {named}{more}. With more "
            f"than half unreadable this is probably not an image dataset (wrong folder or "
            f"column, truncated copy, or files that are not images); check the files open in "
            f"an image viewer, then fix or re-export them."
        )
        raise DataError(msg)
    log.warning(
        "skipped %d unreadable image(s) of %d in %s: %s%s. Fix or delete them to silence this "
        "warning.", len(bad), total, where, named, more,
    )


__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_UNREADABLE_FRACTION",
    "CheckedImages",
    "check_images",
    "is_image_file",
]
