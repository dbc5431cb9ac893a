"""Activation cache: what a strategy freezes is computed once per study, not once per trial.

A trial whose strategy leaves the first k layer groups frozen (head-only: all of them) sees the
same activations at that boundary in every step of every trial, as long as its inputs are
deterministic: frozen modules run in eval mode (see :class:`autotl.models.TransferModel`). The
cache computes them once, keyed by backbone weights, depth, data and preprocessing, and keeps
them in memory and in a cache directory shared across studies, bounded in bytes with
least-recently-used eviction. Depth 0 holds the preprocessed inputs themselves.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV = "AUTOTL_CACHE_DIR"
_MMAP_FROM_BYTES = 256 * 1024**2  # larger entries are memory-mapped from disk, not read in


def cache_root() -> Path:
    """``$AUTOTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/autotl``, else ``~/.cache/autotl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "autotl"


def activation_key(**parts: Any) -> str:
    """A stable key from named parts (weights id, depth, data and preprocessing fingerprints)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class CacheStats:
    """What the cache did during a study."""

    hits: int = 0
    misses: int = 0
    bypassed: int = 0
    compute_seconds: float = 0.0
    saved_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ActivationCache:
    """Trees of CPU tensors by key, in memory and (optionally) on disk, within ``max_bytes``."""

    def __init__(self, directory: Path | None, max_bytes: int) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._memory: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    # -- public --------------------------------------------------------------------------------

    def fetch(self, key: str, compute: Callable[[int], tuple[Any, float] | None],
              what: str) -> tuple[Any, float] | None:
        """``(tree, seconds it took to compute)`` stored under ``key``, else
        ``compute(max_bytes)``, stored and returned.

        ``compute`` returns the tree and what it costs to compute from scratch — its own work
        plus the cost of entries it fetched from this cache on the way (a later hit saves all
        of that) — or ``None`` when the result would exceed the budget it is given; the caller
        then trains without the cache (logged, counted as bypassed).
        """
        found = self._get(key)
        if found is not None:
            self.stats.hits += 1
            self.stats.saved_seconds += found[1]
            return found
        # Nested fetches inside ``compute`` account for themselves (as computed or saved);
        # only the rest of its cost is this entry's own compute time.
        accounted = self.stats.compute_seconds + self.stats.saved_seconds
        computed = compute(self.max_bytes)
        if computed is None:
            self.stats.bypassed += 1
            log.info("activation cache: %s exceed the %s budget; training without the cache",
                     what, _mb(self.max_bytes))
            return None
        tree, seconds = computed
        nested = self.stats.compute_seconds + self.stats.saved_seconds - accounted
        self.stats.misses += 1
        self.stats.compute_seconds += max(0.0, seconds - nested)
        self._put(key, tree, seconds)
        return tree, seconds

    # -- memory --------------------------------------------------------------------------------

    def _get(self, key: str) -> tuple[Any, float] | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            self._touch(key)  # or disk eviction would take it as unused since it was read
            return self._memory[key]
        if self.directory is None:
            return None
        entry = self.directory / key
        meta_path = entry / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            tree = _load_tree(entry, meta["structure"], mmap=meta["bytes"] >= _MMAP_FROM_BYTES)
        # a damaged entry is recomputed (np.load raises EOFError on an empty file)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            log.warning("activation cache: dropping unreadable entry %s (%s)", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        self._touch(key)
        self._remember(key, tree, float(meta["compute_seconds"]))
        return tree, float(meta["compute_seconds"])

    def _touch(self, key: str) -> None:
        """Mark an entry used now: the mtime of its ``meta.json`` is the LRU clock on disk,
        set to the nanosecond (the file system's own clock may tick only every few ms, which
        would tie entries written in a row)."""
        if self.directory is None:
            return
        now = time.time_ns()
        with contextlib.suppress(OSError):  # evicted by another process meanwhile
            os.utime(self.directory / key / "meta.json", ns=(now, now))

    def _remember(self, key: str, tree: Any, seconds: float) -> None:
        from autotl.inputs import tree_bytes

        self._memory[key] = (tree, seconds)
        self._memory.move_to_end(key)
        while len(self._memory) > 1 and sum(
            tree_bytes(t) for t, _ in self._memory.values()
        ) > self.max_bytes:
            self._memory.popitem(last=False)

    def _put(self, key: str, tree: Any, seconds: float) -> None:
        self._remember(key, tree, seconds)
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # unique per writer (process or thread); dot-names are never taken for entries
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=self.directory))
        tmp.chmod(0o755)  # as a plain mkdir would: a cache directory may be shared
        structure = _save_tree(tmp, tree)
        # the bound is on what lands on disk, .npy headers included, not on tree_bytes
        size = sum(f.stat().st_size for f in tmp.glob("*.npy"))
        final = self.directory / key
        if size > self.max_bytes or final.exists():  # too big to keep; or stored meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            return
        self._evict(room_for=size)
        meta = {"structure": structure, "bytes": size, "compute_seconds": seconds}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, final)
        except OSError as exc:
            # Another process stored the same key between our check and the rename (the
            # rename onto a non-empty folder fails): its entry holds the same activations.
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                raise
        self._touch(key)

    def _evict(self, room_for: int) -> None:
        """Delete least recently used entries until ``room_for`` more bytes fit the budget
        (an entry without its ``meta.json`` is damaged and goes first)."""
        entries = []
        for entry in self.directory.iterdir() if self.directory else []:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                size = sum(f.stat().st_size for f in entry.glob("*.npy"))
                meta_path = entry / "meta.json"
                clock = meta_path.stat().st_mtime_ns if meta_path.is_file() else -1
            except OSError:  # removed by another process meanwhile
                continue
            entries.append((clock, entry.name, size, entry))
        total = sum(size for _, _, size, _ in entries)
        for _, _, size, entry in sorted(entries):
            if total + room_for <= self.max_bytes:
                break
            shutil.rmtree(entry, ignore_errors=True)
            self._memory.pop(entry.name, None)
            total -= size

    def disk_bytes(self) -> int:
        if self.directory is None or not self.directory.exists():
            return 0
        return sum(f.stat().st_size for f in self.directory.rglob("*.npy"))


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.0f} MB"


def _save_tree(folder: Path, tree: Any, counter: list[int] | None = None) -> Any:
    import numpy as np
    import torch

    counter = counter if counter is not None else [0]
    if isinstance(tree, torch.Tensor):
        index = counter[0]
        counter[0] += 1
        np.save(folder / f"leaf{index}.npy", tree.detach().cpu().numpy())
        return {"leaf": index}
    if isinstance(tree, dict):
        return {"dict": {k: _save_tree(folder, v, counter) for k, v in tree.items()}}
    return {"tuple": [_save_tree(folder, v, counter) for v in tree]}


def _load_tree(folder: Path, structure: Any, mmap: bool) -> Any:
    import numpy as np
    import torch

    if "leaf" in structure:
        array = np.load(folder / f"leaf{structure['leaf']}.npy", mmap_mode="r" if mmap else None)
        with warnings.catch_warnings():  # memory-mapped arrays are read-only; we only index them
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    if "dict" in structure:
        return {k: _load_tree(folder, v, mmap) for k, v in structure["dict"].items()}
    return tuple(_load_tree(folder, v, mmap) for v in structure["tuple"])
