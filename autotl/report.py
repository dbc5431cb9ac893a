"""A study's outputs: recommendation.json, trials.csv, report.md, report.html, best_model/."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

from autotl.errors import AutoTLError
from autotl.recommendation import Recommendation

log = logging.getLogger(__name__)

TRIAL_COLUMNS = ["number", "state", "origin", "strategy", "val_accuracy", "test_accuracy",
                 "train_seconds", "train_flops", "eval_seconds", "trainable_params",
                 "total_params",
                 "frozen_depth", "cached_depth", "steps", "accumulation_steps", "device",
                 "worker"]


def write_outputs(recommendation: Recommendation, study: Any, out: Path) -> None:
    """Write every report file; each is complete on its own (written to a temp name first)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    _write(out / "recommendation.json", json.dumps(recommendation.to_dict(), indent=2))
    _write(out / "trials.csv", _csv(rows))
    _write(out / "report.md", markdown_report(recommendation, rows))
    _write(out / "report.html", html_report(recommendation, rows))


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:  # a full disk: the previous file stays whole, the study is intact
        tmp.unlink(missing_ok=True)
        raise AutoTLError(
            f"could not write {path}: {exc.strerror or exc}. The study's trials are safe in "
            "its storage; free some space (or pick another --out) and write the outputs again "
            "with `autotl report`."
        ) from exc


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One flat row per trial: measurements, then every parameter, then any error."""
    from autotl.study import stored_test_scores

    tests = stored_test_scores(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "WAITING":  # queued configs (known-good, retries) not started yet
            continue
        attrs = t.user_attrs
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name.lower(),
            "origin": attrs.get("origin", "sampled"),
            "strategy": t.params.get("strategy", ""),
            "val_accuracy": t.value,
            **{k: attrs.get(k) for k in TRIAL_COLUMNS[5:]},
        }
        row["test_accuracy"] = tests.get(t.number, {}).get("accuracy")
        strategy = row["strategy"]
        for key, value in sorted(t.params.items()):
            if key != "strategy":
                row[key.removeprefix(f"{strategy}.") if key.startswith(f"{strategy}.")
                    else key] = value
        if t.state.name == "PRUNED" and attrs.get("history"):
            row["val_accuracy"] = attrs["history"][-1][1]
        # why it did not complete: a failure's error, or the fault that stopped it early
        row["error"] = attrs.get("error") or attrs.get("reason", "")
        rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = list(TRIAL_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns and k != "error"]
    columns.append("error")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


# -- markdown ----------------------------------------------------------------------------------


def _why(rec: Recommendation, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Plain reasons read off the measurements."""
    reasons = list(rec.notes)
    devices = sorted({str(r["device"]) for r in rows or [] if r.get("device")})
    if len(devices) > 1:  # workers on mixed hardware
        reasons.append(f"Trials ran on {len(devices)} kinds of device ({', '.join(devices)}): "
                       "training seconds compare only within one kind; which config is "
                       "cheapest was decided by counted operations, the same on every kind.")
    best = rec.recommended
    if best is None:
        return reasons
    if rec.selection:
        reasons.append(rec.selection)
    missing = [s["strategy"] for s in rec.per_strategy if s["n_complete"] == 0]
    if missing:
        reasons.append("No completed trial for " + ", ".join(missing)
                       + ": compare them with more trials before ruling them out.")
    cheap = rec.cheapest_within_tolerance
    if cheap and cheap.trial != best.trial and best.train_seconds > 0:
        # The rule's cost where both were counted; seconds move with the machine's load.
        if cheap.train_flops and best.train_flops:
            cost = (f"trains with {best.train_flops / cheap.train_flops:.1f}× fewer "
                    "operations")
        else:
            cost = f"trains {best.train_seconds / max(cheap.train_seconds, 1e-9):.1f}× faster"
        reasons.append(
            f"Giving up {rec.tolerance:.3f} more accuracy, {cheap.short()} {cost} and adapts "
            f"{cheap.trainable_params:,} instead of {best.trainable_params:,} parameters."
        )
    folds = rec.validation.get("mode") == "folds"
    n_val = rec.validation["rows"] if folds else rec.dataset["n_val"]
    noise = math.sqrt(0.25 / max(n_val, 1))
    what = "rows scored in every repeat of the folds" if folds else "validation examples"
    reasons.append(f"With {n_val} {what}, one standard error of an accuracy is up "
                   f"to {noise:.3f}. Validation accuracy chose the config, so it is optimistic"
                   + (f"; the {rec.dataset.get('n_test')} test rows were scored only after."
                      if best.test_accuracy is not None else
                      "; the data has no test split (use --test-fraction for one)."))
    if rec.origins:
        reasons.append("Where the trials came from: " + ", ".join(
            f"{n} {o}" for o, n in sorted(rec.origins.items())) + ".")
    if rec.prior:
        p = rec.prior
        left = (f", {p['left_out_own_data']} records of this dataset left out"
                if p.get("left_out_own_data") else "")
        none = (f"; none is a record of {rec.dataset['modality']} data, so the prior played "
                "no part" if p.get("of_modality") == 0 and p["used"] else "")
        reasons.append(f"Prior: {p['used']} of {p['records']} records used{left}"
                       + (f" (from {', '.join(p['sources'])})" if p.get("sources") else "")
                       + none + ".")
    if rec.cache and (rec.cache.get("hits") or rec.cache.get("misses")):
        c = rec.cache
        reasons.append(f"Activation cache: {c['hits']} hits, {c['misses']} computed, "
                       f"{c['saved_seconds']:.1f} s of frozen-layer computation saved.")
    return reasons


def _acc(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown_report(rec: Recommendation, rows: list[dict[str, Any]]) -> str:
    lines = [f"# autotl report: {rec.study}", "", rec.summary(), "", "## Per strategy", "",
             "Each strategy's pick by the same rule as the recommendation (validation "
             "accuracy chose it, ± one standard error: over folds where trials were scored "
             "over folds, else binomial; test accuracy scored after). 'max val' is the highest "
             "validation accuracy of any of its trials, which is biased upward.", "",
             "| strategy | val accuracy | test accuracy | max val | trials (complete, "
             "sampled) | train s | trainable params | params |",
             "|---|---|---|---|---|---|---|---|"]
    for s in rec.per_strategy:
        secs = "–" if s["train_seconds"] is None else f"{s['train_seconds']:.1f}"
        params = "–" if s["trainable_params"] is None else f"{s['trainable_params']:,}"
        best = "–" if not s["params"] else ", ".join(
            f"{k}={_short(v)}" for k, v in s["params"].items())
        se = s.get("val_se")
        val = _acc(s["val_accuracy"]) + (f" ± {se:.3f}" if se is not None
                                         and math.isfinite(se) else "")
        lines.append(f"| {s['strategy']} | {val} | "
                     f"{_acc(s.get('test_accuracy'))} | {_acc(s['max_val_accuracy'])} | "
                     f"{s['n_trials']} ({s['n_complete']}, {s['n_sampled']}) | "
                     f"{secs} | {params} | {best} |")
    lines += ["", "## Why", ""] + [f"- {r}" for r in _why(rec, rows)]
    failed = [r for r in rows if r["state"] == "fail" or (r["state"] == "pruned" and r["error"])]
    if failed:
        lines += ["", "## Failed or stopped trials", ""]
        lines += [f"- trial {r['number']} ({r['strategy'] or '?'}): {r['error']}"
                  for r in failed]
    pooled = (f" ({rec.validation['rows']} rows pooled and scored over folds)"
              if rec.validation.get("mode") == "folds" else "")
    # Where validation came from; the summary above already says it for a given set.
    source = f"{rec.validation['words']} " if rec.validation.get("source") == "drawn" else ""
    lines += ["", f"Data: {rec.dataset['name']}, {rec.dataset['n_train']} train / "
              f"{rec.dataset['n_val']} validation{pooled} / {rec.dataset.get('n_test', 0)} test "
              f"examples, {rec.dataset['n_classes']} classes. {source}"
              f"Backbone: {rec.backbone} ({rec.n_groups} layer groups). {rec.budget} Storage: "
              f"`{rec.storage}`, study `{rec.study}`.", ""]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# -- html --------------------------------------------------------------------------------------


def _figure_png(draw: Any) -> str:
    """``draw(ax)`` rendered to a base64 PNG on a bare Figure: no pyplot, so the caller's
    backend, style and open figures are left as they were (a notebook's among them)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8), dpi=100)
    draw(fig.add_subplot())
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(rec: Recommendation, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    done = [r for r in rows if r["state"] == "complete" and r["val_accuracy"] is not None]
    strategies = sorted({r["strategy"] for r in done})
    colors = {s: f"C{i}" for i, s in enumerate(strategies)}

    # Not optuna.visualization.matplotlib.plot_optimization_history: it draws through pyplot
    # and sets the ggplot style process-wide, and cannot colour points by strategy.
    def history(ax: Any) -> None:
        best, xs, ys = -1.0, [], []
        for r in done:
            ax.scatter(r["number"], r["val_accuracy"], color=colors[r["strategy"]],
                       label=r["strategy"])
            best = max(best, r["val_accuracy"])
            xs.append(r["number"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="black", linewidth=1, label="best so far")
        _legend(ax)
        ax.set(xlabel="trial", ylabel="validation accuracy", title="Optimisation history")

    def per_strategy(ax: Any) -> None:
        ranked = [s for s in rec.per_strategy if s["val_accuracy"] is not None]
        ax.barh([s["strategy"] for s in ranked], [s["val_accuracy"] for s in ranked],
                color=[colors.get(s["strategy"], "grey") for s in ranked])
        low = min((s["val_accuracy"] for s in ranked), default=0)
        ax.set_xlim(max(0.0, low - 0.1), 1.0)
        ax.set(xlabel="validation accuracy of each strategy's pick",
               title="Each strategy's pick")

    def cost(key: str, label: str, log: bool) -> Any:
        def draw(ax: Any) -> None:
            for r in done:
                if r.get(key):
                    ax.scatter(r[key], r["val_accuracy"], color=colors[r["strategy"]],
                               label=r["strategy"])
            if log:
                ax.set_xscale("log")
            _legend(ax)
            ax.set(xlabel=label, ylabel="validation accuracy", title=f"Accuracy against {label}")
        return draw

    if not done:
        return []
    return [
        ("Optimisation history", _figure_png(history)),
        ("Each strategy's pick", _figure_png(per_strategy)),
        ("Accuracy against training seconds", _figure_png(cost("train_seconds",
                                                               "training seconds", False))),
        ("Accuracy against trainable parameters",
         _figure_png(cost("trainable_params", "trainable parameters", True))),
    ]


def _legend(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=8)


def html_report(rec: Recommendation, rows: list[dict[str, Any]]) -> str:
    """A single self-contained page: summary, plots as inline PNGs, tables."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>autotl: {esc(rec.study)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid "
        "#ccc;padding:3px 6px;text-align:left}img{max-width:100%}.summary{background:#f4f7fb;"
        "padding:1em;border-radius:6px;white-space:pre-wrap}</style></head><body>",
        f"<h1>autotl report: {esc(rec.study)}</h1>",
        f"<div class='summary'>{esc(rec.summary())}</div>",
        "<h2>Why</h2><ul>", *(f"<li>{esc(r)}</li>" for r in _why(rec, rows)), "</ul>",
    ]
    for title, png in _plots(rec, rows):
        parts += [f"<h2>{esc(title)}</h2>",
                  f"<img alt='{esc(title)}' src='data:image/png;base64,{png}'>"]
    parts += ["<h2>Per strategy</h2>", "<p>Each strategy's pick by the recommendation's rule "
              "(validation chose it; test scored after; max val is biased upward).</p>", _table(
        ["strategy", "val accuracy", "test accuracy", "max val", "trials", "complete",
         "sampled", "train s", "trainable params"],
        [[s["strategy"], _cell(s["val_accuracy"]), _cell(s.get("test_accuracy")),
          _cell(s["max_val_accuracy"]), s["n_trials"], s["n_complete"], s["n_sampled"],
          _cell(s["train_seconds"]), s["trainable_params"] or ""]
         for s in rec.per_strategy])]
    columns = [c for c in TRIAL_COLUMNS if c != "total_params"]
    extra = sorted({k for r in rows for k in r if k not in TRIAL_COLUMNS and k != "error"})
    parts += ["<h2>All trials</h2>", _table(
        columns + extra + ["error"],
        [[_cell(r.get(c)) for c in columns + extra] + [r.get("error", "")] for r in rows])]
    parts.append("</body></html>")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
