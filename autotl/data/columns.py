"""Which columns of a table are the input and the label, and checking their values.

Shared by every source (tables, saved datasets, registered datasets): the rules for
auto-detecting columns, the messages for bad values, and class encoding.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotl.data.images import IMAGE_EXTENSIONS
from autotl.errors import DataError

#: Column names tried, in this order, when the caller does not name the columns.
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y", "class_name",
               "sentiment", "intent", "stars", "rating", "fine_label")
TEXT_NAMES = ("text", "sentence", "review", "content", "document", "body", "comment",
              "message", "tweet", "question", "utterance", "title")


@dataclass(frozen=True)
class Columns:
    """The chosen input column, label column and the modality the input gives."""

    input: str
    label: str
    modality: str


def choose_columns(
    kinds: Mapping[str, str],
    first: Callable[[str], Any],
    where: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    image_column: str | None = None,
) -> Columns:
    """Pick the label and input columns: the ones named by the caller, else the unambiguous
    ones (a single ClassLabel or a conventionally named label; a single image column, a single
    text column, or a conventionally named text column).

    ``kinds`` maps each column to "image" (a ``datasets.Image``), "classlabel", "string" or
    "other"; ``first(column)`` is its first non-missing value (to spot image paths).
    """
    given = {"text_column": text_column, "label_column": label_column,
             "image_column": image_column}
    columns = list(kinds)
    listed = ", ".join(repr(c) for c in columns)
    for option, name in given.items():
        if name is not None and name not in kinds:
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            msg = f"{option}={name!r} is not a column of {where}; its columns are {listed}.{hint}"
            raise DataError(msg)

    label = label_column or _find_label(kinds, where, listed)
    given_input = image_column or text_column
    if given_input == label:
        msg = (f"column {label!r} of {where} cannot be both the label and the input; name "
               f"another label_column (columns: {listed}).")
        raise DataError(msg)
    if image_column:
        return Columns(image_column, label, "image")
    if text_column:
        return Columns(text_column, label, "text")

    rest = [c for c in columns if c != label]
    images = [c for c in rest if kinds[c] == "image"]
    strings = [c for c in rest if kinds[c] == "string"]
    paths = [c for c in strings if _looks_like_image_path(first(c))]
    texts = [c for c in strings if c not in paths]
    named = _by_name(texts, TEXT_NAMES)
    if len(images) == 1:
        return Columns(images[0], label, "image")
    if not images and paths and not texts and len(paths) == 1:
        return Columns(paths[0], label, "image")
    if not images and texts and not paths:
        if named:
            return Columns(named[0], label, "text")
        if len(texts) == 1:
            return Columns(texts[0], label, "text")
    candidates = images + paths + texts
    if candidates:
        listed = ", ".join(map(repr, candidates))
        msg = (f"cannot tell which column of {where} is the input: {listed} could each be "
               f"(label: {label!r}). Pass text_column= or image_column= "
               f"(CLI: --text-column / --image-column).")
    else:
        msg = (f"{where} has no text or image column besides the label {label!r} (columns: "
               f"{listed}). Text must be strings; images a datasets.Image column or file paths "
               f"ending in an image suffix such as .png or .jpg.")
    raise DataError(msg)


def _find_label(kinds: Mapping[str, str], where: str, listed: str) -> str:
    classlabels = [c for c, k in kinds.items() if k == "classlabel"]
    if len(classlabels) == 1:
        return classlabels[0]
    named = _by_name(classlabels or list(kinds), LABEL_NAMES)
    if named:
        return named[0]
    if classlabels:
        msg = (f"{where} has several ClassLabel columns ({', '.join(map(repr, classlabels))}); "
               f"pass label_column= (CLI: --label-column) to pick one.")
    else:
        msg = (f"no label column in {where}: none is a ClassLabel and none is called "
               f"{', '.join(LABEL_NAMES[:6])}, …; its columns are {listed}. Pass "
               f"label_column= (CLI: --label-column NAME).")
    raise DataError(msg)


def _by_name(columns: Sequence[str], names: Sequence[str]) -> list[str]:
    """``columns`` whose lower-cased name is in ``names``, in the order of ``names``."""
    lowered = {c.lower(): c for c in reversed(columns)}
    return [lowered[n] for n in names if n in lowered]


def _looks_like_image_path(value: Any) -> bool:
    return (isinstance(value, str) and len(value) < 4096 and "\n" not in value
            and Path(value).suffix.lower() in IMAGE_EXTENSIONS)


def check_texts(values: Sequence[Any], where: str, column: str) -> None:
    for i, value in enumerate(values):
        if isinstance(value, str):
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            what = "is empty"
        else:
            what = f"holds {type(value).__name__} {value!r:.80}"
        msg = (f"row {i} of {where} {what} in text column {column!r}; every value must be a "
               f"string. Fix or drop that row, or pick another column with text_column= "
               f"(CLI: --text-column).")
        raise DataError(msg)


def encode_labels(
    values: Sequence[Any], where: str, column: str, names: list[str] | None = None,
) -> tuple[list[int], list[str]]:
    """Class codes for ``values`` and the class names (numeric labels sort as numbers).

    With ``names`` given (a test split), values are mapped onto those classes.
    """
    clean: list[Any] = []
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or (
                isinstance(value, str) and not value.strip()):
            msg = (f"row {i} of {where} has no label (column {column!r} is empty there); "
                   f"label every row or drop the unlabelled ones.")
            raise DataError(msg)
        if isinstance(value, float):
            if not value.is_integer():
                msg = (f"row {i} of {where} has label {value!r} in column {column!r}; labels "
                       f"must be class names or integer class ids. Bin a numeric target into "
                       f"classes first, or pick another label_column.")
                raise DataError(msg)
            value = int(value)
        elif not isinstance(value, (str, int)):
            msg = (f"row {i} of {where} has label {value!r:.60} ({type(value).__name__}) in "
                   f"column {column!r}; labels must be strings or integers.")
            raise DataError(msg)
        clean.append(value)
    if names is None:
        unique = set(clean)
        numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in unique)
        names = [str(v) for v in sorted(unique, key=None if numeric else str)]
    index = {n: i for i, n in enumerate(names)}
    codes = []
    for i, value in enumerate(clean):
        code = index.get(str(value))
        if code is None:
            msg = (f"row {i} of {where} has label {value!r}, which the training data does not "
                   f"have (classes: {', '.join(names)}). Remove those rows or add training "
                   f"examples of that class.")
            raise DataError(msg)
        codes.append(code)
    return codes, names


def check_classes(codes: Sequence[int], names: Sequence[str], where: str, remedy: str) -> None:
    """At least two classes, each with at least two examples (one to train, one to validate),
    or exactly one example in every class (a recommendation from the prior alone)."""
    counts = Counter(codes)
    present = [n for i, n in enumerate(names) if counts.get(i)]
    if len(present) < 2:
        only = f" ({present[0]!r})" if present else ""
        msg = (f"{where} has a single class{only}; a classifier needs at least 2. Add examples "
               f"of another class.")
        raise DataError(msg)
    small = [(n, counts.get(i, 0)) for i, n in enumerate(names) if counts.get(i, 0) < 2]
    if not small or all(counts.get(i, 0) == 1 for i in range(len(names))):
        return  # one row in every class: nothing to measure; the search asks the prior
    if len(small) == 1:
        n, k = small[0]
        what = f"class {n!r} has {k} example{'' if k == 1 else 's'} in {where}"
    else:
        listed = ", ".join(f"{n!r} ({k})" for n, k in small[:10])
        more = f" and {len(small) - 10} more" if len(small) > 10 else ""
        what = f"classes {listed}{more} in {where} have fewer than 2 examples"
    msg = f"{what}; each class needs at least 2 (one to train, one to validate). {remedy}"
    raise DataError(msg)


__all__ = [
    "LABEL_NAMES",
    "TEXT_NAMES",
    "Columns",
    "check_classes",
    "check_texts",
    "choose_columns",
    "encode_labels",
]
