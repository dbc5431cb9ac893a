"""Result rows: the one exchange format between ``autotl bench``, ``autotl leaderboard`` and
``autotl prior build``.

A row is one measured run — a method (the exhaustive oracle, autotl's search, a fixed baseline,
or another tool) on one task at one size under one protocol — written as one JSON object per
line (JSON lines). ``COLUMNS`` is the versioned schema; ``benchmarks/results/README.md``
documents every column and how to write rows by hand. Rows are validated on reading, with
errors that name the file, the line and the column.

Rows can also be read from autotl study storages (``sqlite:///…/study.db``, a ``.db`` file or a
search's output folder): every completed trial that was scored on the test split becomes a row.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotl.errors import ConfigError
from autotl.storage import trial_seed

SCHEMA_VERSION = 1
EXTRA_PREFIX = "x_"  # columns of other tools ride along under this prefix, unchecked
LIBRARIES = ("torch", "timm", "transformers", "peft", "optuna", "datasets", "numpy")


@dataclass(frozen=True)
class Column:
    name: str
    types: tuple[type, ...]
    required: bool
    doc: str


_NUM = (int, float)
COLUMNS: tuple[Column, ...] = (
    Column("schema", (int,), True, f"schema version of the row; this autotl writes "
           f"{SCHEMA_VERSION}"),
    Column("task", (str,), True, "task name (a suite's task: dataset × backbone × input "
           "settings); rows of one task compare with each other"),
    Column("dataset", (str,), True, "the data as `autotl search` takes it (name, folder, file)"),
    Column("data_fingerprint", (str, type(None)), False, "autotl's content digest of the data "
           "(`load_data(...).fingerprint`); rows of one task must agree; the prior uses it to "
           "leave a dataset out of its own benchmark"),
    Column("n_per_class", (int, type(None)), True, "training examples per class (the size); "
           "null: every training example"),
    Column("n_train", (int, type(None)), False, "training examples"),
    Column("n_val", (int, type(None)), False, "validation examples"),
    Column("n_test", (int, type(None)), False, "test examples"),
    Column("n_classes", (int, type(None)), False, "classes"),
    Column("modality", (str, type(None)), False, "image or text"),
    Column("protocol", (str,), True, "how the splits and budgets were made (validation and "
           "test split, split seed, step budget, input size); rows compare only within one "
           "protocol"),
    Column("split_seed", (int, type(None)), False, "the seed that drew the test, validation "
           "and training rows (a benchmark's draw); absent: read from `protocol`, else 0"),
    Column("backbone", (str,), True, "backbone name (`autotl list backbones`)"),
    Column("backbone_params", (int, type(None)), False, "the backbone's parameter count"),
    Column("n_groups", (int, type(None)), False, "the backbone's layer groups (what "
           "freeze_depth counts; the prior maps depths to other backbones by fraction)"),
    Column("method", (str,), True, "what produced the row: oracle, autotl, a baseline "
           "(full, head-only, lora, textbook) or another tool's name"),
    Column("strategy", (str,), True, "the strategy of the config the method ended with"),
    Column("params", (dict,), True, "that config's parameters (lr, freeze_depth, r, alpha, "
           "head, weight_decay, …), without the strategy prefix"),
    Column("val_accuracy", (*_NUM, type(None)), False, "validation accuracy of that config"),
    Column("test_accuracy", _NUM, True, "accuracy on the test split, in [0, 1]"),
    Column("test_correct", (str, type(None)), False, "one character per test example in the "
           "test split's order, '1' right and '0' wrong; pairs rows for the bootstrap "
           "interval of regret (without it the row gets no interval)"),
    Column("seed", (int,), True, "the run's seed (training seed of a fixed config; search "
           "seed of a search)"),
    Column("compute_seconds", _NUM, True, "training seconds the method spent to produce the "
           "row (a search: all its trials; a fixed config: its one training run)"),
    Column("train_seconds", (*_NUM, type(None)), False, "training seconds of the final config "
           "alone"),
    Column("train_flops", (*_NUM, type(None)), False, "floating-point operations of the "
           "final config's training, as torch counts them (the same on any machine; what the "
           "selection rule compares)"),
    Column("trainable_params", (int, type(None)), False, "parameters the final config trained"),
    Column("device", (str, type(None)), False, "cpu, cuda or mps"),
    Column("hardware", (str, type(None)), False, "processor or accelerator, in words"),
    Column("versions", (dict, type(None)), False, "library name → version (python, torch, "
           "timm, transformers, peft, optuna, …)"),
    Column("autotl_version", (str, type(None)), False, "autotl's version"),
    Column("git_commit", (str, type(None)), False, "autotl's git commit, when run from a "
           "checkout"),
    Column("date", (str,), True, "when the row was measured, ISO 8601 (UTC)"),
    Column("source", (str, type(None)), False, "where the row came from (study storage, "
           "study and trial, or a tool)"),
)
BY_NAME = {c.name: c for c in COLUMNS}
REQUIRED = tuple(c.name for c in COLUMNS if c.required)


def validate_row(row: Any, where: str = "row") -> dict[str, Any]:
    """The row, checked against the schema; ``where`` (``file:line``) names it in errors."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: a result row must be a JSON object, but got "
                          f"{type(row).__name__}.")
    if row.get("schema") != SCHEMA_VERSION:
        raise ConfigError(f"{where}: column 'schema' is {row.get('schema')!r}; this autotl "
                          f"reads result rows of schema {SCHEMA_VERSION} (see "
                          "benchmarks/results/README.md).")
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise ConfigError(f"{where}: missing required column(s) {missing}; every row needs "
                          f"{list(REQUIRED)}.")
    for key, value in row.items():
        column = BY_NAME.get(key)
        if column is None:
            if key.startswith(EXTRA_PREFIX):
                continue
            close = difflib.get_close_matches(key, BY_NAME, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown column {key!r}{hint}; name a tool's own "
                              f"columns {EXTRA_PREFIX}<name>.")
        if isinstance(value, bool) or not isinstance(value, column.types):
            wanted = " or ".join("null" if t is type(None) else t.__name__
                                 for t in column.types)
            raise ConfigError(f"{where}: column {key!r} must be {wanted}, but got "
                              f"{value!r}.")
    accuracy = float(row["test_accuracy"])
    if not 0.0 <= accuracy <= 1.0:
        raise ConfigError(f"{where}: column 'test_accuracy' must be in [0, 1], but got "
                          f"{accuracy}; write accuracy as a fraction, not a percentage.")
    if row.get("val_accuracy") is not None and not 0.0 <= row["val_accuracy"] <= 1.0:
        raise ConfigError(f"{where}: column 'val_accuracy' must be in [0, 1], but got "
                          f"{row['val_accuracy']}.")
    if not (math.isfinite(row["compute_seconds"]) and row["compute_seconds"] >= 0):
        raise ConfigError(f"{where}: column 'compute_seconds' must be >= 0 seconds, but got "
                          f"{row['compute_seconds']}.")
    correct = row.get("test_correct")
    if correct is not None:
        if not correct or set(correct) - {"0", "1"}:
            raise ConfigError(f"{where}: column 'test_correct' must be a non-empty string of "
                              f"'0' and '1' (one per test example), but got "
                              f"{correct[:20]!r}….")
        if row.get("n_test") is not None and len(correct) != row["n_test"]:
            raise ConfigError(f"{where}: column 'test_correct' has {len(correct)} characters "
                              f"but n_test is {row['n_test']}; write one per test example.")
        share = correct.count("1") / len(correct)
        if abs(share - accuracy) > 1e-6:
            raise ConfigError(f"{where}: column 'test_correct' scores {share:.6f} but "
                              f"test_accuracy is {accuracy:.6f}; they must describe the same "
                              "predictions.")
    try:
        datetime.datetime.fromisoformat(row["date"])
    except ValueError:
        raise ConfigError(f"{where}: column 'date' must be ISO 8601 (e.g. "
                          f"2026-11-29T10:00:00+00:00), but got {row['date']!r}.") from None
    return row


def new_row(**values: Any) -> dict[str, Any]:
    """A row in schema order, with ``schema`` and ``date`` filled in and validated."""
    values.setdefault("date", now())
    row = {"schema": SCHEMA_VERSION}
    row.update({c.name: values.pop(c.name) for c in COLUMNS if c.name in values})
    row.update(values)  # unknown names fail validation, naming them
    return validate_row(row, where="new row")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- files ---------------------------------------------------------------------------------------


def read_rows_file(path: str | Path) -> list[dict[str, Any]]:
    """Rows of one JSON-lines file; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg} at column "
                                  f"{exc.colno}); write one JSON object per line.") from None
            rows.append(validate_row(value, where))
    return rows


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]], *, append: bool = False) -> None:
    """Write (or append) rows as JSON lines, each validated first."""
    path = Path(path)
    checked = [validate_row(r, where=f"row {i} for {path}") for i, r in enumerate(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for row in checked:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def is_storage(source: str | Path) -> bool:
    text = str(source)
    return ("://" in text or text.endswith(".db")
            or (Path(text).is_dir() and (Path(text) / "study.db").is_file()))


def read_results(sources: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rows from every source, merged: JSON-lines files, folders (every ``*.jsonl`` under
    them), and study storages (a URL, a ``.db`` file, or a folder holding ``study.db``)."""
    groups = []
    for source in sources:
        text = str(source)
        path = Path(text)
        if is_storage(source):
            groups.append(rows_from_storage(text))
        elif path.is_dir():
            files = sorted(path.rglob("*.jsonl"))
            if not files:
                raise ConfigError(f"{text!r} is a folder without *.jsonl result files or a "
                                  "study.db; pass result files, folders of them, or study "
                                  "storages.")
            groups += [read_rows_file(f) for f in files]
        elif path.is_file():
            groups.append(read_rows_file(path))
        else:
            raise ConfigError(f"result source {text!r} does not exist; pass a .jsonl file, a "
                              "folder of them, a study .db or a sqlite:/// URL.")
    return merge_rows(groups)


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same measurement: a rerun replaces, never doubles, a row."""
    return (row["task"], row["n_per_class"], row["protocol"], row["method"], row["strategy"],
            json.dumps(row["params"], sort_keys=True), row["seed"])


def merge_rows(groups: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Concatenate row lists; a later row with the same key replaces an earlier one. Rows of
    one task must agree on dataset fingerprint and backbone."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rows in groups:
        for row in rows:
            merged[row_key(row)] = row
    tasks: dict[str, dict[str, Any]] = {}
    for row in merged.values():
        first = tasks.setdefault(row["task"], row)
        for column in ("data_fingerprint", "backbone"):
            a, b = first.get(column), row.get(column)
            if a is not None and b is not None and a != b:
                raise ConfigError(
                    f"task {row['task']!r} has rows with different {column}: {a!r} "
                    f"({first.get('source') or first['method']}) and {b!r} "
                    f"({row.get('source') or row['method']}); a task is one dataset on one "
                    "backbone, so give the other a task name of its own.")
    return list(merged.values())


# -- the machine a row was measured on -------------------------------------------------------


def environment(device: str = "cpu") -> dict[str, Any]:
    """device, hardware, library versions, autotl version and git commit, for a row."""
    from importlib import metadata

    import autotl

    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"device": device, "hardware": hardware(device), "versions": versions,
            "autotl_version": autotl.__version__, "git_commit": git_commit()}


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def git_commit() -> str | None:
    """The commit of the autotl checkout in use (None when installed from a package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                             "--untracked-files=no"], capture_output=True, text=True,
                            timeout=10, check=False)
    return out.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


# -- study storages ------------------------------------------------------------------------------


def storage_url(source: str | Path) -> str:
    text = str(source)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        path = path / "study.db"
    if not path.is_file():
        raise ConfigError(f"study storage {text!r} does not exist; pass a sqlite:/// URL, a "
                          ".db file or a search's output folder holding study.db.")
    return f"sqlite:///{path.resolve()}"


def rows_from_storage(source: str | Path) -> list[dict[str, Any]]:
    """Rows from every study in an autotl storage: each completed trial scored on the test
    split. A study written by ``autotl bench`` names its task, protocol, method and seed in
    its ``bench`` attribute, and whether its rows are the selected trial (a search) or
    ``each`` trial (a grid). For any other study the trial the search selected is method
    ``autotl``, and when every trial was scored (``score_test='all'``) each trial is also an
    ``oracle`` config."""
    import optuna

    url = storage_url(source)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    recommended = _recommendations(url)
    rows = []
    for summary in optuna.get_all_study_summaries(url, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        rows += rows_from_study(study, url, selected_trial=recommended.get(study.study_name))
    return rows


def _recommendations(url: str) -> dict[str, int]:
    """Study name → recommended trial, from the ``recommendation.json`` files beside a sqlite
    storage (a search's output folder, or a size map's rung folders under it)."""
    if not url.startswith("sqlite:///"):
        return {}
    folder = Path(url.removeprefix("sqlite:///")).parent
    found = {}
    for path in [folder / "recommendation.json", *folder.glob("*/recommendation.json")]:
        try:
            data = json.loads(path.read_text())
            found[str(data["study"])] = int(data["recommended"]["trial"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def flat_request(attrs: dict[str, Any]) -> dict[str, Any]:
    """A study's stored request as one mapping (its identity over its other settings)."""
    request = attrs.get("request")
    if isinstance(request, dict) and "identity" in request:
        return {**request.get("settings", {}), **request["identity"]}
    return dict(request or attrs.get("identity") or {})


def scores_on_test(study: Any) -> dict[int, dict[str, Any]]:
    """Test scores by trial number: a trial's own (scored as it finished) or the study's
    (``test:<number>``, scored after selection)."""
    scores = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("test_accuracy") is not None:
            scores[trial.number] = {"accuracy": trial.user_attrs["test_accuracy"],
                                    "correct": trial.user_attrs.get("test_correct")}
    for key, value in study.user_attrs.items():
        if key.startswith("test:") and isinstance(value, dict):
            scores[int(key.removeprefix("test:"))] = value
    return scores


def rows_from_study(study: Any, url: str = "", *,
                    selected_trial: int | None = None) -> list[dict[str, Any]]:
    """Rows of one study (see :func:`rows_from_storage`); ``selected_trial`` names the trial
    the search recommended when the study does not (its ``recommendation.json`` does)."""
    import optuna

    attrs = study.user_attrs
    request = flat_request(attrs)
    bench = attrs.get("bench") or {}
    trials = study.get_trials(deepcopy=False)
    scores = scores_on_test(study)
    scored = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
              and t.number in scores]
    total_seconds = sum(float(t.user_attrs.get("train_seconds") or 0.0)
                        for t in trials if t.state.is_finished())
    selected = attrs.get("selected_trial", selected_trial)
    data = request.get("data") or study.study_name
    backbone = request.get("backbone") or "?"
    base = {
        "schema": SCHEMA_VERSION,
        "task": bench.get("task") or f"{Path(str(data)).name or data}+{backbone}",
        "dataset": str(data),
        "data_fingerprint": (attrs.get("request") or {}).get("source_fingerprint")
        or request.get("data_fingerprint"),
        "n_per_class": request.get("n_per_class"),
        "n_train": attrs.get("n_train"), "n_val": attrs.get("n_val"),
        "n_test": attrs.get("n_test"),
        "n_classes": len(attrs["class_names"]) if attrs.get("class_names") else None,
        "modality": attrs.get("modality"),
        "protocol": bench.get("protocol") or protocol_of(request, attrs.get("modality")),
        "split_seed": request.get("split_seed"),
        "backbone": backbone,
    }
    rows = []
    for trial in scored:
        # (method, whether the row is this one training run rather than the whole search)
        if bench.get("method"):
            each = bench.get("rows", "selected") == "each"
            kinds = [(bench["method"], each)] if each or trial.number == selected else []
        else:
            kinds = [("oracle", True)] if request.get("score_test") == "all" else []
            if trial.number == selected:
                kinds.append(("autotl", False))
        for method, one_run in kinds:
            rows.append(_trial_row(base, study, trial, url, scores[trial.number],
                                   method=method, one_run=one_run,
                                   search_seed=int(bench.get("seed", request.get("seed", 0))),
                                   search_seconds=total_seconds, request=request))
    return rows


def _trial_row(base: dict[str, Any], study: Any, trial: Any, url: str,
               score: dict[str, Any], *, method: str,
               one_run: bool, search_seed: int, search_seconds: float,
               request: dict[str, Any]) -> dict[str, Any]:
    seconds = float(trial.user_attrs.get("train_seconds") or 0.0)
    strategy = trial.params.get("strategy", "?")
    finished = trial.datetime_complete or datetime.datetime.now()
    row = {
        **base,
        "method": method,
        "strategy": strategy,
        "params": {k.removeprefix(f"{strategy}."): v for k, v in trial.params.items()
                   if k != "strategy"},
        "val_accuracy": float(trial.value) if trial.value is not None else None,
        "test_accuracy": float(score["accuracy"]),
        "test_correct": score.get("correct"),
        "n_test": base.get("n_test") or (len(score["correct"]) if score.get("correct") else None),
        "seed": trial_seed(trial, int(request.get("seed", 0))) if one_run else search_seed,
        "compute_seconds": seconds if one_run else search_seconds,
        "train_seconds": seconds,
        "train_flops": trial.user_attrs.get("train_flops"),
        "trainable_params": trial.user_attrs.get("trainable_params"),
        **{k: trial.user_attrs.get(k) for k in ("device", "hardware", "versions",
                                                 "autotl_version", "git_commit")},
        "date": finished.astimezone(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": f"{url} study {study.study_name} trial {trial.number}",
    }
    row = {k: v for k, v in row.items() if v is not None or BY_NAME[k].required}
    return validate_row(row, where=f"{url} study {study.study_name!r} trial {trial.number}")


def row_split_seed(row: dict[str, Any]) -> int:
    """The seed that drew a row's splits: its column, else its protocol's, else 0."""
    if row.get("split_seed") is not None:
        return int(row["split_seed"])
    found = re.search(r"split_seed=(\d+)", str(row.get("protocol", "")))
    return int(found.group(1)) if found else 0


def protocol_family(protocol: str) -> str:
    """A protocol without its split seed: the draws of one measurement share it."""
    return re.sub(r"\s*\bsplit_seed=\d+", "", str(protocol)).strip()


def protocol_of(request: dict[str, Any], modality: str | None = None) -> str:
    """A short, stable description of how a study drew its splits and spent its budget."""
    budget = request.get("budget")
    if isinstance(budget, list) and len(budget) >= 4:  # [batch, epochs, min, max, (evals)]
        batch, epochs, lo, hi = budget[:4]
    else:
        batch, epochs = request.get("batch_size"), request.get("epochs")
        lo, hi = request.get("min_steps"), request.get("max_steps")
    test = request.get("test_fraction")
    # A validation set the data brings (identity "validation"): its file, or the data's own.
    given = isinstance(request.get("validation"), dict)
    parts = [
        f"val={(request.get('val_data') or 'own') if given else request.get('val_fraction')}",
        f"test={test if test else 'own'}",
        f"split_seed={request.get('split_seed', request.get('seed'))}",
        f"steps={lo}-{hi}", f"epochs={epochs}", f"batch={batch}",
    ]
    if request.get("image_size"):
        parts.append(f"image={request['image_size']}")
    if request.get("max_length") and modality == "text":
        parts.append(f"tokens={request['max_length']}")
    return " ".join(parts)
