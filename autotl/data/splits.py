"""Seeded, stratified train/validation splits and per-class subsampling.

Validation is drawn first and never depends on ``n_per_class``, so the studies of a size ladder
(5, 20, 100 … examples per class) are all scored on the same validation set; smaller training
sets are nested in larger ones for the same seed.

A validation set the data brings (``LoadedData.val``: its own split, or ``--val-data``) is used
as it is: nothing is drawn, and every training row is there to train on (or to subsample).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from autotl.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import numpy as np

    from autotl.data.sources import LoadedData


def prepare_splits(
    data: LoadedData,
    *,
    n_per_class: int | None,
    val_fraction: float,
    seed: int,
    max_val_per_class: int = 100,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, val)`` drawn from ``data.train``, or ``data.val`` as given with all of
    ``data.train`` to train on (``val_fraction`` then does not apply).

    Per class, validation takes ``round(val_fraction * count)`` examples, at least 1, at most
    ``max_val_per_class`` and always leaving one to train on. Training is the rest, or exactly
    ``n_per_class`` examples of each class from the rest (balanced). Each class has its own
    random stream seeded by ``(seed, class)``; rows keep their original order.
    """
    _check_settings(n_per_class, val_fraction, seed, max_val_per_class)
    if data.val is not None:
        val, rest = [], _shuffled_rows(data, seed)
    else:
        val, rest = _draw_validation(data, val_fraction, seed, max_val_per_class)
    if n_per_class is not None:
        short = {c: len(idx) for c, idx in rest.items() if len(idx) < n_per_class}
        if short:
            largest = min(len(idx) for idx in rest.values())
            listed = ", ".join(f"{data.class_names[c]!r} ({k})" for c, k in short.items())
            after = ("" if data.val is not None else "after holding out validation, ")
            msg = (f"n_per_class={n_per_class} is more than {data.name!r} has: {after}"
                   f"class(es) {listed} have fewer training examples. The "
                   f"largest n_per_class that works is {largest}; pass that or less, or leave "
                   f"it unset to train on everything.")
            raise DataError(msg)
        rest = {c: idx[:n_per_class] for c, idx in rest.items()}
    train_rows = sorted(int(i) for idx in rest.values() for i in idx)
    train = data.train.select(train_rows, keep_in_memory=True)
    if data.val is not None:
        return train, data.val
    val_rows = sorted(int(i) for i in val)
    return train, data.train.select(val_rows, keep_in_memory=True)


def keep_sample(data: LoadedData, *, n_per_class: int, val_fraction: float,
                seed: int) -> LoadedData:
    """``data`` with ``train`` cut to the ``n_per_class`` rows per class that
    :func:`prepare_splits` trains on at the same settings: a user who has only those rows.

    The same rows, so a benchmark can pair a search that sees only them with fixed configs
    trained on exactly them. The fingerprint covers the cut (the cache and the study identity
    then tell the sample from the whole data)."""
    import dataclasses
    import hashlib

    train, _ = prepare_splits(data, n_per_class=n_per_class, val_fraction=val_fraction,
                              seed=seed)
    digest = hashlib.sha256(
        f"{data.fingerprint}|sample={n_per_class}|{val_fraction}|{seed}".encode()).hexdigest()
    return dataclasses.replace(data, train=train, fingerprint=digest[:16])


def hold_out_test(data: LoadedData, fraction: float, seed: int) -> LoadedData:
    """``data`` with ``fraction`` of each class moved from ``train`` into a new ``test`` split
    (seeded, stratified, at least one row per class and at least two left to split further),
    for sources that bring no test split of their own."""
    import dataclasses
    import hashlib

    import numpy as np

    if data.test is not None:
        msg = (f"{data.name!r} has a test split of its own ({len(data.test)} rows), which is "
               f"what autotl scores; --test-fraction would hold out another. Leave "
               f"--test-fraction out.")
        raise ConfigError(msg)
    if not 0 < fraction < 1:
        raise ConfigError(f"test_fraction must be between 0 and 1, but got {fraction=}.")
    labels = label_array(data.train)
    test: list[int] = []
    small = []
    for c, name in enumerate(data.class_names):
        rows = np.flatnonzero(labels == c)
        n_test = max(1, math.floor(fraction * len(rows) + 0.5))
        if len(rows) - n_test < 2:
            small.append(f"{name!r} ({len(rows)})")
            continue
        # Its own stream ("test", seed, class): validation and subsampling draw theirs after.
        order = np.random.default_rng([seed, c, 7]).permutation(rows)
        test.extend(order[:n_test].tolist())
    if small:
        msg = (f"--test-fraction {fraction} leaves fewer than 2 rows to train and validate on "
               f"in class(es) {', '.join(small)} of {data.name!r}; lower the fraction, or "
               f"remove those classes with --classes.")
        raise DataError(msg)
    held = set(test)
    train_rows = [i for i in range(len(labels)) if i not in held]
    digest = hashlib.sha256(f"{data.fingerprint}|test={fraction}|{seed}".encode()).hexdigest()
    return dataclasses.replace(
        data, train=data.train.select(train_rows, keep_in_memory=True),
        test=data.train.select(sorted(held), keep_in_memory=True), fingerprint=digest[:16])


def select_classes(data: LoadedData, names: list[str]) -> LoadedData:
    """``data`` restricted to the classes ``names`` (in that order), labels re-encoded.

    Useful where a source has many uneven classes (``fortunes`` has categories of 2 entries) and
    a size ladder needs every class to have enough examples.
    """
    import dataclasses
    import hashlib

    import datasets

    unknown = [n for n in names if n not in data.class_names]
    if unknown:
        msg = (f"class(es) {unknown} are not in {data.name!r}; its classes are "
               f"{data.class_names}. Pass names from that list to --classes.")
        raise DataError(msg)
    if len(set(names)) < 2:
        msg = f"--classes needs at least 2 distinct classes, but got {names}."
        raise DataError(msg)
    old = {data.class_names.index(n): i for i, n in enumerate(names)}

    def keep(split: datasets.Dataset | None) -> datasets.Dataset | None:
        if split is None:
            return None
        labels = label_array(split).tolist()
        rows = [i for i, label in enumerate(labels) if label in old]
        # In memory throughout: flattening the selection on disk (as add_column would) writes
        # a cache file beside the source's shared one, and processes selecting from the same
        # built-in dataset at once raced on it (one removed the other's temporary file).
        kept = split.select(rows, keep_in_memory=True).flatten_indices(keep_in_memory=True)
        kept = kept.remove_columns("label")
        return kept.add_column("label", [old[labels[i]] for i in rows]).cast_column(
            "label", datasets.ClassLabel(names=list(names)))

    digest = hashlib.sha256(f"{data.fingerprint}|{names}".encode()).hexdigest()[:16]
    val, val_fingerprint = keep(data.val), data.val_fingerprint
    if val is not None:
        if len(val) == 0:
            msg = (f"--classes {','.join(names)} leaves no row of the validation set "
                   f"({data.val_source}); its rows are all of other classes. Pick classes it "
                   f"holds, or validation rows of these classes.")
            raise DataError(msg)
        val_fingerprint = hashlib.sha256(
            f"{data.val_fingerprint}|{names}".encode()).hexdigest()[:16]
    return dataclasses.replace(data, train=keep(data.train), test=keep(data.test),
                               class_names=list(names), fingerprint=digest, val=val,
                               val_fingerprint=val_fingerprint)


def train_counts(
    data: LoadedData, *, val_fraction: float, seed: int = 0, max_val_per_class: int = 100,
) -> dict[str, int]:
    """Training examples per class left after validation (all of them where the data brings
    its own): the ceiling for ``n_per_class``."""
    _check_settings(None, val_fraction, seed, max_val_per_class)
    if data.val is not None:
        rest = _shuffled_rows(data, seed)
    else:
        _, rest = _draw_validation(data, val_fraction, seed, max_val_per_class)
    return {data.class_names[c]: len(idx) for c, idx in rest.items()}


def label_array(split: datasets.Dataset) -> np.ndarray:
    """The ``label`` column as an int64 array, fast (``split["label"]`` goes row by row)."""
    import numpy as np

    # A copy: Arrow's zero-copy view is read-only, which torch.from_numpy warns about.
    return np.array(split.with_format("arrow")["label"].to_numpy(), dtype=np.int64)


def _check_settings(n_per_class: int | None, val_fraction: float, seed: int,
                    max_val_per_class: int) -> None:
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), but got "
                          f"{val_fraction=}.")
    if n_per_class is not None and n_per_class < 1:
        raise ConfigError(f"n_per_class must be at least 1 (or None for all), but got "
                          f"{n_per_class=}.")
    if max_val_per_class < 1:
        raise ConfigError(f"max_val_per_class must be at least 1, but got {max_val_per_class=}.")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, but got {seed=}.")


def _shuffled_rows(data: LoadedData, seed: int) -> dict[int, np.ndarray]:
    """Each class's training rows in the seeded order validation would be drawn from, so
    ``n_per_class`` subsets stay nested across sizes."""
    import numpy as np

    labels = label_array(data.train)
    return {c: np.random.default_rng([seed, c]).permutation(np.flatnonzero(labels == c))
            for c in range(len(data.class_names))}


def _draw_validation(
    data: LoadedData, val_fraction: float, seed: int, max_val_per_class: int,
) -> tuple[list[int], dict[int, np.ndarray]]:
    """Validation rows, and each class's remaining rows in a seeded random order."""
    import numpy as np

    labels = label_array(data.train)
    val: list[int] = []
    rest: dict[int, np.ndarray] = {}
    small = []
    for c, name in enumerate(data.class_names):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            small.append(f"{name!r} ({len(rows)})")
            continue
        # One stream per class: a class's split does not shift when another class changes.
        order = np.random.default_rng([seed, c]).permutation(rows)
        wanted = math.floor(val_fraction * len(rows) + 0.5)  # round half up, unlike round()
        n_val = min(max(1, wanted), max_val_per_class, len(rows) - 1)
        val.extend(order[:n_val].tolist())
        rest[c] = order[n_val:]
    if small:
        msg = (f"class(es) {', '.join(small)} of {data.name!r} have fewer than 2 examples; each "
               f"class needs at least 2 (one to train, one to validate). Add examples or "
               f"remove the class.")
        raise DataError(msg)
    return val, rest


__all__ = ["hold_out_test", "label_array", "prepare_splits", "train_counts"]
