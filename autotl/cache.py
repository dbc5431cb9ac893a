"""Activation cache: what a strategy freezes is computed once per study, not once per trial.

A trial whose strategy leaves the first k layer groups frozen (head-only: all of them) sees the
same activations at that boundary in every step of every trial, as long as its inputs are
deterministic: frozen modules run in eval mode (see :class:`autotl.models.TransferModel`). The
cache computes them once, keyed by backbone weights, depth, data and preprocessing, and keeps
them in memory and in a cache directory shared across studies, bounded in bytes with
least-recently-used eviction. Depth 0 holds the preprocessed inputs themselves.

On disk an entry is a folder with ``tree.safetensors`` (every tensor of the tree, the tree's
shape in the file's metadata; read memory-mapped, so a large entry costs no RAM until used) and
``meta.json`` (format, bytes, compute seconds; its mtime is the LRU clock).
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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV = "AUTOTL_CACHE_DIR"
ENTRY_FORMAT = 2  # 1: one .npy per tensor, the tree's shape in meta.json
_DATA = "tree.safetensors"


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
        from safetensors import SafetensorError

        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != ENTRY_FORMAT:  # written by another autotl version
                log.info("activation cache: recomputing %s (format %s, this autotl reads %s)",
                         entry, meta.get("format", 1), ENTRY_FORMAT)
                shutil.rmtree(entry, ignore_errors=True)
                return None
            tree = _load_tree(entry / _DATA)
            seconds = float(meta["compute_seconds"])
        # a damaged entry is recomputed
        except (OSError, ValueError, KeyError, TypeError, AttributeError,
                SafetensorError) as exc:
            log.warning("activation cache: dropping unreadable entry %s (%s)", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        self._touch(key)
        self._remember(key, tree, seconds)
        return tree, seconds

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
        _save_tree(tmp / _DATA, tree)
        # the bound is on what lands on disk, the file's header included, not on tree_bytes
        size = (tmp / _DATA).stat().st_size
        final = self.directory / key
        if size > self.max_bytes or final.exists():  # too big to keep; or stored meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            return
        self._evict(room_for=size)
        meta = {"format": ENTRY_FORMAT, "bytes": size, "compute_seconds": seconds}
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
                size = sum(f.stat().st_size for f in entry.iterdir() if f.name != "meta.json")
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
        return sum(f.stat().st_size for f in self.directory.rglob("*")
                   if f.is_file() and f.name != "meta.json")


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.0f} MB"


def _save_tree(path: Path, tree: Any) -> None:
    """All tensors of ``tree`` in one safetensors file, named by position; the tree's shape
    (tensor, dict or tuple, nested) goes into the file's metadata."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}

    def shape_of(node: Any) -> Any:
        if isinstance(node, dict):
            return {"dict": {k: shape_of(v) for k, v in node.items()}}
        if isinstance(node, (tuple, list)):
            return {"tuple": [shape_of(v) for v in node]}
        name = str(len(tensors))
        tensor = node.detach().cpu().contiguous()
        # safetensors refuses tensors that share memory
        if any(t.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr()
               for t in tensors.values()):
            tensor = tensor.clone()
        tensors[name] = tensor
        return {"leaf": name}

    structure = shape_of(tree)
    save_file(tensors, path, metadata={"structure": json.dumps(structure)})


def _load_tree(path: Path) -> Any:
    """The tree :func:`_save_tree` wrote, its tensors memory-mapped from ``path``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    tensors = load_file(path)

    def build(node: Any) -> Any:
        if "leaf" in node:
            return tensors[node["leaf"]]
        if "dict" in node:
            return {k: build(v) for k, v in node["dict"].items()}
        return tuple(build(v) for v in node["tuple"])

    return build(json.loads(metadata["structure"]))
