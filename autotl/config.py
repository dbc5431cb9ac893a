"""SearchConfig: one typed definition behind the CLI flags, a TOML file and the Python API.

Each field carries its help text (PEFT style); the CLI builds its ``--flags`` from these fields,
so the three entry points cannot drift apart. Validation happens on construction, before any
data is read or any model is built.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotl.errors import ConfigError
from autotl.folds import FOLD_BELOW

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEVICES = ("auto", "cpu", "cuda", "mps")


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class SearchConfig:
    """Everything one strategy search needs; see ``autotl search --help``."""

    data: str = _help(
        "dataset: a registered name (`autotl list datasets`), a folder of class subfolders of "
        "images, a CSV/JSON/Parquet file, a `save_to_disk` folder, or hf:owner/name",
        default="",
    )
    backbone: str | None = _help(
        "backbone name (`autotl list backbones`); default: offline:efficientnet-lite0 for "
        "images, offline:minilm-l6 for text, when installed",
        default=None,
    )
    strategies: list[str] | None = _help(
        "strategies to compare (default: every registered one)", default=None
    )
    heads: list[str] | None = _help("heads to search (default: every registered one)",
                                    default=None)
    trials: int = _help("trials to run in this invocation (a resumed study adds to its count)",
                        default=20)
    timeout: float | None = _help(
        "stop starting new trials after this many seconds", default=None
    )
    n_per_class: int | None = _help(
        "subsample the training data to K examples per class (balanced); default: all",
        default=None,
    )
    sample_only: bool = _help(
        "with --n-per-class K: the K examples per class are all the search sees, as for a user "
        "who has only K: validation comes out of them (below --fold-below per class, "
        "repeated k-fold splits of all K, and the final model trains on all K). Default: "
        "validation comes from the rest of the data (up to 100 per class), which simulates "
        "small training data beside a generous validation set. (A validation set of your "
        "own, --val-data or the data's split, stays the validation set; all K rows train)",
        default=False,
    )
    classes: list[str] | None = _help(
        "keep only these classes (default: all), e.g. to drop tiny categories", default=None
    )
    sizes: list[str] | None = _help(
        "build a strategy-by-size map: one study per size in examples per class, e.g. "
        "5,20,100,all (writes size_map.json/.png)",
        default=None,
    )
    project_to: list[str] | None = _help(
        "with --sizes: sizes per class to project the learning curves to, e.g. 20,100 "
        "(default: 2, 4 and 10 times the largest size measured)",
        default=None,
    )
    seeds: int = _help(
        "with --sizes: seeds each strategy's best config is trained with, for its spread",
        default=3,
    )
    prior: str = _help(
        "past results that seed the search: 'default' (shipped with autotl), a prior JSON "
        "file, or 'none'",
        default="default",
    )
    prior_top: int = _help("how many of the prior's suggestions to try first", default=3)
    val_fraction: float = _help(
        "fraction of each class held out for validation (at most 100 per class), drawn "
        "before --n-per-class subsamples the rest, so every size shares one validation set; "
        "unused where the data brings a validation set (--val-data, its own split)",
        default=0.2,
    )
    val_data: str | None = _help(
        "a validation set to use as given instead of drawing one from the training rows, e.g. "
        "--val-data val.csv: a file or folder in any form DATA takes, read with the same "
        "column options; its labels must be training classes (--classes applies to it too). "
        "Data with its own validation split (a `validation`/`valid`/`val` split, a val/ "
        "folder beside train/) uses that without this flag. --val-fraction and --fold-below "
        "then do not apply",
        default=None,
    )
    fold_below: int = _help(
        "when validation would hold fewer than this many rows per class (smallest class), "
        "score each trial over repeated stratified k-fold splits of all training and "
        "validation rows instead, and train the final model on all of them; 0: always one "
        "split",
        default=FOLD_BELOW,
    )
    test_fraction: float | None = _help(
        "hold out this fraction of each class as a test split (seeded, stratified, before "
        "validation is drawn), scored once after selection and never used to choose; for data "
        "without a test split of its own (digits, fortunes, a CSV). Data with its own test "
        "split (Fashion-MNIST, a folder's test/) is scored on that",
        default=None,
    )
    split_seed: int | None = _help(
        "seed for the test/validation split and the per-class subsample (default: --seed); "
        "fix it to vary training seeds over the same rows",
        default=None,
    )
    score_test: str = _help(
        "which trials are scored on the test split after the search: 'selected' (the "
        "recommended config and each strategy's representative) or 'all' (every completed "
        "trial; for benchmarks)",
        default="selected",
    )
    budget_seconds: float | None = _help(
        "stop starting new trials once the study's trials have spent this many training "
        "seconds in total (measured compute, unlike --timeout's wall clock)",
        default=None,
    )
    prune: bool = _help("stop unpromising trials early (median within each strategy)",
                        default=True)
    prior_own_data: bool = _help(
        "let the prior suggest configs from records of this same dataset (off: such records "
        "would replay configs chosen on these very rows)",
        default=False,
    )
    storage: str | None = _help(
        "Optuna storage URL (default: sqlite:///<out>/study.db); postgresql://… lets "
        "`autotl worker` processes join",
        default=None,
    )
    workers: int | None = _help(
        "processes on this machine that run the study's trials, each an `autotl worker` "
        "(one GPU each, round robin; on CPU the cores are split among them); without "
        "--storage they share a journal file in --out. 0: only create the study, for "
        "workers started elsewhere. Default: one per visible GPU (CUDA_VISIBLE_DEVICES), "
        "else 1",
        default=None,
    )
    artifacts: Path | None = _help(
        "where trials' trained tensors are kept until the search picks one (default: "
        "<out>/artifacts); with workers on several hosts, a folder they all reach (a shared "
        "file system, or an object store mounted as one), so `autotl report` need not "
        "retrain the picked trials",
        default=None,
    )
    heartbeat_seconds: int = _help(
        "how often a running trial tells the storage it is alive", default=30)
    grace_seconds: int = _help(
        "a running trial silent this long is taken as dead (its process killed): failed "
        "and queued again",
        default=120,
    )
    study: str | None = _help(
        "study name (default: derived from data, size and backbone); rerun to resume",
        default=None,
    )
    device: str = _help("auto (CUDA when available), cpu, cuda or mps", default="auto")
    seed: int = _help("seed for the split, subsampling, sampler and training", default=0)
    out: Path | None = _help("output folder (default: runs/<study>)", default=None)
    image_size: int | None = _help(
        "square input size for images (default: the backbone's own); small images such as "
        "28-px Fashion-MNIST train much faster at e.g. 96",
        default=None,
    )
    max_length: int = _help("tokens per text (longer texts are truncated)", default=128)
    batch_size: int = _help("training batch size", default=32)
    epochs: float = _help(
        "training budget in passes over the training split; converted to optimizer steps and "
        "clamped to [min_steps, max_steps]. Measured on Fashion-MNIST (docs/guide.md): whole-"
        "model and subset fine-tunes keep improving to 15+ epochs while LoRA and heads "
        "flatten sooner, so a short budget favours the cheap strategies",
        default=16.0,
    )
    min_steps: int = _help("fewest optimizer steps per trial (small data still needs updates)",
                           default=120)
    max_steps: int = _help("most optimizer steps per trial", default=2000)
    eval_points: int = _help(
        "validation checkpoints per trial, reported to the pruner (with --no-prune only the "
        "last is evaluated)", default=4
    )
    augment: bool = _help(
        "random image augmentation during training (turns off the activation cache)",
        default=False,
    )
    pretrained: bool = _help("start from pretrained weights (off: random init)", default=True)
    tolerance: float = _help(
        "accuracy a cheaper config may give up, on top of the measurement noise, and still be "
        "named 'cheapest within tolerance' (the recommendation itself gives up only the noise)",
        default=0.01,
    )
    num_workers: int = _help("data-loading worker processes", default=0)
    cache: bool = _help(
        "reuse frozen-layer activations across trials (exact; see docs)", default=True
    )
    cache_dir: Path | None = _help(
        "where activations are kept across studies (default: ~/.cache/autotl/activations)",
        default=None,
    )
    cache_max_bytes: int = _help(
        "activation cache budget in bytes (least recently used evicted)", default=2 * 1024**3
    )
    text_column: str | None = _help("text column of a table (auto-detected)", default=None)
    label_column: str | None = _help("label column of a table (auto-detected)", default=None)
    image_column: str | None = _help("image column of a table or saved dataset",
                                     default=None)

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = Path(self.out)
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)
        if self.artifacts is not None:
            self.artifacts = Path(self.artifacts)
        for name in ("strategies", "heads", "classes", "sizes", "project_to"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v.strip() for v in value.split(",") if v.strip()])
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.trials >= 1, f"trials must be at least 1, but got trials={self.trials}."),
            (self.timeout is None or self.timeout > 0,
             f"timeout must be positive seconds, but got timeout={self.timeout}."),
            (self.n_per_class is None or self.n_per_class >= 1,
             f"n_per_class must be at least 1 (validation is drawn apart from it), but got "
             f"n_per_class={self.n_per_class}."),
            (self.test_fraction is None or 0 < self.test_fraction < 1,
             f"test_fraction must be between 0 and 1, but got "
             f"test_fraction={self.test_fraction}."),
            (not self.sample_only or self.n_per_class is not None,
             "sample_only needs n_per_class: it says the K examples per class drawn by "
             "--n-per-class K are all the search may see. Pass --n-per-class, or leave "
             "--sample-only out (without --n-per-class the search already sees only your "
             "data)."),
            (self.split_seed is None or self.split_seed >= 0,
             f"split_seed must be >= 0, but got split_seed={self.split_seed}."),
            (self.score_test in ("selected", "all"),
             f"score_test must be 'selected' or 'all', but got score_test={self.score_test!r}."),
            (self.budget_seconds is None or self.budget_seconds > 0,
             f"budget_seconds must be positive, but got budget_seconds={self.budget_seconds}."),
            (self.fold_below >= 0,
             f"fold_below must be >= 0 (0: never fold), but got fold_below={self.fold_below}."),
            (0 < self.val_fraction < 1,
             f"val_fraction must be between 0 and 1, but got val_fraction={self.val_fraction}."),
            (self.device in DEVICES,
             f"device must be one of {DEVICES}, but got device={self.device!r}."),
            (self.image_size is None or 16 <= self.image_size <= 1024,
             f"image_size must be between 16 and 1024, but got image_size={self.image_size}."),
            (self.max_length >= 8, f"max_length must be at least 8, but got {self.max_length}."),
            (self.batch_size >= 1, f"batch_size must be at least 1, but got {self.batch_size}."),
            (self.epochs > 0, f"epochs must be positive, but got epochs={self.epochs}."),
            (1 <= self.min_steps <= self.max_steps,
             f"need 1 <= min_steps <= max_steps, but got min_steps={self.min_steps}, "
             f"max_steps={self.max_steps}."),
            (1 <= self.eval_points <= self.min_steps,
             f"eval_points must be between 1 and min_steps, but got {self.eval_points}."),
            (0 <= self.tolerance < 1, f"tolerance must be in [0, 1), but got {self.tolerance}."),
            (self.num_workers >= 0, f"num_workers must be >= 0, but got {self.num_workers}."),
            (self.cache_max_bytes >= 0,
             f"cache_max_bytes must be >= 0, but got {self.cache_max_bytes}."),
            (self.strategies is None or len(self.strategies) > 0,
             "strategies is empty; name at least one or leave it out for all."),
            (isinstance(self.heartbeat_seconds, int) and self.heartbeat_seconds >= 1,
             f"heartbeat_seconds must be a whole number of seconds >= 1, but got "
             f"heartbeat_seconds={self.heartbeat_seconds!r}."),
            (self.grace_seconds > self.heartbeat_seconds,
             f"grace_seconds must exceed heartbeat_seconds ({self.heartbeat_seconds}), or a "
             f"live trial is taken as dead; but got grace_seconds={self.grace_seconds}."),
            (self.workers is None or self.workers >= 0,
             f"workers must be >= 0, but got workers={self.workers}."),
            (self.seeds >= 1, f"seeds must be at least 1, but got seeds={self.seeds}."),
            (self.prior_top >= 0, f"prior_top must be >= 0, but got {self.prior_top}."),
            (self.heads is None or len(self.heads) > 0,
             "heads is empty; name at least one or leave it out for all."),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        if (self.workers or 1) > 1 and str(self.storage or "").startswith("sqlite"):
            raise ConfigError(
                f"--workers {self.workers} with --storage {self.storage}: SQLite is not safe "
                "for several processes writing at once; leave out --storage (the workers then "
                "share a journal file in --out) or use postgresql://….")
        if self.sizes is not None and self.workers not in (None, 1):
            raise ConfigError(
                f"--sizes runs its studies one after another in this process, so --workers "
                f"{self.workers} does not apply to it; run one `autotl search --n-per-class K "
                f"--workers {self.workers}` per size instead (each its own study).")
        if self.sizes is not None and self.sample_only:
            raise ConfigError(
                "--sizes with --sample-only: a size map's rungs share one validation set drawn "
                "from the rest of the data, which --sample-only forbids. Run one `autotl search "
                "--n-per-class K --sample-only` per size, or drop --sample-only.")
        if self.sizes is not None:
            from autotl.size_map import parse_sizes

            parse_sizes(self.sizes)
        if self.project_to is not None:
            from autotl.curves import parse_targets

            if self.sizes is None:
                raise ConfigError(
                    f"--project-to {','.join(map(str, self.project_to))} projects a size map's "
                    "learning curves, so it needs --sizes (e.g. --sizes 5,10 --project-to "
                    "20,100).")
            parse_targets(self.project_to)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "settings") -> SearchConfig:
        """Build from a mapping, naming unknown keys with close matches."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            import difflib

            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            msg = f"unknown setting(s) in {source}: {', '.join(hints)}. Known: {sorted(known)}."
            raise ConfigError(msg)
        try:
            return cls(**dict(values))
        except TypeError as exc:
            raise ConfigError(f"bad settings in {source}: {exc}") from exc

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> SearchConfig:
        """Read a TOML file (keys are the field names; a ``[search]`` table also works);
        ``overrides`` (e.g. CLI flags) win."""
        path = Path(path)
        if not path.is_file():
            msg = f"config file {str(path)!r} does not exist; pass an existing .toml file."
            raise ConfigError(msg)
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
        values = dict(values.get("search", values))
        values = {k.replace("-", "_"): v for k, v in values.items()}
        values.update(overrides)
        return cls.from_mapping(values, source=str(path))

    @property
    def data_seed(self) -> int:
        """The seed of the splits: ``split_seed`` when set, else ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}
