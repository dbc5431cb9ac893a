"""Where each strategy's accuracy stops improving with more training steps, at each size.

The step budget decides winners: a whole-model fine-tune that is still climbing when its
budget ends loses to a head that converged long before. This script trains each strategy's
known-good config at every size for a ladder of budgets (in optimizer steps; only those that are
kept between ``--min-epochs`` and ``--max-epochs``), one run per budget, each scored on the validation
set at the end of its own budget (one-cycle schedule, as in a search), and reports for each
(size, strategy) the smallest budget whose accuracy is within one standard error of the best
budget's: where the curve flattens. The budget rule in ``SearchConfig`` is chosen from this.

    python benchmarks/budget.py [--sizes 5,20,100,500] [--steps 30,60,120,...] ...

The last line printed is one JSON object with every run.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--backbone", default="offline:efficientnet-lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--sizes", default="5,20,100,500", help="examples per class")
    parser.add_argument("--steps", default="30,60,120,240,480,960,1920",
                        help="budgets in optimizer steps")
    parser.add_argument("--min-epochs", type=float, default=0.95,
                        help="skip budgets of fewer passes over the training split")
    parser.add_argument("--max-epochs", type=float, default=80,
                        help="skip budgets of more passes over the training split")
    parser.add_argument("--strategies", default="full,subset,head-only,lora")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 avoids OpenMP spinning on a busy machine)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from autotl.config import SearchConfig
    from autotl.plugins import load_plugins
    from autotl.selection import binomial_se
    from autotl.study import build_trainer, plan_from_params, prepare
    from autotl.training import resolve_device

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    plugins = load_plugins()
    strategies = args.strategies.split(",")
    runs: list[dict[str, Any]] = []
    flatten: dict[str, dict[str, Any]] = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        config = SearchConfig(data=args.data, backbone=args.backbone, n_per_class=size,
                              image_size=args.image_size, batch_size=args.batch_size,
                              strategies=strategies, heads=["linear"], seed=args.seed,
                              device=args.device, min_steps=1, max_steps=10**6, eval_points=1,
                              prior="none")
        prep = prepare(config, plugins)
        backbone, trainer, _ = build_trainer(prep, resolve_device(args.device))
        n_val = len(prep.val)
        for strategy in strategies:
            spec = prep.strategies[strategy]
            known = spec.known_good(backbone)[0]
            params = {"strategy": strategy, "head": "linear", "weight_decay": 1e-4,
                      **{f"{strategy}.{k}": v for k, v in known.items()}}
            plan = plan_from_params(params, prep.strategies, prep.heads)
            for steps in [int(x) for x in args.steps.split(",")]:
                epochs = steps * args.batch_size / len(prep.train)
                if not args.min_epochs <= epochs <= args.max_epochs:
                    continue
                trainer.steps = steps
                start = time.perf_counter()
                result = trainer.run(plan, seed=args.seed)
                row = {"n_per_class": size, "strategy": strategy, "steps": steps,
                       "epochs_actual": epochs, "val_accuracy": result.val_accuracy,
                       "train_seconds": result.train_seconds,
                       "wall_seconds": time.perf_counter() - start}
                runs.append(row)
                print(f"{size:>4}/class {strategy:<9} {steps:>5} steps "
                      f"({row['epochs_actual']:6.1f} epochs): val {result.val_accuracy:.3f} "
                      f"in {result.train_seconds:6.1f} s", flush=True)
            own = [r for r in runs if r["n_per_class"] == size and r["strategy"] == strategy]
            best = max(own, key=lambda r: r["val_accuracy"])
            se = binomial_se(best["val_accuracy"], n_val)
            enough = min((r for r in own if r["val_accuracy"] >= best["val_accuracy"] - se),
                         key=lambda r: r["steps"])
            flatten[f"{size}/{strategy}"] = {
                "steps": enough["steps"], "epochs": round(enough["epochs_actual"], 2),
                "best_steps": best["steps"], "still_rising": best["steps"] == max(
                    r["steps"] for r in own) and enough["steps"] == best["steps"]}
    summary = {"data": args.data, "backbone": args.backbone, "image_size": args.image_size,
               "threads": args.threads,
               "batch_size": args.batch_size, "device": args.device,
               "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
               "cpus": __import__("os").cpu_count(), "flatten": flatten, "runs": runs,
               "measured": "validation accuracy at the end of each budget, 1 seed"}
    for key, value in flatten.items():
        print(f"{key:>16}: flat from {value['steps']} steps ({value['epochs']} epochs)"
              + ("  STILL RISING at the largest budget" if value["still_rising"] else ""))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
