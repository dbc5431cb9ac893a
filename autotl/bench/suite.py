"""Benchmark suites: a TOML file of tasks, the oracle's grid and the baselines' settings,
validated before anything trains.

A suite file (``benchmarks/suites/*.toml``)::

    name = "smoke"
    seeds = 2            # training seeds of the oracle's configs and of each baseline
    search_seeds = 2     # autotl searches per task and size, each with its own seed
    budget = 0.25        # autotl's budget: this fraction of the oracle's training seconds
    prior = "default"    # autotl's prior ('none', or a file), less each task's own dataset
    methods = ["oracle", "autotl", "full", "head-only", "lora", "textbook"]
    protocol = "simulated"  # or "real": the searches see only the K rows per class
    draws = 1            # draws of the training rows (split seeds split_seed … + draws − 1)
    search_trials = 8    # optional: searches run this many trials instead of a seconds budget

    [settings]           # `autotl search` settings every task shares (a task's own win)
    min_steps = 30

    [grid]               # the oracle: every config of this grid
    strategies = ["full", "subset", "head-only", "lora"]
    freeze_fractions = [0.25, 0.5, 0.75]
    learning_rates = 4
    lora = {r = 8, alpha = 16, dropout = 0.0}
    head = "linear"
    weight_decay = 1e-4

    [baselines.full]     # a fixed config: strategy (default: the table's name), lr, own params
    lr = 1e-3
    [baselines.textbook] # head-only below `threshold` examples per class, full at or above
    threshold = 20

    [[tasks]]
    name = "digits-mobilenetv2"
    data = "digits"
    backbone = "offline:mobilenetv2-100"
    sizes = [5, 20, 50]
    image_size = 32      # any other `autotl search` setting
    seeds = 3            # optional: this task's oracle and baseline seeds (default: the suite's)

**Protocols.** ``simulated`` (the default): every method trains on K rows per class and the
searches validate on up to 100 per class from the rest of the data — small training data beside
a generous validation set. ``real``: the searches (``autotl``, and ``autotl-one-split``, the
search as it was before fold scoring: one validation split carved out of the K) see only the K
rows per class (``autotl search --sample-only``), as a user who has only K does; the oracle and
the fixed baselines train on exactly those K rows, so regret pairs the same rows. Each draw is
its own comparison (rows carry ``split_seed``); size 1 is allowed, where autotl recommends from
its prior alone and the bench trains that pick on the one row per class.

**More seeds later.** Raising ``seeds`` (the suite's or a task's) and running again tops up
finished oracle and baseline runs: their studies get the missing repetitions queued, trained as
a run with the higher count from the start would have trained them (trial n with seed n), and
only the new rows are added.

**The grid's rules.** Learning rates: ``learning_rates`` values per strategy, log-spaced in
the strategy's own range at the centres of equal log-width bins (for a range ``[lo, hi]`` and
``n`` rates: ``lo · (hi/lo)^((i + ½)/n)``, ``i = 0…n−1``), so no rate sits on a range's edge.
Freeze depths (strategy ``subset``): each fraction ``f`` of the backbone's ``G`` layer groups
becomes ``floor(f·G + ½)`` (half rounds up), clamped to ``[1, G−1]``, duplicates dropped.
LoRA runs at the grid's ``r``, ``alpha`` and ``dropout``. Any other strategy runs at its first
known-good config with only the learning rate varied. Every config uses the grid's head (with
its default parameters) and weight decay.
"""

from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotl.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORACLE, AUTOTL, TEXTBOOK = "oracle", "autotl", "textbook"
AUTOTL_ONE_SPLIT = "autotl-one-split"  # the search before fold scoring: one split, always
SEARCHES = (AUTOTL, AUTOTL_ONE_SPLIT)
PROTOCOLS = ("simulated", "real")
# Settings autotl bench decides per run; a suite may not set them.
RESERVED = ("trials", "timeout", "seed", "study", "storage", "out", "n_per_class", "sizes",
            "prior", "prune", "score_test", "budget_seconds", "cache_dir", "device",
            "sample_only")
_TOP = {"name", "description", "seeds", "search_seeds", "budget", "methods", "prior",
        "settings", "grid", "baselines", "tasks", "protocol", "draws", "search_trials"}
_GRID = {"strategies", "freeze_fractions", "learning_rates", "lora", "head", "weight_decay"}


@dataclass(frozen=True)
class Grid:
    """The oracle's grid; see the module docstring for how it becomes configs."""

    strategies: tuple[str, ...] = ("full", "subset", "head-only", "lora")
    freeze_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    learning_rates: int = 4
    lora: tuple[tuple[str, Any], ...] = (("r", 8), ("alpha", 16), ("dropout", 0.0))
    head: str = "linear"
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class Baseline:
    """A fixed config (``strategy`` at ``lr`` with its own ``params``), or the textbook rule
    when ``threshold`` is set."""

    name: str
    strategy: str = ""
    lr: float = 0.0
    params: tuple[tuple[str, Any], ...] = ()
    threshold: int | None = None
    below: str = "head-only"
    above: str = "full"


@dataclass(frozen=True)
class Task:
    name: str
    sizes: tuple[int | None, ...]
    settings: tuple[tuple[str, Any], ...]  # SearchConfig settings, data and backbone included
    baselines: tuple[tuple[str, Baseline], ...] = ()  # the suite's, with the task's overrides
    seeds: int | None = None  # the oracle's and baselines' seeds here (None: the suite's)

    @property
    def data(self) -> str:
        return str(dict(self.settings)["data"])

    @property
    def backbone(self) -> str:
        return str(dict(self.settings)["backbone"])

    def config(self, size: int | None, **run: Any) -> Any:
        """The SearchConfig of one run of this task at ``size`` examples per class."""
        from autotl.config import SearchConfig

        return SearchConfig.from_mapping({**dict(self.settings), "n_per_class": size, **run},
                                         source=f"suite task {self.name!r}")


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    seeds: int
    search_seeds: int
    budget: float
    methods: tuple[str, ...]
    grid: Grid
    baselines: dict[str, Baseline]
    tasks: tuple[Task, ...]
    description: str = ""
    known_methods: tuple[str, ...] = field(default=())
    prior: str = "default"  # autotl's prior, less the records of each task's own dataset
    protocol: str = "simulated"  # "real": the searches see only the K rows per class
    draws: int = 1  # draws of the training rows, each its own comparison
    search_trials: int | None = None  # a fixed trial count for searches instead of a budget
    only_draws: tuple[int, ...] | None = None  # run only these draws (``--draws``); None: all

    @property
    def draw_indices(self) -> tuple[int, ...]:
        """The draws this run covers: all of ``range(draws)`` unless ``--draws`` chose some."""
        return self.only_draws if self.only_draws is not None else tuple(range(self.draws))

    def seeds_of(self, task: Task) -> int:
        """Training seeds of ``task``'s oracle configs and fixed baselines."""
        return task.seeds if task.seeds is not None else self.seeds

    def select(self, tasks: list[str] | None = None, methods: list[str] | None = None,
               sizes: list[str] | None = None, draws: list[str] | None = None) -> Suite:
        """This suite restricted to some tasks, methods, sizes and draws (named in errors when
        unknown)."""
        from dataclasses import replace

        chosen_tasks = self.tasks
        if tasks:
            names = [t.name for t in self.tasks]
            for name in tasks:
                _known(name, names, f"{self.path}: --tasks names", "task")
            chosen_tasks = tuple(t for t in self.tasks if t.name in tasks)
        chosen_methods = self.methods
        if methods:
            for name in methods:
                _known(name, self.known_methods, f"{self.path}: --methods names", "method")
            chosen_methods = tuple(m for m in self.known_methods if m in methods)
        if sizes:
            known = sorted({"all" if s is None else str(s) for t in chosen_tasks for s in t.sizes})
            for size in sizes:
                _known(size, known, f"{self.path}: --sizes names", "size")
            chosen_tasks = tuple(
                replace(t, sizes=tuple(s for s in t.sizes
                                       if ("all" if s is None else str(s)) in sizes))
                for t in chosen_tasks)
        chosen_draws = self.only_draws
        if draws:
            known = [str(d) for d in range(self.draws)]
            for draw in draws:
                _known(draw, known, f"{self.path}: --draws names (the suite has draws = "
                       f"{self.draws}, numbered from 0)", "draw")
            chosen_draws = tuple(d for d in range(self.draws) if str(d) in draws)
        return replace(self, tasks=chosen_tasks, methods=chosen_methods,
                       only_draws=chosen_draws)


def _known(name: str, known: Any, where: str, what: str) -> None:
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where} an unknown {what} {name!r}{hint}; known: {sorted(known)}.")


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; allowed: {sorted(allowed)}.")


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: {what}, but got {value!r}.")
    return value


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {str(path)!r} does not exist; pass a TOML file such as "
                          "benchmarks/suites/smoke.toml.")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"suite file {path} is not valid TOML: {exc}") from exc
    where = str(path)
    _check_keys(data, _TOP, where)
    seeds = _expect(data.get("seeds", 2), int, where, "'seeds' must be a whole number >= 1")
    search_seeds = _expect(data.get("search_seeds", 2), int, where,
                           "'search_seeds' must be a whole number >= 1")
    if seeds < 1 or search_seeds < 1:
        raise ConfigError(f"{where}: 'seeds' and 'search_seeds' must be at least 1, but got "
                          f"seeds={seeds}, search_seeds={search_seeds}.")
    budget = _expect(data.get("budget", 0.25), (int, float), where,
                     "'budget' must be a fraction of the oracle's training seconds")
    if not 0 < budget <= 1:
        raise ConfigError(f"{where}: 'budget' must be in (0, 1] (a fraction of the oracle's "
                          f"training seconds), but got {budget}.")
    grid = _grid(data.get("grid", {}), f"{where} [grid]")
    baselines = {name: _baseline(name, table, f"{where} [baselines.{name}]")
                 for name, table in _expect(data.get("baselines", {}), dict, where,
                                            "[baselines] must be a table").items()}
    for baseline in baselines.values():
        if baseline.threshold is not None:
            for side in (baseline.below, baseline.above):
                if side not in baselines or baselines[side].threshold is not None:
                    raise ConfigError(
                        f"{where} [baselines.{baseline.name}]: the rule uses baseline "
                        f"{side!r} for its learning rate, but the suite has no fixed baseline "
                        f"of that name; add [baselines.{side}].")
    protocol = _expect(data.get("protocol", "simulated"), str, where,
                       "'protocol' must be 'simulated' or 'real'")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: 'protocol' must be 'simulated' (validation from the rest "
                          "of the data) or 'real' (the searches see only the K rows per class), "
                          f"but got {protocol!r}.")
    draws = _expect(data.get("draws", 1), int, where, "'draws' must be a whole number >= 1")
    search_trials = data.get("search_trials")
    if search_trials is not None:
        _expect(search_trials, int, where, "'search_trials' must be a whole number >= 1")
    if draws < 1 or (search_trials is not None and search_trials < 1):
        raise ConfigError(f"{where}: 'draws' and 'search_trials' must be at least 1, but got "
                          f"draws={draws}, search_trials={search_trials}.")
    known_methods = (ORACLE, AUTOTL, AUTOTL_ONE_SPLIT, *baselines)
    # autotl-one-split is a before/after comparison: run when named
    methods = data.get("methods", [m for m in known_methods if m != AUTOTL_ONE_SPLIT])
    _expect(methods, list, where, "'methods' must be a list of method names")
    for method in methods:
        _known(method, known_methods, f"{where}: 'methods' names", "method")
    settings = _expect(data.get("settings", {}), dict, where, "[settings] must be a table")
    _reserved(settings, f"{where} [settings]")
    tasks_data = _expect(data.get("tasks", []), list, where, "[[tasks]] must be an array of tables")
    if not tasks_data:
        raise ConfigError(f"{where}: no [[tasks]]; add at least one with name, data, backbone "
                          "and sizes.")
    tasks, seen = [], set()
    for i, table in enumerate(tasks_data, 1):
        task = _task(table, settings, baselines, f"{where} [[tasks]] #{i}")
        if task.name in seen:
            raise ConfigError(f"{where}: two tasks are named {task.name!r}; task names must "
                              "differ (they name result rows).")
        seen.add(task.name)
        tasks.append(task)
    return Suite(name=_expect(data.get("name", path.stem), str, where, "'name' must be text"),
                 path=where, seeds=seeds, search_seeds=search_seeds, budget=float(budget),
                 methods=tuple(methods), grid=grid, baselines=baselines, tasks=tuple(tasks),
                 description=str(data.get("description", "")), known_methods=known_methods,
                 prior=_expect(data.get("prior", "default"), str, where,
                               "'prior' must be 'default', 'none' or a prior file"),
                 protocol=protocol, draws=draws, search_trials=search_trials)


def _reserved(table: dict[str, Any], where: str) -> None:
    taken = sorted(set(table) & set(RESERVED))
    if taken:
        raise ConfigError(f"{where}: {taken} are set by autotl bench for each run (seeds, "
                          "budget, splits of the test score); leave them out.")


def _grid(table: Any, where: str) -> Grid:
    _expect(table, dict, where, "must be a table")
    _check_keys(table, _GRID, where)
    default = Grid()
    strategies = tuple(_expect(table.get("strategies", list(default.strategies)), list, where,
                               "'strategies' must be a list of strategy names"))
    fractions = tuple(_expect(table.get("freeze_fractions", list(default.freeze_fractions)),
                              list, where, "'freeze_fractions' must be a list of fractions"))
    if not strategies:
        raise ConfigError(f"{where}: 'strategies' is empty; name at least one.")
    if not fractions or any(isinstance(f, bool) or not isinstance(f, (int, float))
                            or not 0 < f < 1 for f in fractions):
        raise ConfigError(f"{where}: 'freeze_fractions' must be fractions strictly between 0 "
                          f"and 1, but got {list(fractions)}.")
    rates = _expect(table.get("learning_rates", default.learning_rates), int, where,
                    "'learning_rates' must be a whole number of rates per strategy")
    if rates < 1:
        raise ConfigError(f"{where}: 'learning_rates' must be at least 1, but got {rates}.")
    lora = _expect(table.get("lora", dict(default.lora)), dict, where,
                   "'lora' must be a table such as {r = 8, alpha = 16}")
    _check_keys(lora, {"r", "alpha", "dropout"}, f"{where} lora")
    weight_decay = _expect(table.get("weight_decay", default.weight_decay), (int, float), where,
                           "'weight_decay' must be a number")
    return Grid(strategies=strategies, freeze_fractions=tuple(float(f) for f in fractions),
                learning_rates=rates, lora=tuple(sorted({**dict(default.lora), **lora}.items())),
                head=_expect(table.get("head", default.head), str, where, "'head' must be text"),
                weight_decay=float(weight_decay))


def _baseline(name: str, table: Any, where: str) -> Baseline:
    _expect(table, dict, where, "must be a table")
    if "threshold" in table:
        _check_keys(table, {"threshold", "below", "above"}, where)
        threshold = _expect(table["threshold"], int, where,
                            "'threshold' must be whole examples per class")
        return Baseline(name=name, threshold=threshold,
                        below=_expect(table.get("below", "head-only"), str, where,
                                      "'below' must name a fixed baseline"),
                        above=_expect(table.get("above", "full"), str, where,
                                      "'above' must name a fixed baseline"))
    if "lr" not in table:
        raise ConfigError(f"{where}: a fixed baseline needs 'lr' (its one learning rate), or "
                          "'threshold' for the textbook rule.")
    lr = _expect(table["lr"], (int, float), where, "'lr' must be a number")
    if not lr > 0:
        raise ConfigError(f"{where}: 'lr' must be positive, but got {lr}.")
    strategy = _expect(table.get("strategy", name), str, where, "'strategy' must be text")
    params = {k: v for k, v in table.items() if k not in ("lr", "strategy")}
    return Baseline(name=name, strategy=strategy, lr=float(lr),
                    params=tuple(sorted(params.items())))


def _task(table: Any, settings: dict[str, Any], baselines: dict[str, Baseline],
          where: str) -> Task:
    _expect(table, dict, where, "must be a table")
    missing = [k for k in ("name", "data", "backbone", "sizes") if k not in table]
    if missing:
        raise ConfigError(f"{where}: missing {missing}; a task needs name, data, backbone and "
                          "sizes (examples per class).")
    name = _expect(table["name"], str, where, "'name' must be text")
    where = f"{where} ({name!r})"
    _reserved({k: v for k, v in table.items() if k != "sizes"}, where)
    raw = _expect(table["sizes"], list, where, "'sizes' must be a list such as [5, 20, 'all']")
    sizes: list[int | None] = []
    for size in raw:
        if size == "all":
            sizes.append(None)
        elif isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            sizes.append(size)
        else:
            raise ConfigError(f"{where}: sizes must be whole examples per class >= 1 or 'all', "
                              f"but got {size!r}.")
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"{where}: 'sizes' repeats a size: {raw}.")
    # a task may restate a fixed baseline's settings (text encoders want smaller rates)
    own = _expect(table.get("baselines", {}), dict, where, "'baselines' must be a table")
    for key, override in own.items():
        _known(key, [b for b, v in baselines.items() if v.threshold is None],
               f"{where}: 'baselines' names", "fixed baseline")
        _expect(override, dict, where, f"'baselines.{key}' must be a table such as {{lr = 1e-4}}")
    task_baselines = dict(baselines)
    for key, override in own.items():
        b = baselines[key]
        table_of = {"strategy": b.strategy, "lr": b.lr, **dict(b.params), **override}
        task_baselines[key] = _baseline(key, table_of, f"{where} baselines.{key}")
    seeds = table.get("seeds")
    if seeds is not None and (_expect(seeds, int, where, "'seeds' must be a whole number >= 1")
                              < 1):
        raise ConfigError(f"{where}: 'seeds' must be at least 1, but got {seeds}.")
    merged = {**settings, **{k: v for k, v in table.items()
                             if k not in ("name", "sizes", "baselines", "seeds")}}
    task = Task(name=name, sizes=tuple(sorted(sizes, key=lambda s: math.inf if s is None else s)),
                settings=tuple(sorted(merged.items())),
                baselines=tuple(task_baselines.items()), seeds=seeds)
    for size in task.sizes:  # unknown or bad settings fail here, before anything trains
        try:
            task.config(size)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return task


# -- the grid ------------------------------------------------------------------------------------


def learning_rates(lr_range: tuple[float, float], n: int) -> list[float]:
    """``n`` rates log-spaced inside ``lr_range`` at the centres of equal log-width bins."""
    lo, hi = lr_range
    return [lo * (hi / lo) ** ((i + 0.5) / n) for i in range(n)]


def freeze_depths(fractions: tuple[float, ...], n_groups: int) -> list[int]:
    """Each fraction of ``n_groups`` rounded half up, clamped to [1, G−1], without repeats."""
    depths: list[int] = []
    for fraction in fractions:
        depth = min(max(math.floor(fraction * n_groups + 0.5), 1), n_groups - 1)
        if depth not in depths:
            depths.append(depth)
    return depths


def grid_params(grid: Grid, strategies: dict[str, Any], heads: dict[str, Any],
                backbone: Any) -> list[dict[str, Any]]:
    """Every config of the grid, as Optuna params of an autotl study (the space's names)."""
    _known(grid.head, heads, "the suite's [grid] head is", "head")
    base = {"head": grid.head, "weight_decay": grid.weight_decay,
            **{f"{grid.head}.{k}": v for k, v in heads[grid.head].default_params.items()}}
    configs = []
    for name in grid.strategies:
        _known(name, strategies, "the suite's [grid] strategies name", "strategy")
        spec = strategies[name]
        if name == "subset":
            if backbone.n_groups < 2:
                raise ConfigError(f"{backbone.name} has {backbone.n_groups} layer group; the "
                                  "grid's subset strategy needs at least 2.")
            variants = [{"freeze_depth": d}
                        for d in freeze_depths(grid.freeze_fractions, backbone.n_groups)]
        elif name == "lora":
            variants = [dict(grid.lora)]
        else:
            known = spec.known_good(backbone)
            variants = [{k: v for k, v in (known[0] if known else {}).items() if k != "lr"}]
        for variant in variants:
            for lr in learning_rates(spec.lr_range, grid.learning_rates):
                configs.append({"strategy": name, f"{name}.lr": lr, **base,
                                **{f"{name}.{k}": v for k, v in variant.items()}})
    return configs


def baseline_params(baseline: Baseline, baselines: dict[str, Baseline], size: int | None,
                    n_train_per_class: float, grid: Grid, heads: dict[str, Any]) -> dict[str, Any]:
    """The one config a baseline trains at this size (the textbook rule picks by size)."""
    if baseline.threshold is not None:
        per_class = size if size is not None else n_train_per_class
        chosen = baselines[baseline.below if per_class < baseline.threshold else baseline.above]
        return baseline_params(chosen, baselines, size, n_train_per_class, grid, heads)
    s = baseline.strategy
    return {"strategy": s, f"{s}.lr": baseline.lr, "head": grid.head,
            "weight_decay": grid.weight_decay,
            **{f"{grid.head}.{k}": v for k, v in heads[grid.head].default_params.items()},
            **{f"{s}.{k}": v for k, v in baseline.params}}
