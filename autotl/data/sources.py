"""Load any supported input into :class:`LoadedData`: an ``image`` or ``text`` column and a
``ClassLabel`` ``label`` column, checked before anything trains.

``load_data(source, plugins)`` resolves ``source`` in this order:

1. an existing path:

   - a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
   - a folder with one subfolder per class of image files (``train/``, ``test/`` and
     ``val/`` (or ``valid/``, ``validation/``) folders, each with class subfolders, are read as
     those splits);
   - a ``.csv``, ``.tsv``, ``.json``, ``.jsonl`` or ``.parquet`` table with a text or image
     column (file paths, relative to the table, or a ``datasets.Image`` column) and a label
     column;

2. a registered dataset name (``autotl list datasets``), including ``hf:owner/name``;
3. otherwise :class:`DataError`, with close matches.

A validation split the source brings (a saved or hub dataset's ``validation``, ``valid`` or
``val`` split, a ``val/`` folder) becomes ``LoadedData.val`` and is used as it is instead of
one drawn from the training rows; so does ``val_data=`` (CLI ``--val-data``): another source of
any of these kinds, read with the same column options, whose labels must be training classes.

Every error names the file, row, column or value at fault and what to do. Images from files
and tables are opened and verified one by one; unreadable ones are skipped and counted (see
:mod:`autotl.data.images` for that decision). Datasets from the registry are trusted as their
plugin built them. Local files are read with pandas, pyarrow and PIL, so they never touch the
network.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotl.data.columns import (
    Columns,
    check_classes,
    check_texts,
    choose_columns,
    encode_labels,
)
from autotl.data.images import IMAGE_EXTENSIONS, check_images, is_image_file
from autotl.errors import AutoTLError, ConfigError, DataError, UnknownComponentError

if TYPE_CHECKING:  # pragma: no cover - keeps `datasets` off the listing path
    import datasets

    from autotl.plugins import Plugins
    from autotl.registry import DatasetSpec

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
#: A source's own validation split, by any of its common names (at most one may exist).
VALIDATION_SPLITS = ("validation", "valid", "val")
SPLIT_FOLDERS = ("train", "test", *VALIDATION_SPLITS)
#: A source's own held-out split, scored once after selection (when labelled).
HELD_OUT_SPLITS = ("test",)
#: Part of every fingerprint: bump it when loading changes what the same input produces.
FINGERPRINT_VERSION = "1"


@dataclass(frozen=True)
class LoadedData:
    """A dataset ready for splitting: ``train`` (and ``test`` and ``val`` if the source has
    them) hold an ``image`` (``datasets.Image``, PIL on access) or ``text`` (str) column and a
    ``ClassLabel`` column ``label``."""

    name: str  # registered name, path as given, or hf:id
    modality: str  # "image" or "text"
    train: datasets.Dataset
    test: datasets.Dataset | None
    class_names: list[str]
    fingerprint: str  # hex digest of content and source; a cache key
    skipped: int = 0  # unreadable images left out
    # A validation set the data brings (its own split, or --val-data), used as it is; None:
    # validation is drawn from ``train``. ``val_source`` says where it came from, in words.
    val: datasets.Dataset | None = None
    val_source: str | None = None
    val_fingerprint: str | None = None  # its content: cache keys and the study's identity

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class _Options:
    text_column: str | None = None
    label_column: str | None = None
    image_column: str | None = None
    # Read as a validation set: labels are mapped onto these (the training classes) and a
    # class may have any number of rows.
    classes: tuple[str, ...] | None = None

    def columns(self) -> dict[str, str | None]:
        return {"text_column": self.text_column, "label_column": self.label_column,
                "image_column": self.image_column}


@dataclass(frozen=True)
class _Normalized:
    train: datasets.Dataset
    test: datasets.Dataset | None
    class_names: list[str]
    modality: str
    skipped: int
    columns: Columns
    val: datasets.Dataset | None = None
    val_split: str | None = None  # the source's name for its validation split


class _Digest:
    """sha256 over length-prefixed parts, so ("ab", "c") and ("a", "bc") differ."""

    def __init__(self, *parts: Any) -> None:
        self._hash = hashlib.sha256()
        self.add("autotl.data", FINGERPRINT_VERSION, *parts)

    def add(self, *parts: Any) -> None:
        for part in parts:
            if dataclasses.is_dataclass(part) and not isinstance(part, type):
                part = dataclasses.asdict(part)
            data = part if isinstance(part, bytes) else json.dumps(
                part, sort_keys=True, default=str).encode()
            self._hash.update(len(data).to_bytes(8, "little"))
            self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:16]


# -- entry point ---------------------------------------------------------------------------------


def load_data(
    source: str | os.PathLike[str],
    plugins: Plugins | None = None,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    image_column: str | None = None,
    val_data: str | os.PathLike[str] | None = None,
) -> LoadedData:
    """Load ``source`` (a path, a registered dataset name or ``hf:owner/name``); see the module
    docstring. ``plugins`` supplies the dataset registry (default: a fresh ``load_plugins()``).
    Column names are auto-detected when not given and the choice is unambiguous.
    ``val_data`` (any source of the same kinds) is read with the same column options as the
    validation set (``LoadedData.val``).

    Unreadable or corrupt image files are skipped, counted in ``LoadedData.skipped`` and named
    (up to five) in a logged warning; if more than half are unreadable this raises
    :class:`DataError` instead. Any other bad input raises :class:`DataError` naming the path,
    row, column or value, before anything trains.
    """
    options = _Options(text_column, label_column, image_column)
    if text_column and image_column:
        msg = (f"pass text_column or image_column, not both (got {text_column=}, "
               f"{image_column=}); a dataset has one input column.")
        raise DataError(msg)
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if not name:
        msg = (f"no data given ({source!r}); pass a dataset name (`autotl list datasets`), a "
               f"folder of class subfolders of images, a table file or a save_to_disk folder.")
        raise DataError(msg)
    if plugins is None and val_data is not None:
        from autotl.plugins import load_plugins

        plugins = load_plugins()
    data = _load_source(name, plugins, options)
    if data.val_source is not None:
        log.info("validation: %s (%d rows), used as given", data.val_source, len(data.val))
    if val_data is None:
        return data
    return _with_val_data(data, val_data, plugins, options)


def _load_source(name: str, plugins: Plugins | None, options: _Options) -> LoadedData:
    path = Path(name).expanduser()
    if path.exists():
        return _load_path(path, name, options)
    if plugins is None:
        from autotl.plugins import load_plugins

        plugins = load_plugins()
    registry = plugins.datasets
    try:
        spec = registry.get(name)
    except UnknownComponentError:
        raise DataError(_not_found_message(name, path, registry.names(),
                                           [ns.prefix for ns in registry.namespaces])) from None
    return _load_registered(spec, options)


def _with_val_data(data: LoadedData, val_data: str | os.PathLike[str],
                   plugins: Plugins | None, options: _Options) -> LoadedData:
    """``data`` with ``val_data`` read as its validation set (labels among its classes)."""
    given = os.fspath(val_data)
    if data.val is not None:
        msg = (f"{data.name!r} brings its own validation split ({data.val_source}, "
               f"{len(data.val)} rows) and --val-data {given!r} was given too; autotl uses one "
               f"validation set. Drop --val-data to use the data's own split, or remove that "
               f"split from {data.name!r} to use {given!r}.")
        raise ConfigError(msg)
    if not given:
        raise DataError("--val-data is empty; pass a file or folder, or leave it out to draw "
                        "validation from the training rows.")
    try:
        val = _load_source(given, plugins, dataclasses.replace(
            options, classes=tuple(data.class_names)))
    except DataError as exc:
        raise DataError(f"--val-data {given!r}: {exc}") from None
    extra = [s for s, ds in (("test", val.test), (val.val_source, val.val)) if ds is not None]
    if extra:
        msg = (f"--val-data {given!r} holds more than one split (train and {', '.join(extra)}); "
               f"pass a single set of rows: a table file, a folder of class subfolders, or a "
               f"save_to_disk folder of one split.")
        raise DataError(msg)
    if val.modality != data.modality:
        msg = (f"--val-data {given!r} holds {val.modality} data but {data.name!r} holds "
               f"{data.modality} data; pass validation rows of the same kind.")
        raise DataError(msg)
    if len(val.train) == 0:
        msg = (f"--val-data {given!r} holds no rows; pass a file with at least one labelled "
               f"example, or leave --val-data out to draw validation from the training rows.")
        raise DataError(msg)
    log.info("validation: --val-data %s (%d rows), used as given", given, len(val.train))
    return dataclasses.replace(
        data, val=val.train, val_source=f"--val-data {given}", val_fingerprint=val.fingerprint,
        skipped=data.skipped + val.skipped)


def _not_found_message(name: str, path: Path, names: list[str], prefixes: list[str]) -> str:
    msg = (f"{name!r} is neither an existing file or folder (looked for {path.absolute()}) "
           f"nor a registered dataset.")
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    parent = path.parent if str(path.parent) else Path(".")
    if parent.is_dir():
        try:
            siblings = sorted(os.listdir(parent))[:2000]
        except OSError:
            siblings = []
        close += [str(parent / s) if str(path.parent) not in ("", ".") else s
                  for s in difflib.get_close_matches(path.name, siblings, n=2, cutoff=0.75)]
    if close:
        msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    msg += f" Registered datasets: {', '.join(names) or 'none'}"
    if prefixes:
        msg += "; open namespaces: " + ", ".join(f"{p}:<id>" for p in prefixes)
    msg += (". A path must exist: check its spelling and the current directory "
            "(`autotl list datasets` shows the names).")
    return msg


# -- registered datasets -------------------------------------------------------------------------


def _load_registered(spec: DatasetSpec, options: _Options) -> LoadedData:
    import datasets

    where = f"dataset {spec.name!r}"
    try:
        loaded = spec.load()
    except AutoTLError:
        raise
    except Exception as exc:
        msg = (f"{where} (from plugin {spec.provider!r}) failed to load: "
               f"{type(exc).__name__}: {exc}")
        raise DataError(msg) from exc
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    if not isinstance(loaded, Mapping):
        msg = (f"{where} (from plugin {spec.provider!r}) returned {type(loaded).__name__}; "
               f"DatasetSpec.load must return a datasets.DatasetDict with a 'train' split.")
        raise DataError(msg)
    splits = _pick_splits(loaded, where)
    norm = _normalize_arrow(splits, where, options, verify=False, base_dir=None,
                            remedy="Pick another dataset or report it to the plugin's author.")
    digest = _Digest("registered", spec.name, norm.columns, norm.class_names,
                     {k: getattr(v, "_fingerprint", None) for k, v in splits.items()})
    return _loaded(spec.name, norm, digest)


def _pick_splits(loaded: Mapping[str, Any], where: str) -> dict[str, datasets.Dataset]:
    if "train" in loaded:
        train = loaded["train"]
    elif len(loaded) == 1:
        train = next(iter(loaded.values()))
    else:
        msg = (f"{where} has splits {sorted(loaded)} but none is called 'train'; save the "
               f"split to train on as 'train' (and an optional held-out 'test').")
        raise DataError(msg)
    splits = {"train": train}
    for held_out in HELD_OUT_SPLITS:
        if loaded.get(held_out) is not None and loaded[held_out] is not train:
            splits[held_out] = loaded[held_out]
    found = [s for s in VALIDATION_SPLITS if loaded.get(s) is not None and loaded[s] is not train]
    if len(found) > 1:
        msg = (f"{where} has validation splits {found}; autotl uses one validation set as "
               f"given. Keep one of them (or rename the others).")
        raise DataError(msg)
    if found:
        splits[found[0]] = loaded[found[0]]
    return splits


def _loaded(name: str, norm: _Normalized, digest: _Digest) -> LoadedData:
    fingerprint = digest.hexdigest()
    val_source = val_fingerprint = None
    if norm.val is not None:
        kind = "folder" if (norm.val_split or "").endswith("/") else "split"
        val_source = f"the data's own `{norm.val_split}` {kind}"
        # The data's fingerprint covers every split it holds, its validation rows included.
        val_fingerprint = hashlib.sha256(
            f"{fingerprint}|own={norm.val_split}".encode()).hexdigest()[:16]
    return LoadedData(name=name, modality=norm.modality, train=norm.train, test=norm.test,
                      class_names=list(norm.class_names), fingerprint=fingerprint,
                      skipped=norm.skipped, val=norm.val, val_source=val_source,
                      val_fingerprint=val_fingerprint)


# -- paths ---------------------------------------------------------------------------------------


def _load_path(path: Path, name: str, options: _Options) -> LoadedData:
    if path.is_dir():
        if _is_saved_dataset(path):
            return _load_saved(path, name, options)
        return _load_image_folder(path, name, options.classes)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".json", ".jsonl"):
        return _load_records(path, name, options)
    if suffix == ".parquet":
        return _load_parquet(path, name, options)
    msg = (f"cannot read {path}: a {suffix or 'suffix-less'} file is not a supported input. "
           f"Pass a table ({', '.join(TABLE_SUFFIXES)}), a folder with one subfolder per class "
           f"of images, or a folder written by save_to_disk.")
    raise DataError(msg)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file())


def _load_saved(path: Path, name: str, options: _Options) -> LoadedData:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        msg = (f"cannot read the saved dataset in {path}: {type(exc).__name__}: {exc}. The "
               f"folder should be written by Dataset.save_to_disk or DatasetDict.save_to_disk; "
               f"save it again.")
        raise DataError(msg) from exc
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    splits = _pick_splits(loaded, str(path))
    digest = _Digest("saved", {k: v._fingerprint for k, v in splits.items()})
    norm = _normalize_arrow(splits, str(path), options, verify=True, base_dir=Path.cwd(),
                            remedy="Add examples of it or filter it out, then save again.",
                            digest=digest)
    digest.add(norm.columns, norm.class_names)
    return _loaded(name, norm, digest)


def _load_parquet(path: Path, name: str, options: _Options) -> LoadedData:
    import datasets
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    try:
        table = pq.read_table(path)
    except Exception as exc:
        msg = f"cannot read {path} as Parquet: {type(exc).__name__}: {exc}. Write it again."
        raise DataError(msg) from exc
    # Dataset() takes its features (Image, ClassLabel) from the schema's "huggingface" metadata.
    splits = {"train": datasets.Dataset(InMemoryTable(table))}
    digest = _Digest("table", _file_digest(path))
    norm = _normalize_arrow(splits, str(path), options, verify=True, base_dir=path.parent,
                            remedy="Add rows with that label or remove its rows.", digest=digest)
    digest.add(norm.columns, norm.class_names)
    return _loaded(name, norm, digest)


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


# -- image folders -------------------------------------------------------------------------------


def _load_image_folder(path: Path, name: str,
                       classes_given: tuple[str, ...] | None = None) -> LoadedData:
    import datasets

    children = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
    folders = {p.name: p for p in children if p.is_dir()}
    # train/<class>/… (and test/, val/ <class>/…), unless "train" is itself a class of loose
    # images.
    split_layout = (
        "train" in folders and set(folders) <= set(SPLIT_FOLDERS)
        and not any(is_image_file(p) for p in children if p.is_file())
        and any(p.is_dir() for p in folders["train"].iterdir()))
    roots = {s: folders[s] for s in SPLIT_FOLDERS if s in folders} if split_layout else {
        "train": path}
    found = [s for s in VALIDATION_SPLITS if s in roots]
    if len(found) > 1:
        msg = (f"{path} has validation folders {found}; autotl uses one validation set as "
               f"given. Keep one of them (merge or rename the others).")
        raise DataError(msg)
    digest = _Digest("imagefolder")
    out: dict[str, datasets.Dataset] = {}
    names: list[str] = list(classes_given or [])
    skipped = 0
    for split, root in roots.items():
        classes = _class_folders(root)
        if split == "train" and classes_given is None:
            names = sorted(classes)
            if len(names) < 2:
                msg = (f"found one class folder ({names[0]!r}) in {root}; a classifier needs at "
                       f"least 2 classes. Add a subfolder of images for each other class.")
                raise DataError(msg)
        else:
            extra = sorted(set(classes) - set(names))
            if extra:
                train_at = (roots["train"] if split != "train"
                            else "the training data")
                msg = (f"class folder(s) {extra} in {root} have no counterpart in {train_at} "
                       f"(training classes: {', '.join(names)}); the {split} classes must be "
                       f"training classes. Add them to the training data or remove them "
                       f"from {root}.")
                raise DataError(msg)
        files = [(f, names.index(c)) for c in sorted(classes) for f in classes[c]]

        def add(i: int, data: bytes, files: list[tuple[Path, int]] = files,
                root: Path = root) -> None:
            digest.add(str(files[i][0].relative_to(root)), files[i][1], data)

        checked = check_images([f for f, _ in files], where=str(root),
                               describe=lambda i, files=files, root=root: str(
                                   files[i][0].relative_to(root)), digest=add)
        skipped += checked.skipped
        kept = [files[i] for i in checked.kept]
        codes = [code for _, code in kept]
        if split == "train" and classes_given is None:
            check_classes(codes, names, str(root), "Add examples or remove the folder.")
        features = datasets.Features({"image": datasets.Image(),
                                      "label": datasets.ClassLabel(names=names)})
        role = split if split in ("train", "test") else "val"
        out[role] = datasets.Dataset.from_dict(
            {"image": [str(f.resolve()) for f, _ in kept], "label": codes}, features=features)
    columns = Columns("image", "label", "image")
    norm = _Normalized(out["train"], out.get("test"), names, "image", skipped, columns,
                       val=out.get("val"), val_split=f"{found[0]}/" if found else None)
    digest.add(names)
    return _loaded(name, norm, digest)


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """Image files under each visible subfolder of ``root`` (recursively), by subfolder name."""
    classes: dict[str, list[Path]] = {}
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        classes[folder.name] = sorted(
            f for f in folder.rglob("*")
            if f.is_file() and is_image_file(f)
            and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    loose = [f for f in root.iterdir() if f.is_file() and is_image_file(f)]
    kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
    if not any(classes.values()):
        if loose:
            msg = (f"{root} holds {len(loose)} image(s) but no class subfolders with images; "
                   f"put each class's images in its own subfolder ({root}/<class>/<image>) so "
                   f"their labels are known.")
        else:
            tables = [f.name for f in root.iterdir() if f.suffix.lower() in TABLE_SUFFIXES]
            hint = (f" To load a table, pass the file itself (e.g. {root / tables[0]})."
                    if tables else "")
            msg = (f"no images found in {root}: expected one subfolder per class holding image "
                   f"files ({kinds}).{hint}")
        raise DataError(msg)
    if loose:
        log.warning("ignoring %d image(s) directly in %s: only images inside class subfolders "
                    "are labelled (e.g. %s)", len(loose), root, loose[0].name)
    return classes


# -- tables read into Python values (CSV, TSV, JSON, JSON Lines) ---------------------------------


def _load_records(path: Path, name: str, options: _Options) -> LoadedData:
    import datasets

    columns = _read_columns(path)
    where = str(path)
    kinds = {c: _python_kind(v) for c, v in columns.items()}
    cols = choose_columns(kinds, lambda c: _first(columns[c]), where,
                          **options.columns())
    digest = _Digest("table", _file_digest(path), cols)
    inputs, labels = columns[cols.input], columns[cols.label]
    skipped = 0
    if cols.modality == "text":
        check_texts(inputs, where, cols.input)
        feature: Any = datasets.Value("string")
    else:
        inputs = [_resolve_path(v, path.parent) for v in inputs]
        checked = check_images(
            inputs, where=f"column {cols.input!r} of {where}",
            describe=lambda i: f"row {i} ({columns[cols.input][i]})",
            digest=lambda i, data: digest.add(i, data))
        skipped = checked.skipped
        inputs = [inputs[i] for i in checked.kept]
        labels = [labels[i] for i in checked.kept]
        feature = datasets.Image()
    codes, names = encode_labels(labels, where, cols.label,
                                 list(options.classes) if options.classes else None)
    if options.classes is None:
        check_classes(codes, names, where, "Add rows with that label or remove its rows.")
    features = datasets.Features({cols.modality: feature,
                                  "label": datasets.ClassLabel(names=names)})
    train = datasets.Dataset.from_dict({cols.modality: inputs, "label": codes},
                                       features=features)
    digest.add(names)
    return _loaded(name, _Normalized(train, None, names, cols.modality, skipped, cols), digest)


def _read_columns(path: Path) -> dict[str, list[Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, "\t" if suffix == ".tsv" else ",")
        if suffix == ".jsonl":
            return _read_jsonl(path)
        return _read_json(path)
    except UnicodeDecodeError as exc:
        msg = (f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 "
               f"and try again.")
        raise DataError(msg) from None


def _read_csv(path: Path, sep: str) -> dict[str, list[Any]]:
    import pandas as pd

    try:
        # Only empty cells are missing: texts such as "NA" or "null" stay text.
        frame = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""],
                            encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header row and one row per example.")\
            from None
    except pd.errors.ParserError as exc:
        msg = f"cannot parse {path}: {exc}. Check the quoting and the number of fields per row."
        raise DataError(msg) from None
    if frame.empty:
        msg = f"{path} has a header ({', '.join(map(str, frame.columns))}) but no rows."
        raise DataError(msg)
    frame = frame.astype(object).where(frame.notna(), None)
    return {str(c): frame[c].tolist() for c in frame.columns}


def _read_jsonl(path: Path) -> dict[str, list[Any]]:
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                msg = f"line {number} of {path} is not valid JSON ({exc.msg}); fix or delete it."
                raise DataError(msg) from None
            if not isinstance(record, dict):
                msg = (f"line {number} of {path} holds {type(record).__name__} {record!r:.60}; "
                       f"each line must be a JSON object such as "
                       f'{{"text": "...", "label": "..."}}.')
                raise DataError(msg)
            records.append(record)
    return _records_to_columns(records, path)


def _read_json(path: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        msg = (f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
               f"For one object per line, name the file .jsonl.")
        raise DataError(msg) from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            data = next(iter(lists.values()))  # {"data": [{...}, ...]}
        elif lists and len(lists) == len(data) and len({len(v) for v in lists.values()}) == 1:
            return {str(k): v for k, v in lists.items()}  # {"text": [...], "label": [...]}
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return _records_to_columns(data, path)
    msg = (f"{path} holds JSON autotl cannot read as a table; use a list of objects "
           f'([{{"text": "...", "label": "..."}}, ...]), an object of equal-length lists, or '
           f"JSON Lines (.jsonl).")
    raise DataError(msg)


def _records_to_columns(records: list[dict[str, Any]], path: Path) -> dict[str, list[Any]]:
    if not records:
        raise DataError(f"{path} holds no records; it needs one object per example.")
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {str(n): [r.get(n) for r in records] for n in names}


def _python_kind(values: Sequence[Any]) -> str:
    first = _first(values)
    if isinstance(first, str):
        return "string"
    return "other"


def _first(values: Sequence[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _resolve_path(value: Any, base: Path | None) -> Any:
    if not isinstance(value, str) or base is None:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


# -- Arrow datasets (saved folders, Parquet, registered datasets) --------------------------------


def _normalize_arrow(
    splits: Mapping[str, datasets.Dataset],
    where: str,
    options: _Options,
    *,
    verify: bool,
    base_dir: Path | None,
    remedy: str,
    digest: _Digest | None = None,
) -> _Normalized:
    """Select, check, class-encode and rename the input and label columns; a labelled
    ``test`` split becomes the test split, a labelled validation split (``VALIDATION_SPLITS``)
    the validation set. With ``options.classes`` (a validation source) labels are mapped onto
    those classes and any class may be missing."""
    import datasets

    train = splits["train"]
    kinds = {c: _feature_kind(f) for c, f in train.features.items()}

    def first(column: str) -> Any:
        head = train.select(range(min(len(train), 100))) if len(train) > 100 else train
        return _first(_values(head, column))

    cols = choose_columns(kinds, first, where, **options.columns())
    names: list[str] | None = list(options.classes) if options.classes else None
    out: dict[str, datasets.Dataset] = {}
    skipped = 0
    val_split = None
    for split, ds in splits.items():
        role = split if split in ("train", "test") else "val"
        here = where if split == "train" else f"the {split} split of {where}"
        missing = [c for c in (cols.input, cols.label) if c not in ds.column_names]
        if missing:
            log.warning("ignoring %s: it lacks column(s) %s", here, missing)
            continue
        ds = ds.select_columns([cols.input, cols.label])
        if cols.modality == "text":
            check_texts(_values(ds, cols.input), here, cols.input)
            if ds.features[cols.input] != datasets.Value("string"):
                ds = ds.cast_column(cols.input, datasets.Value("string"))
        else:
            ds, n_bad = _arrow_images(ds, cols.input, here, verify=verify, base_dir=base_dir,
                                      digest=digest)
            skipped += n_bad
        ds, names = _arrow_labels(ds, cols.label, here, names, train=split == "train")
        if ds is None:
            continue
        if role == "val" and len(ds) == 0:
            log.warning("ignoring %s: it has no rows", here)
            continue
        if split == "train" and options.classes is None:
            check_classes(_values(ds, cols.label), names, here, remedy)
        renames = {c: n for c, n in ((cols.input, cols.modality), (cols.label, "label"))
                   if c != n}
        out[role] = ds.rename_columns(renames) if renames else ds
        if role == "val":
            val_split = split
    assert names is not None  # the train split always gets its labels or raises
    return _Normalized(out["train"], out.get("test"), names, cols.modality, skipped, cols,
                       val=out.get("val"), val_split=val_split)


def _values(ds: datasets.Dataset, column: str) -> list[Any]:
    # The Arrow view honours an indices mapping (select/shuffle) and skips image decoding.
    return ds.with_format("arrow")[column].to_pylist()


def _feature_kind(feature: Any) -> str:
    import datasets

    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.ClassLabel):
        return "classlabel"
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return "string"
    return "other"


def _arrow_images(
    ds: datasets.Dataset,
    column: str,
    where: str,
    *,
    verify: bool,
    base_dir: Path | None,
    digest: _Digest | None,
) -> tuple[datasets.Dataset, int]:
    import datasets

    feature = ds.features[column]
    is_paths = not isinstance(feature, datasets.Image)
    if not is_paths and not verify:
        return (ds if feature.decode else ds.cast_column(column, datasets.Image())), 0
    shown = _values(ds, column)
    refs = [_resolve_path(v, base_dir) for v in shown] if is_paths else shown
    skipped = 0
    if verify:
        checked = check_images(
            refs, where=f"column {column!r} of {where}",
            describe=lambda i: f"row {i}" + (f" ({shown[i]})" if is_paths else ""),
            digest=(lambda i, data: digest.add(i, data)) if digest is not None else None)
        if checked.skipped:
            skipped = checked.skipped
            # In memory: never write index files into the user's dataset folder.
            ds = ds.select(checked.kept, keep_in_memory=True).flatten_indices(
                keep_in_memory=True)
            refs = [refs[i] for i in checked.kept]
    if is_paths:
        ds = ds.remove_columns(column).add_column(column, refs)
        ds = ds.cast_column(column, datasets.Image())
    elif not feature.decode:
        ds = ds.cast_column(column, datasets.Image())
    return ds, skipped


def _arrow_labels(
    ds: datasets.Dataset, column: str, where: str, names: list[str] | None, *, train: bool,
) -> tuple[datasets.Dataset | None, list[str]]:
    """Class-encode ``column`` (train defines the classes); a test split with unlabelled rows
    (hub test splits often use -1) is dropped rather than failing the load."""
    import datasets

    feature = ds.features[column]
    if isinstance(feature, datasets.ClassLabel) and (names is None or feature.names == names):
        codes = _values(ds, column)
        bad = next((i for i, c in enumerate(codes) if c is None or c < 0), None)
        if bad is not None:
            if not train:
                log.warning("ignoring %s: row %d has no label (%r)", where, bad, codes[bad])
                return None, names or list(feature.names)
            msg = (f"row {bad} of {where} has no label ({codes[bad]!r} in column {column!r}); "
                   f"label every training row or drop the unlabelled ones.")
            raise DataError(msg)
        return ds, list(feature.names)
    values = _values(ds, column)
    if isinstance(feature, datasets.ClassLabel):  # a test split with its own class order
        values = [feature.names[v] if v is not None and v >= 0 else None for v in values]
    codes, names = encode_labels(values, where, column, names)
    ds = ds.remove_columns(column).add_column(column, codes)
    return ds.cast_column(column, datasets.ClassLabel(names=names)), names


__all__ = ["TABLE_SUFFIXES", "VALIDATION_SPLITS", "LoadedData", "load_data"]
