"""Trials per minute with 1 and with 2 workers on one study, on the embedded journal storage
and on PostgreSQL.

Each run is an ordinary ``autotl search … --workers N`` in a fresh output folder and storage: a
tiny random model (timm's ``test_efficientnet`` on the built-in digits at 32 px), trials of a
few seconds (``--steps`` optimizer steps, no pruning, so every trial does the same work), each
worker one CPU thread (``OMP_NUM_THREADS=1``). Throughput is read from the study itself:
finished trials over the span from the first trial's start to the last one's end, so process
start-up and the reports are left out; the command's wall time is printed beside it.
``ratio = trials/min with 2 workers / with 1`` (goal >= 1.8: the storage and the coordination
cost little next to a trial). It needs at least 2 free CPU cores to mean anything: on a busy
machine each trial slows down, and ``concurrency`` (trial seconds over the span: how many
trials ran at once on average) separates that from time lost to the storage.

PostgreSQL: ``--postgres URL`` (an empty database), else a throwaway server is started with
Debian's ``postgresql`` package (as the tests do). The last line printed is one JSON object::

    python benchmarks/workers.py [--trials 8] [--steps 60] [--storages journal,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = 1.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="trials per run")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per trial")
    parser.add_argument("--storages", default="journal,postgres")
    parser.add_argument("--postgres", default=None,
                        help="URL of an empty PostgreSQL database (default: start one)")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--backbone", default="timm:test_efficientnet")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-per-class", type=int, default=20)
    return parser.parse_args(argv)


def _run(args: argparse.Namespace, storage: str, workers: int, out: Path) -> dict[str, Any]:
    import optuna

    from autotl.storage import open_storage
    from autotl.worker import finished_count

    study = f"bench-{workers}"
    command = [sys.executable, "-m", "autotl", "search", args.data, "--backbone",
               args.backbone, "--no-pretrained", "--image-size", str(args.image_size),
               "--n-per-class", str(args.n_per_class), "--strategies", "lora,full",
               "--min-steps", str(args.steps), "--max-steps", str(args.steps),
               "--eval-points", "2", "--no-prune", "--prior", "none", "--trials",
               str(args.trials), "--workers", str(workers), "--storage", storage, "--study",
               study, "--out", str(out), "--cache-dir", str(out / "cache"), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    trials = optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials()
    finished = [t for t in trials if t.datetime_complete and t.datetime_start]
    span = (max(t.datetime_complete for t in finished)
            - min(t.datetime_start for t in finished)).total_seconds()
    per_trial = sum((t.datetime_complete - t.datetime_start).total_seconds()
                    for t in finished) / len(finished)
    # Trials running at once, on average: near N, the storage and coordination cost little,
    # whatever the CPU share each trial gets (a slower trial on a busy machine is not idle).
    concurrency = per_trial * len(finished) / span
    row = {"workers": workers, "finished": finished_count(trials),
           "trials_per_minute": round(60 * len(finished) / span, 2),
           "span_seconds": round(span, 2), "wall_seconds": round(wall, 2),
           "mean_trial_seconds": round(per_trial, 2), "concurrency": round(concurrency, 2)}
    print(f"  {workers} worker(s): {row['finished']} trials in {span:.1f} s "
          f"({row['trials_per_minute']} /min, {per_trial:.1f} s each, {concurrency:.2f} at "
          f"once; command {wall:.1f} s)")
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    storages = [s.strip() for s in args.storages.split(",") if s.strip()]
    summary: dict[str, Any] = {"goal": GOAL, "cpus": os.cpu_count(),
                               "machine": platform.machine(), "settings": vars(args).copy()}
    summary["settings"].pop("postgres", None)
    cluster = None
    with tempfile.TemporaryDirectory(prefix="autotl-bench-workers-") as tmp:
        try:
            for kind in storages:
                print(f"{kind}:")
                rows = {}
                for workers in (1, 2):
                    out = Path(tmp) / f"{kind}-{workers}"
                    if kind == "journal":
                        from autotl.storage import journal_url

                        storage = journal_url(out / "study.journal")
                    elif kind == "postgres":
                        if args.postgres:
                            storage = args.postgres
                        else:
                            if cluster is None:
                                from autotl.testing.postgres import Cluster

                                cluster = Cluster().start()
                            storage = cluster.url(cluster.create_database())
                    else:
                        raise SystemExit(f"unknown storage kind {kind!r}: journal or postgres")
                    rows[str(workers)] = _run(args, storage, workers, out)
                ratio = rows["2"]["trials_per_minute"] / rows["1"]["trials_per_minute"]
                summary[kind] = {**rows, "ratio": round(ratio, 3), "goal_met": ratio >= GOAL}
                print(f"  ratio 2 vs 1 workers: {ratio:.2f} (goal >= {GOAL})")
        finally:
            if cluster is not None:
                cluster.stop()
    summary["ratios"] = {k: summary[k]["ratio"] for k in storages}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
