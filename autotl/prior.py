"""A prior from past results: what won on similar data, before any training.

Past studies (size maps, leaderboards) are kept as **records**, one per (dataset, size,
strategy): the strategy's best config there, its mean accuracy over seeds, and the best mean
any strategy reached at that size. ``recommend`` ranks strategies for a new problem by the
kernel-weighted relative accuracy of the records nearest in meta-features: modality (must
match), examples per class, classes, backbone size and, when data is given, LogME — a cheap
score of how well the frozen backbone's features fit the labels. ``autotl search`` enqueues the
top suggestions first.

The prior file format (JSON)::

    {"format": 1, "description": "...",
     "records": [{"source": "...", "dataset": "fashion-mnist",
                  "data_fingerprint": "3f9c…", "modality": "image",
                  "n_per_class": 20, "n_classes": 10, "backbone": "offline:efficientnet-lite0",
                  "backbone_params": 3371493, "n_groups": 8, "logme": 1.23,
                  "strategy": "subset", "params": {"lr": 0.002, "freeze_depth": 4, ...},
                  "mean_accuracy": 0.81, "std": 0.01, "seeds": 3,
                  "best_mean_at_size": 0.83, "train_seconds": 12.0,
                  "trainable_params": 3328314}]}

``data_fingerprint`` (optional) identifies the data a record was measured on: a search leaves
out records of its own data — by fingerprint where a record has one, else by dataset name —
since they would replay a choice made on the same rows. ``params`` are a trial's parameters
without the strategy prefix; ``freeze_depth`` is mapped to another backbone through the
fraction ``freeze_depth / n_groups``. ``autotl prior build`` writes this file from size maps
and benchmark result rows (:func:`build_prior`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from autotl.errors import ConfigError

FORMAT = 1
BANDWIDTH = 0.7
TAU = 0.1  # uncertainty of a relative accuracy that no close record supports
SD_FLOOR = 0.01
DEFAULT_PRIOR = "default"
_REQUIRED = ("dataset", "modality", "n_per_class", "n_classes", "backbone", "strategy",
             "params", "mean_accuracy", "best_mean_at_size")


@dataclass
class Suggestion:
    """A strategy and config the prior expects to do well, with the evidence for it."""

    strategy: str
    params: dict[str, Any]
    score: float  # kernel-weighted accuracy relative to the best strategy at that size
    support: float  # total kernel weight behind the score (≈ number of close records)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    sd: float = TAU  # uncertainty of ``score`` for this problem (see :func:`relative_sd`)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "params": self.params, "score": self.score,
                "sd": self.sd, "support": self.support, "evidence": self.evidence}


def relative_sd(weights: list[float], relative: list[float], score: float) -> float:
    """How uncertain the prior's expected relative accuracy ``score`` is for a new problem:

    ``sd² = s²·(1 + 1/n_eff) + TAU²/(1 + support)``

    with ``s²`` the kernel-weighted variance of the records' relative accuracies around
    ``score`` (how much problems like this one differ: the new one is one more draw),
    ``n_eff = (Σw)²/Σw²`` the records' effective number (the weighted mean's own error), and
    ``support = Σw``: a prior backed by few or distant records keeps up to ``TAU`` of
    uncertainty even when those records agree. Floored at ``SD_FLOOR``."""
    total = sum(weights)
    spread = sum(w * (r - score) ** 2 for w, r in zip(weights, relative, strict=True)) / total
    n_eff = total**2 / sum(w * w for w in weights)
    return max(math.sqrt(spread * (1 + 1 / n_eff) + TAU**2 / (1 + total)), SD_FLOOR)


def load_prior(source: str | Path = DEFAULT_PRIOR) -> list[dict[str, Any]]:
    """Records from a prior file, or the one shipped with autotl (``"default"``)."""
    if str(source) == DEFAULT_PRIOR:
        text = resources.files("autotl").joinpath("priors/default.json").read_text()
        where = "autotl's default prior"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"prior file {str(path)!r} does not exist; pass a JSON file in "
                              "the format documented in autotl.prior, or 'default'.")
        text, where = path.read_text(), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"prior {where} is not valid JSON: {exc}") from exc
    if data.get("format") != FORMAT:
        raise ConfigError(f"prior {where} has format {data.get('format')!r}; this autotl "
                          f"reads format {FORMAT}.")
    records = data.get("records", [])
    for i, record in enumerate(records):
        missing = [k for k in _REQUIRED if k not in record]
        if missing:
            raise ConfigError(f"prior {where}: record {i} lacks {missing}.")
    return records


def distance(query: dict[str, Any], record: dict[str, Any]) -> float:
    """How far a record's problem is from the query's (inf: another modality)."""
    if query["modality"] != record["modality"]:
        return math.inf
    d = abs(math.log(query["n_per_class"]) - math.log(record["n_per_class"]))
    d += 0.5 * abs(math.log(query["n_classes"]) - math.log(record["n_classes"]))
    if query.get("backbone_params") and record.get("backbone_params"):
        d += 0.5 * abs(math.log(query["backbone_params"]) - math.log(record["backbone_params"]))
    if query.get("backbone") and query["backbone"] != record["backbone"]:
        d += 0.5
    if query.get("logme") is not None and record.get("logme") is not None:
        d += 2.0 * abs(query["logme"] - record["logme"])
    return d


def recommend(modality: str, n_per_class: float, n_classes: int, *, backbone: str | None = None,
              backbone_params: int | None = None, logme: float | None = None,
              prior: str | Path | list[dict[str, Any]] = DEFAULT_PRIOR,
              strategies: list[str] | None = None, top: int | None = None) -> list[Suggestion]:
    """Strategies ranked for a problem like this one, from past results, without training."""
    if modality not in ("image", "text"):
        raise ConfigError(f"modality must be 'image' or 'text', but got {modality!r}.")
    if n_per_class <= 0 or n_classes < 2:
        raise ConfigError(f"need n_per_class > 0 and n_classes >= 2, but got "
                          f"n_per_class={n_per_class}, n_classes={n_classes}.")
    records = prior if isinstance(prior, list) else load_prior(prior)
    query = {"modality": modality, "n_per_class": n_per_class, "n_classes": n_classes,
             "backbone": backbone, "backbone_params": backbone_params, "logme": logme}
    by_strategy: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for record in records:
        if strategies is not None and record["strategy"] not in strategies:
            continue
        d = distance(query, record)
        if math.isfinite(d):
            by_strategy.setdefault(record["strategy"], []).append((d, record))
    suggestions = []
    for strategy, scored in by_strategy.items():
        weights = [math.exp(-d / BANDWIDTH) for d, _ in scored]
        total = sum(weights)
        if total <= 1e-12:
            continue
        relative = [r["mean_accuracy"] / r["best_mean_at_size"] for _, r in scored]
        score = sum(w * rel for w, rel in zip(weights, relative, strict=True)) / total
        nearest_d, nearest = min(scored, key=lambda item: item[0])
        suggestions.append(Suggestion(
            strategy=strategy,
            params=_portable_params(nearest),
            score=score,
            support=total,
            sd=relative_sd(weights, relative, score),
            evidence=[{"dataset": r["dataset"], "n_per_class": r["n_per_class"],
                       "backbone": r["backbone"], "mean_accuracy": r["mean_accuracy"],
                       "relative": rel, "distance": round(d, 3)}
                      for (d, r), rel in sorted(zip(scored, relative, strict=True),
                                                key=lambda item: item[0][0])[:3]],
        ))
    suggestions.sort(key=lambda s: (-s.score, -s.support))
    return suggestions[:top] if top else suggestions


def _portable_params(record: dict[str, Any]) -> dict[str, Any]:
    params = dict(record["params"])
    if "freeze_depth" in params and record.get("n_groups"):
        params["freeze_fraction"] = params["freeze_depth"] / record["n_groups"]
    return params


def trial_params(suggestion: Suggestion, *, n_groups: int, lr_range: tuple[float, float],
                 heads: list[str]) -> dict[str, Any]:
    """Optuna params that enqueue ``suggestion`` in a study of another backbone: freeze depth
    scaled by fraction, lr clipped to the strategy's range, an unavailable head replaced."""
    s = suggestion.strategy
    params = dict(suggestion.params)
    head = params.pop("head", "linear")
    if head not in heads:
        head = "linear" if "linear" in heads else heads[0]
        params = {k: v for k, v in params.items() if "." not in k}
    fraction = params.pop("freeze_fraction", None)
    if "freeze_depth" in params and fraction is not None:
        params["freeze_depth"] = min(max(round(fraction * n_groups), 1), n_groups - 1)
    out: dict[str, Any] = {"strategy": s, "head": head}
    for key, value in params.items():
        if key == "weight_decay" or "." in key:
            out[key] = value
        elif key == "lr":
            out[f"{s}.lr"] = min(max(float(value), lr_range[0]), lr_range[1])
        else:
            out[f"{s}.{key}"] = value
    return out


def records_from_size_map(size_map: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Prior records from a ``size_map.json``: one per size and strategy."""
    records = []
    for rung in size_map["sizes"]:
        best = rung.get("best")
        if not best:
            continue
        n_per_class = rung["n_per_class"] or rung["n_train"] / size_map["n_classes"]
        for measured in rung["per_strategy"]:
            records.append({
                "source": source,
                "dataset": size_map["dataset"],
                "data_fingerprint": size_map.get("data_fingerprint"),
                "modality": size_map["modality"],
                "n_per_class": n_per_class,
                "n_classes": size_map["n_classes"],
                "backbone": size_map["backbone"],
                "backbone_params": size_map["backbone_params"],
                "n_groups": rung["n_groups"],
                "logme": rung.get("logme"),
                "strategy": measured["strategy"],
                "params": measured["params"],
                "mean_accuracy": measured["mean"],
                "std": measured["std"],
                "seeds": measured["seeds"],
                "best_mean_at_size": best["mean"],
                "train_seconds": measured["train_seconds"],
                "trainable_params": measured["trainable_params"],
            })
    return records


def records_from_rows(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Prior records from benchmark result rows: per task, size and protocol, each strategy's
    best config (by mean validation accuracy over its seeds, test accuracy when a row lacks
    validation) with its mean test accuracy. Where the oracle ran, only its rows count (every
    config of the grid); elsewhere every method's rows."""
    import statistics
    from collections import defaultdict

    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["n_per_class"], row["protocol"])].append(row)
    records = []
    for (task, size, protocol), members in groups.items():
        oracle = [r for r in members if r["method"] == "oracle"]
        members = oracle or members
        first = members[0]
        missing = [k for k in ("modality", "n_classes") if first.get(k) is None]
        if size is None and first.get("n_train") is None:
            missing.append("n_train")
        if missing:
            raise ConfigError(f"result rows of task {task!r} lack {missing}, which a prior "
                              "record needs; fill them in (see benchmarks/results/README.md).")
        configs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in members:
            configs[json.dumps([row["strategy"], row["params"]], sort_keys=True)].append(row)

        def choice(runs: list[dict[str, Any]]) -> float:
            vals = [r.get("val_accuracy") for r in runs]
            chosen = vals if all(v is not None for v in vals) else [r["test_accuracy"]
                                                                    for r in runs]
            return statistics.fmean(chosen)

        best_per_strategy: dict[str, list[dict[str, Any]]] = {}
        for runs in configs.values():
            strategy = runs[0]["strategy"]
            held = best_per_strategy.get(strategy)
            if held is None or choice(runs) > choice(held):
                best_per_strategy[strategy] = runs
        means = {s: statistics.fmean(r["test_accuracy"] for r in runs)
                 for s, runs in best_per_strategy.items()}
        best_mean = max(means.values())
        for strategy, runs in best_per_strategy.items():
            tests = [r["test_accuracy"] for r in runs]
            records.append({
                "source": f"{source}: task {task}, {first['method'] if not oracle else 'oracle'}"
                          f" rows, protocol {protocol}",
                "dataset": first["dataset"],
                "data_fingerprint": first.get("data_fingerprint"),
                "modality": first["modality"],
                "n_per_class": size if size is not None else first["n_train"] / first["n_classes"],
                "n_classes": first["n_classes"],
                "backbone": first["backbone"],
                "backbone_params": first.get("backbone_params"),
                "n_groups": first.get("n_groups"),
                "logme": None,
                "strategy": strategy,
                "params": runs[0]["params"],
                "mean_accuracy": means[strategy],
                "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                "seeds": len(runs),
                "best_mean_at_size": best_mean,
                "train_seconds": statistics.fmean(r.get("train_seconds") or r["compute_seconds"]
                                                  for r in runs),
                "trainable_params": runs[0].get("trainable_params"),
            })
    return records


def build_prior(sources: list[str | Path], *, description: str = "") -> dict[str, Any]:
    """A prior file's content from size maps (``size_map.json``), result rows (``.jsonl``
    files, folders of them, study storages) and other prior files, whose records are kept as
    they are (to extend a prior with new measurements)."""
    import datetime

    from autotl.bench.results import read_results

    records: list[dict[str, Any]] = []
    row_sources = []
    for source in sources:
        path = Path(source)
        if path.suffix == ".json" and path.is_file():
            try:
                size_map = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
            if isinstance(size_map, dict) and "records" in size_map:  # a prior file
                records += load_prior(path)
                continue
            if not isinstance(size_map, dict) or "sizes" not in size_map:
                raise ConfigError(f"{path} is neither a size map (size_map.json from `autotl "
                                  "search --sizes`) nor a prior file; pass size maps, prior "
                                  "files or result rows (.jsonl).")
            records += records_from_size_map(size_map, source=str(path))
        else:
            row_sources.append(source)
    if row_sources:
        records += records_from_rows(read_results(row_sources),
                                     source=", ".join(map(str, row_sources)))
    if not records:
        raise ConfigError(f"no prior records in {[str(s) for s in sources]}: the size maps "
                          "hold no completed size and the result files no rows.")
    return {"format": FORMAT,
            "description": description or f"built {datetime.date.today()} by `autotl prior "
                                          f"build` from {len(sources)} source(s)",
            "records": records}


def leave_out(records: list[dict[str, Any]], *, dataset: str,
              fingerprint: str | None) -> list[dict[str, Any]]:
    """The records of every other dataset: a record is dropped when its data fingerprint or
    its dataset name matches (a class subset of the data has another fingerprint but is
    still the same data)."""
    def same(record: dict[str, Any]) -> bool:
        return bool(fingerprint and record.get("data_fingerprint") == fingerprint) \
            or record["dataset"] == dataset

    return [r for r in records if not same(r)]


def logme(features: Any, labels: Any) -> float:
    """LogME (You et al., ICML 2021): the mean over classes of the log marginal evidence of a
    Bayesian linear model from ``features`` [N, D] to one-hot ``labels`` [N], per example."""
    import numpy as np

    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    n, d = f.shape
    if n < 2:
        raise ConfigError("LogME needs at least 2 examples.")
    v, s, _ = np.linalg.svd(f.T @ f)
    projected = f @ v
    evidences = []
    for cls in np.unique(y):
        target = (y == cls).astype(np.float64)
        alpha, beta = 1.0, 1.0
        t = projected.T @ target
        for _ in range(20):
            gamma = float((beta * s / (alpha + beta * s)).sum())
            m = v @ (beta * t / (alpha + beta * s))
            alpha_de = float(m @ m)
            beta_de = float(((target - f @ m) ** 2).sum())
            new_alpha = gamma / (alpha_de + 1e-5)
            new_beta = (n - gamma) / (beta_de + 1e-5)
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-3
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta)
                    - 0.5 * float(np.log(alpha + beta * s).sum())
                    - beta / 2 * beta_de - alpha / 2 * alpha_de - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))
