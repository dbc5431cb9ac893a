"""Result rows → ``leaderboard.md``, ``leaderboard.csv`` and a self-contained
``leaderboard.html``: every method's test accuracy and regret (with interval) per task and
size, each method's mean regret and wins across the suite, accuracy against size per strategy,
and accuracy against compute with the non-dominated configs marked."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotl.bench.regret import (
    ORACLE,
    MethodSummary,
    OverDraws,
    Standing,
    config_key,
    group_key,
    over_draws,
    standings,
    summarize,
)
from autotl.bench.results import row_split_seed
from autotl.errors import ConfigError

CSV_COLUMNS = ("task", "n_per_class", "split_seed", "protocol", "backbone", "method", "runs", "test_mean",
               "test_sd", "val_mean", "regret", "regret_low", "regret_high", "noise_floor",
               "compute_seconds", "compute_fraction", "win", "strategies", "detail")


class Leaderboard:
    """Standings and summaries of a set of rows, rendered three ways."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            raise ConfigError("no result rows to rank; pass result files (.jsonl), folders of "
                              "them, or study storages with test-scored trials.")
        self.rows = rows
        self.table: list[Standing] = standings(rows)
        self.summary: list[MethodSummary] = summarize(self.table)
        self.draws: list[OverDraws] = over_draws(self.table)
        # Each protocol of the draws table (less its split seed) → a short label, A, B, …
        self.draw_labels = {family: chr(ord("A") + i) if i < 26 else str(i) for i, family
                            in enumerate(sorted({d.protocol for d in self.draws}))}

    def write(self, out: str | Path) -> list[Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "leaderboard.md", out / "leaderboard.csv", out / "leaderboard.html"]
        paths[0].write_text(self.markdown())
        paths[1].write_text(self.csv())
        paths[2].write_text(self.html())
        return paths

    # -- text -----------------------------------------------------------------------------------

    def markdown(self) -> str:
        lines = ["# Leaderboard", "", self._intro(), "", "## Methods across the suite", ""]
        lines += _md_table(*self._summary_cells())
        if self.draws:
            lines += ["", "## Per task and size, over draws of the training rows", "",
                      "Each draw is its own comparison against its own oracle. The mean "
                      "regret's 95% interval resamples every draw's test examples together; "
                      "the one with seed noise also moves each draw's regret by the best "
                      "config's seed noise (sd: its test accuracy's spread over the oracle's "
                      "seeds, pooled over the draws), for the seeds each side ran: the "
                      "interval for a method trained once, where the oracle ran 2 or more "
                      "seeds. "
                      "'within noise' counts the draws whose own regret interval reaches 0.",
                      ""]
            lines += _md_table(*self._draw_cells())
            if len(self.draw_labels) > 1:
                lines += ["", "Draw protocols: " + "; ".join(
                    f"{label} = `{family}`" for family, label in self.draw_labels.items())]
        lines += ["", "## Per task and size", ""]
        lines += _md_table(*self._table_cells())
        protocols = sorted({s.protocol for s in self.table})
        lines += ["", "Protocols: " + "; ".join(f"`{p}`" for p in protocols), ""]
        if machines := self.machines():
            lines += [machines, ""]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for s in self.table:
            row = s.to_dict()
            row["strategies"] = "+".join(row["strategies"])
            writer.writerow({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS})
        return buffer.getvalue()

    def _intro(self) -> str:
        tasks = sorted({s.task for s in self.table})
        n_groups = len({(s.task, s.n_per_class, s.protocol) for s in self.table})
        return (f"{len(self.rows)} result rows, {len(tasks)} task(s) ({', '.join(tasks)}), "
                f"{n_groups} task × size group(s). Regret = the oracle's best mean test "
                "accuracy − the method's, with a 95% paired-bootstrap interval over test "
                "examples; the noise floor is the oracle's own regret when its best config is "
                "picked by one seed and scored on the other; compute is training seconds per "
                "run (a search: all its trials; the oracle: its whole grid), and its fraction "
                "is of the oracle's whole grid.")

    def machines(self) -> str | None:
        """Which processors the rows were measured on, when more than one, and which groups
        compare rows from several: there a regret holds the processors' difference too."""
        counts: dict[str, int] = defaultdict(int)
        groups: dict[tuple[str, int | None, str], set[str]] = defaultdict(set)
        split_seeds: dict[tuple[str, int | None, str], int] = {}
        for row in self.rows:
            if row.get("hardware"):  # rows stored without it say nothing either way
                counts[row["hardware"]] += 1
                key = group_key(row)
                groups[key].add(row["hardware"])
                split_seeds[key] = row_split_seed(row)
        if len(counts) < 2:
            return None
        listed = "; ".join(f"{name}: {n} rows" for name, n in sorted(counts.items()))
        text = (f"Machines: the rows come from {len(counts)} processors ({listed}). The same "
                "config and seed train to other weights on another processor, whose "
                "floating-point kernels round differently: a test accuracy measured on one need "
                "not reproduce on another.")
        mixed: dict[tuple[str, int | None], list[int]] = defaultdict(list)
        for (task, size, protocol), names in groups.items():
            if len(names) > 1:
                mixed[(task, size)].append(split_seeds[(task, size, protocol)])
        if not mixed:
            return text + " No group compares rows from more than one."
        where = "; ".join(f"{task} at {_size(size)} per class (split seed "
                          f"{', '.join(str(d) for d in sorted(set(seeds)))})"
                          for (task, size), seeds in sorted(
                              mixed.items(), key=lambda item: (item[0][0],
                                                               _size_value(item[0][1]))))
        return (text + f" These groups compare rows from more than one, and their regrets "
                f"hold that difference too: {where}.")

    def _summary_cells(self) -> tuple[list[str], list[list[tuple[str, Any]]]]:
        header = ["method", "groups", "wins", "mean regret", "median regret", "worst regret",
                  "compute fraction"]
        rows = [[(m.method, m.method), (str(m.groups), m.groups), (str(m.wins), m.wins),
                 (_num(m.mean_regret), m.mean_regret), (_num(m.median_regret), m.median_regret),
                 (_num(m.worst_regret), m.worst_regret),
                 (_num(m.mean_compute_fraction), m.mean_compute_fraction)]
                for m in self.summary]
        return header, rows

    def _draw_cells(self) -> tuple[list[str], list[list[tuple[str, Any]]]]:
        labels = self.draw_labels
        several = len(labels) > 1  # then a column says which protocol (legend below)
        header = ["task", "size", *(["protocol"] if several else []), "method", "draws",
                  "mean regret [95% CI]", "95% CI with seed noise", "regret per draw",
                  "within noise",
                  "mean test accuracy"]
        rows = [[(d.task, d.task), (_size(d.n_per_class), _size_value(d.n_per_class)),
                 *([(labels[d.protocol], labels[d.protocol])] if several else []),
                 (d.method, d.method), (str(d.draws), d.draws),
                 (_num(d.mean_regret) + (f" [{d.mean_low:.3f}, {d.mean_high:.3f}]"
                                         if d.mean_low is not None else ""), d.mean_regret),
                 (f"[{d.seed_low:.3f}, {d.seed_high:.3f}] (sd {d.seed_sd:.3f})"
                  if d.seed_low is not None and d.seed_sd is not None else "—", d.seed_low),
                 (", ".join(f"{r:.3f}" for r in d.regrets), d.mean_regret),
                 (f"{d.within_noise}/{d.draws}", d.within_noise),
                 (_num(d.mean_test), d.mean_test)] for d in self.draws]
        return header, rows

    def _table_cells(self) -> tuple[list[str], list[list[tuple[str, Any]]]]:
        draws = len({s.split_seed for s in self.table}) > 1
        header = ["task", "size", *(["draw"] if draws else []), "method", "test accuracy",
                  "val accuracy", "regret [95% CI]", "noise floor", "compute s",
                  "compute fraction", "runs", "strategy"]
        rows = []
        for s in self.table:
            acc = _num(s.test_mean) + (f" ± {s.test_sd:.3f}" if s.test_sd is not None else "")
            regret = _num(s.regret)
            if s.regret_low is not None:
                regret += f" [{s.regret_low:.3f}, {s.regret_high:.3f}]"
            method = s.method + (" (win)" if s.win else "")
            strategy = s.detail or ", ".join(s.strategies)
            rows.append([(s.task, s.task), (_size(s.n_per_class), _size_value(s.n_per_class)),
                         *([(str(s.split_seed), s.split_seed)] if draws else []),
                         (method, s.method), (acc, s.test_mean), (_num(s.val_mean), s.val_mean),
                         (regret, s.regret), (_num(s.noise_floor), s.noise_floor),
                         (f"{s.compute_seconds:.1f}", s.compute_seconds),
                         (_num(s.compute_fraction), s.compute_fraction),
                         (str(s.runs), s.runs), (strategy, strategy)])
        return header, rows

    # -- html -----------------------------------------------------------------------------------

    def html(self) -> str:
        plots = self.plots()
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>autotl leaderboard</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>Leaderboard</h1>", f"<p>{html.escape(self._intro())}</p>",
            "<p class='hint'>Click a column header to sort by it; click again to reverse.</p>",
            "<h2>Methods across the suite</h2>",
            _html_table("summary", *self._summary_cells()),
            *(["<h2>Per task and size, over draws of the training rows</h2>",
               _html_table("draws", *self._draw_cells())] if self.draws else []),
            *(["<p>Draw protocols: " + "; ".join(
                f"{label} = <code>{html.escape(family)}</code>"
                for family, label in self.draw_labels.items()) + "</p>"]
              if len(self.draw_labels) > 1 else []),
            "<h2>Per task and size</h2>",
            _html_table("standings", *self._table_cells()),
            "<h2>Plots</h2>",
        ]
        for title, png in plots:
            parts.append(f"<figure><img class='plot' alt='{html.escape(title)}' "
                         f"src='data:image/png;base64,{png}'><figcaption>"
                         f"{html.escape(title)}</figcaption></figure>")
        protocols = sorted({s.protocol for s in self.table})
        parts.append("<p>Protocols: " + "; ".join(f"<code>{html.escape(p)}</code>"
                                                    for p in protocols) + "</p>")
        if machines := self.machines():
            parts.append(f"<p>{html.escape(machines)}</p>")
        parts.append(f"<script>{_SORT_JS}</script></body></html>")
        return "\n".join(parts)

    def plots(self) -> list[tuple[str, str]]:
        """(title, base64 PNG) per task: accuracy against size per strategy; per task and
        size: accuracy against compute with the non-dominated configs marked."""
        out = []
        by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows:
            by_task[row["task"]].append(row)
        for task, rows in sorted(by_task.items()):
            out.append((f"{task}: test accuracy against size per strategy",
                        _png(lambda ax, rows=rows: _draw_size(ax, rows))))
            sizes = sorted({r["n_per_class"] for r in rows}, key=_size_value)
            for size in sizes:
                at = [r for r in rows if r["n_per_class"] == size]
                out.append((f"{task} at {_size(size)} per class: test accuracy against "
                            "training seconds (non-dominated configs ringed)",
                            _png(lambda ax, at=at: _draw_compute(ax, at))))
        return out


# -- plots ---------------------------------------------------------------------------------------


def _png(draw: Callable[[Any], None]) -> str:
    # A Figure of its own renders through Agg without touching pyplot's global backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    ax = fig.subplots()
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _config_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per config: mean test accuracy and training seconds over its runs."""
    configs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        configs[config_key(row)].append(row)
    return [{"strategy": runs[0]["strategy"],
             "accuracy": statistics.fmean(r["test_accuracy"] for r in runs),
             "seconds": statistics.fmean(r.get("train_seconds") or r["compute_seconds"]
                                         for r in runs)}
            for runs in configs.values()]


def non_dominated(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point beats on both accuracy (higher) and seconds (lower)."""
    return [p for p in points
            if not any(q["accuracy"] >= p["accuracy"] and q["seconds"] <= p["seconds"]
                       and (q["accuracy"] > p["accuracy"] or q["seconds"] < p["seconds"])
                       for q in points)]


def _draw_size(ax: Any, rows: list[dict[str, Any]]) -> None:
    oracle = [r for r in rows if r["method"] == ORACLE] or rows
    sizes = sorted({r["n_per_class"] for r in rows}, key=_size_value)
    positions = {size: i for i, size in enumerate(sizes)}
    for strategy in sorted({r["strategy"] for r in oracle}):
        xs, ys = [], []
        for size in sizes:
            points = _config_means([r for r in oracle if r["strategy"] == strategy
                                    and r["n_per_class"] == size])
            if points:
                xs.append(positions[size])
                ys.append(max(p["accuracy"] for p in points))
        ax.plot(xs, ys, marker="o", label=f"{strategy} (best config)")
    for method in sorted({r["method"] for r in rows} - {ORACLE}):
        xs, ys = [], []
        for size in sizes:
            accs = [r["test_accuracy"] for r in rows
                    if r["method"] == method and r["n_per_class"] == size]
            if accs:
                xs.append(positions[size])
                ys.append(statistics.fmean(accs))
        ax.plot(xs, ys, linestyle="--", marker="x", label=f"method {method}")
    ax.set_xticks(range(len(sizes)), [_size(s) for s in sizes])
    ax.set_xlabel("training examples per class")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the data


def _draw_compute(ax: Any, rows: list[dict[str, Any]]) -> None:
    oracle = _config_means([r for r in rows if r["method"] == ORACLE])
    if oracle:
        front = non_dominated(oracle)
        for strategy in sorted({p["strategy"] for p in oracle}):
            own = [p for p in oracle if p["strategy"] == strategy]
            ax.scatter([p["seconds"] for p in own], [p["accuracy"] for p in own], s=18,
                       alpha=0.7, label=f"oracle: {strategy}")
        front.sort(key=lambda p: p["seconds"])
        ax.scatter([p["seconds"] for p in front], [p["accuracy"] for p in front], s=90,
                   facecolors="none", edgecolors="black", label="non-dominated")
        ax.plot([p["seconds"] for p in front], [p["accuracy"] for p in front], color="black",
                linewidth=0.6)
    for method in sorted({r["method"] for r in rows} - {ORACLE}):
        own = [r for r in rows if r["method"] == method]
        x = statistics.fmean(r["compute_seconds"] for r in own)
        y = statistics.fmean(r["test_accuracy"] for r in own)
        ax.scatter([x], [y], marker="*", s=120, label=f"method {method}")
    ax.set_xscale("log")
    ax.set_xlabel("training seconds per run (log)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the data


# -- formatting ----------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _size(size: int | None) -> str:
    return "all" if size is None else str(size)


def _size_value(size: int | None) -> float:
    return float("inf") if size is None else float(size)


def _md_table(header: list[str], rows: list[list[tuple[str, Any]]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(text.replace("|", "\\|") for text, _ in row) + " |"
              for row in rows]
    return lines


def _html_table(name: str, header: list[str], rows: list[list[tuple[str, Any]]]) -> str:
    """A table whose cells carry their sort value in ``data-v`` (JSON: a number, a string,
    or null, which sorts last)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for text, value in row:
            if isinstance(value, float) and value == float("inf"):
                value = 1e18  # "all" sorts after every size
            cells.append(f"<td data-v='{html.escape(json.dumps(value))}'>"
                         f"{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='sortable' id='{name}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 72em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[data-dir='asc']::after { content: ' ▲'; } th[data-dir='desc']::after { content: ' ▼'; }
figure { display: inline-block; margin: 0.5em; } .hint { color: #666; }
"""

# Sort a table's rows by the clicked column's data-v values; nulls last; a second click on
# the same header reverses.
_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) { return JSON.parse(row.cells[col].dataset.v); };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null && y === null) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        var c = (typeof x === 'number' && typeof y === 'number') ? x - y
                : String(x).localeCompare(String(y));
        return dir === 'asc' ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def write_leaderboard(sources: list[str | Path], out: str | Path) -> list[Path]:
    """Read and merge every source (files, folders, storages) and write the three files."""
    from autotl.bench.results import read_results

    return Leaderboard(read_results(sources)).write(out)
