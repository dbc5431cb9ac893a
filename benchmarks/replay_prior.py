"""What would another prior have changed? Replays benchmark searches without training anything.

    python benchmarks/replay_prior.py RESULTS [MORE ...] --prior SOURCE [MORE ...] [--z Z]

RESULTS are result rows (`autotl bench` output; files or folders, as `autotl leaderboard` takes
them) holding each group's `oracle` rows and the `autotl` rows to replay. Each autotl row names
the study it came from (its `source`: storage URL and study name), which must still be there.

For each autotl row:

- its study's completed trials are selected again by the one selection rule
  (`autotl.selection`), on the stored per-row validation or fold outcomes, once with the prior
  expectations the search used and once with those of the **new prior**: SOURCE is `default`,
  `none`, a prior file, size maps or result rows (`autotl prior build` reads the same), less
  every record of the task's own dataset, as a benchmark's prior must be;
- the chosen trial's test accuracy is looked up, not measured again: a search scores each
  strategy's pick on the test split after selection (in fold mode the pick retrained on every
  row, the model a recommendation of it would ship), so a replayed choice that lands on one of
  those picks has its test accuracy already; one that lands elsewhere is reported unscored;
- its regret is the group's oracle best mean test accuracy minus that accuracy.

`--z Z` also replays the new choice with another tie band: Z standard errors of the gap instead
of autotl's one (0: no tie, the best estimate always wins). It asks what the rule's preference
for the cheaper of tied configs cost or saved on these searches; choosing Z by these test
figures would be tuning on the test split.

What it cannot replay: LogME (the search computed it from the backbone's features; records
from result rows carry none, so the new prior's nearness leaves it out) and the prior's say in
which trials ran first (the replay keeps the trials the search ran). It is a replay, not a
rerun: say so beside any figure it gives.

Searches that measured nothing to choose among (one row per class, where the prior alone
chose) are skipped. Prints each replayed search, then per task, size and protocol the mean
regret before and after, and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from typing import Any

from autotl.bench.regret import ORACLE, paired_interval, standings
from autotl.bench.results import protocol_family, read_results, row_split_seed
from autotl.errors import AutoTLError, ConfigError


def prior_records(sources: list[str]) -> list[dict[str, Any]]:
    """Records from prior files (or 'default'), size maps and result rows together."""
    from autotl.prior import build_prior, load_prior

    built = [s for s in sources if s not in ("none", "default")]
    records = load_prior("default") if "default" in sources else []
    return records + (build_prior(built)["records"] if built else [])


def _study_of(row: dict[str, Any]) -> tuple[str, str]:
    """(storage URL, study name) from an autotl row's ``source``."""
    words = str(row.get("source") or "").split()
    if "study" not in words or words.index("study") == 0:
        raise ConfigError(f"row of task {row['task']!r} at {row['n_per_class']} per class names "
                          f"no study in its source ({row.get('source')!r}); only rows "
                          "`autotl bench` wrote can be replayed.")
    at = words.index("study")
    return " ".join(words[:at]), words[at + 1]


def replay_row(row: dict[str, Any], records: list[dict[str, Any]],
               z: float | None = None) -> dict[str, Any] | None:
    """The row's search selected again with its own prior expectations and with ``records``
    (and the tie band ``z``, default autotl's); None for a search that measured nothing (one
    row per class: the prior alone chose)."""
    import optuna

    from autotl.prior import leave_out, recommend
    from autotl.recommendation import prior_on_scale, select
    from autotl.selection import Z

    storage, name = _study_of(row)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError as exc:
        raise ConfigError(f"study {name!r} is not in {storage}: the replay needs the "
                          "searches' storages as `autotl bench` left them.") from exc
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if len(complete) < 2 or not any("val_correct" in t.user_attrs for t in complete):
        return None
    folds = "fold_se" in complete[0].user_attrs
    n_scored = (row["n_train"] + row["n_val"]) if folds else row["n_val"]
    used = prior_on_scale(study.user_attrs.get("prior_expectations"), complete)
    kept = leave_out(records, dataset=row["dataset"], fingerprint=row.get("data_fingerprint"))
    n_classes = row["n_classes"]
    size = row["n_per_class"] or row["n_train"] / n_classes
    suggestions = recommend(row["modality"], size, n_classes, backbone=row["backbone"],
                            backbone_params=row.get("backbone_params"), prior=kept,
                            strategies=sorted({t.params["strategy"] for t in complete}))
    new = prior_on_scale({s.strategy: {"relative": s.score, "sd": s.sd} for s in suggestions},
                         complete)
    tests = {int(k.removeprefix("test:")): v for k, v in study.user_attrs.items()
             if k.startswith("test:")}
    out: dict[str, Any] = {"study": name, "records_used": len(kept),
                           "of_modality": sum(r["modality"] == row["modality"] for r in kept)}
    for label, prior in (("old", used), ("new", new)):
        choice = select(complete, n_scored, prior=prior,
                        z=z if label == "new" and z is not None else Z)
        assert choice is not None
        number = choice.chosen.key
        scored = tests.get(number)
        out[label] = {"trial": number, "strategy": by_number(complete, number),
                      "tie": choice.is_tie, "test_accuracy": scored and scored["accuracy"],
                      "test_correct": scored and scored.get("correct")}
    return out


def by_number(trials: list[Any], number: int) -> str:
    return next(t.params["strategy"] for t in trials if t.number == number)


def replay(rows: list[dict[str, Any]], records: list[dict[str, Any]],
           method: str = "autotl", z: float | None = None) -> list[dict[str, Any]]:
    """One entry per replayed row: old and new choice with their regret and its interval."""
    best = {(s.task, s.n_per_class, s.protocol): s for s in standings(rows)
            if s.method == ORACLE}
    entries = []
    for row in rows:
        if row["method"] != method:
            continue
        oracle = best.get((row["task"], row["n_per_class"], row["protocol"]))
        if oracle is None:
            raise ConfigError(f"no oracle rows for task {row['task']!r} at "
                              f"{row['n_per_class']} per class (protocol {row['protocol']!r}): "
                              "regret needs them; pass the result files that hold them.")
        replayed = replay_row(row, records, z)
        if replayed is None:
            continue
        entry = {"task": row["task"], "n_per_class": row["n_per_class"],
                 "protocol": protocol_family(row["protocol"]), "draw": row_split_seed(row),
                 "oracle_best": oracle.test_mean, **replayed}
        for label in ("old", "new"):
            pick = entry[label]
            accuracy = pick.pop("test_correct"), pick["test_accuracy"]
            if accuracy[1] is None:
                pick["regret"] = pick["interval"] = None
                continue
            pick["regret"] = oracle.test_mean - accuracy[1]
            pick["interval"] = (paired_interval(oracle.best_rows, [{"test_correct": accuracy[0]}])
                                if accuracy[0] else None)
        entries.append(entry)
    entries.sort(key=lambda e: (e["task"], e["n_per_class"] or 0, e["protocol"], e["draw"],
                                e["study"]))
    return entries


def summarize(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task, size and protocol (less its split seed): mean regret before and after."""
    groups: dict[tuple[str, Any, str], list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        groups[(e["task"], e["n_per_class"], e["protocol"])].append(e)
    out = []
    for (task, size, protocol), items in groups.items():
        def mean(label: str, items: list[dict[str, Any]] = items) -> float | None:
            values = [e[label]["regret"] for e in items if e[label]["regret"] is not None]
            return statistics.fmean(values) if len(values) == len(items) else None
        out.append({"task": task, "n_per_class": size, "protocol": protocol,
                    "searches": len(items),
                    "old_mean_regret": mean("old"), "new_mean_regret": mean("new"),
                    "changed": sum(e["old"]["trial"] != e["new"]["trial"] for e in items)})
    return out


def _num(value: float | None) -> str:
    return "unscored" if value is None else f"{value:+.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("results", nargs="+", help="result files or folders (.jsonl)")
    parser.add_argument("--prior", nargs="+", required=True,
                        help="the new prior: 'default', 'none', prior files, size maps, rows")
    parser.add_argument("--method", default="autotl", help="the rows to replay")
    parser.add_argument("--z", type=float, default=None,
                        help="the new choice's tie band in standard errors of the gap "
                             "(default: autotl's, 1; 0: the best estimate always wins)")
    args = parser.parse_args(argv)
    if args.z is not None and args.z < 0:
        print(f"error: --z must be 0 or more standard errors, but got {args.z}",
              file=sys.stderr)
        return 2
    try:
        entries = replay(read_results(args.results), prior_records(args.prior), args.method,
                         args.z)
    except AutoTLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not entries:
        print(f"error: no {args.method!r} rows in {args.results}", file=sys.stderr)
        return 2
    print("Replayed on the stored validation/fold outcomes; test accuracies are the searches' "
          "own, scored after selection (no training).")
    for e in entries:
        old, new = e["old"], e["new"]
        print(f"{e['task']} {e['n_per_class']}/class draw {e['draw']}: {old['strategy']} "
              f"{_num(old['regret'])} -> {new['strategy']} {_num(new['regret'])}"
              f"{'' if old['trial'] != new['trial'] else ' (same)'}")
    summary = summarize(entries)
    for s in summary:
        print(f"{s['task']} {s['n_per_class']}/class ({s['protocol']}): mean regret "
              f"{_num(s['old_mean_regret'])} "
              f"-> {_num(s['new_mean_regret'])}, {s['changed']} of {s['searches']} choices "
              "changed")
    print(json.dumps({"prior": args.prior, "z": args.z, "groups": summary,
                      "searches": entries}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
