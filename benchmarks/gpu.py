"""autotl on one GPU, in one prepared run: the trial loop against a bare PyTorch loop, 1 against
N concurrent trials on the device, and head-only with and without the activation cache.

Three measurements, each an existing benchmark or the same trial code, so the figures mean what
they mean elsewhere:

* ``loop``: ``benchmarks/overhead.py`` — autotl's ``Trainer.run`` (strategy ``full``) against
  the loop one would write by hand, same model, batch, steps and numerics; ``ratio`` is autotl's
  throughput over the bare loop's (goal >= 0.95).
* ``concurrent``: trials per minute with 1 process and with ``--concurrent`` processes training
  trials on the same device at once (what ``autotl search --workers N`` does on one GPU): each
  process builds its trainer, runs one untimed warm-up trial, waits at a barrier, then runs
  ``--trials`` timed trials; throughput is all trials over the span from the barrier to the
  last finish. Small models leave a GPU idle between kernels; concurrency fills it.
* ``cache``: ``benchmarks/cache.py`` — head-only and subset trials with the cache warm against
  without it (goal: head-only >= 20×).

The last line printed is one JSON object. On a GPU host::

    python benchmarks/gpu.py --device cuda

A CPU smoke check (tiny random model, a few steps; the figures say nothing about a GPU)::

    python benchmarks/gpu.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    parser.add_argument("--tiny", action="store_true",
                        help="smoke check: timm:test_efficientnet, random init, digits, a few "
                        "steps")
    parser.add_argument("--data", default=None, help="default: fashion-mnist (digits if --tiny)")
    parser.add_argument("--backbone", default=None,
                        help="default: offline:efficientnet-lite0 (timm:test_efficientnet if "
                        "--tiny)")
    parser.add_argument("--image-size", type=int, default=None, help="default: 64 (32 tiny)")
    parser.add_argument("--n-per-class", type=int, default=None, help="default: 100 (10 tiny)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps per trial; default: 100 (8 tiny)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrent", type=int, default=4,
                        help="processes training at once in the concurrency measurement")
    parser.add_argument("--trials", type=int, default=None,
                        help="timed trials per process; default: 6 (2 tiny)")
    parser.add_argument("--skip", default="", help="comma list of loop,concurrent,cache")
    args = parser.parse_args(argv)
    tiny = args.tiny
    args.data = args.data or ("digits" if tiny else "fashion-mnist")
    args.backbone = args.backbone or ("timm:test_efficientnet" if tiny
                                      else "offline:efficientnet-lite0")
    args.image_size = args.image_size or (32 if tiny else 64)
    args.n_per_class = args.n_per_class or (10 if tiny else 100)
    args.steps = args.steps or (8 if tiny else 100)
    args.trials = args.trials or (2 if tiny else 6)
    return args


def _common(args: argparse.Namespace) -> list[str]:
    out = ["--data", args.data, "--backbone", args.backbone, "--image-size",
           str(args.image_size), "--n-per-class", str(args.n_per_class), "--device",
           args.device, "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    return out + (["--no-pretrained"] if args.tiny else [])


# -- concurrent trials ---------------------------------------------------------------------------


def _trial_process(args: argparse.Namespace, barrier: Any, results: Any) -> None:
    """One process: build the trainer, warm up, wait for the others, run the timed trials."""
    import torch

    from autotl.config import SearchConfig
    from autotl.plugins import load_plugins
    from autotl.study import build_trainer, prepare
    from autotl.training import TrialPlan, resolve_device

    if args.device == "cpu":
        torch.set_num_threads(1)  # processes, not threads, share the CPU here
    config = SearchConfig(data=args.data, backbone=args.backbone, image_size=args.image_size,
                          n_per_class=args.n_per_class, batch_size=args.batch_size,
                          min_steps=args.steps, max_steps=args.steps, eval_points=1,
                          strategies=["full"], heads=["linear"], device=args.device,
                          pretrained=not args.tiny, cache=True, cache_dir=None, prior="none")
    prep = prepare(config, load_plugins())
    device = resolve_device(args.device)
    _, trainer, cache = build_trainer(prep, device)
    if cache is not None:
        cache.directory = None  # memory only: processes must not measure each other's disk
    plan = TrialPlan("full", {}, "linear", {}, 1e-3, 1e-4)
    trainer.run(plan, seed=0)  # warm-up: caches the inputs, builds kernels
    barrier.wait()
    start = time.time()
    for i in range(args.trials):
        trainer.run(plan, seed=i + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    results.put((start, time.time(), args.trials))


def _throughput(args: argparse.Namespace, processes: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_trial_process, args=(args, barrier, results))
               for _ in range(processes)]
    for w in workers:
        w.start()
    rows = [results.get(timeout=3600) for _ in workers]
    for w in workers:
        w.join()
    if any(w.exitcode for w in workers):
        raise RuntimeError(f"a trial process failed: exit codes {[w.exitcode for w in workers]}")
    span = max(end for _, end, _ in rows) - min(start for start, _, _ in rows)
    trials = sum(n for _, _, n in rows)
    return {"processes": processes, "trials": trials, "seconds": round(span, 3),
            "trials_per_minute": round(60 * trials / span, 2)}


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu.py: --device cuda, but torch sees no CUDA device; use "
                         "--device cpu --tiny for a smoke check.")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    summary: dict[str, Any] = {
        "device": (torch.cuda.get_device_name(0) if args.device != "cpu"
                   and torch.cuda.is_available() else "cpu"),
        "tiny": args.tiny, "torch": torch.__version__,
        "settings": {k: getattr(args, k) for k in ("data", "backbone", "image_size",
                                                   "n_per_class", "steps", "batch_size",
                                                   "concurrent", "trials")},
    }
    if "loop" not in skip:
        import overhead

        loop = overhead.main(_common(args) + ["--val-fraction", "0.05", "--repeats", "2"])
        summary["loop"] = {k: loop[k] for k in ("ratio", "autotl_throughput",
                                                "bare_throughput", "goal", "goal_met")}
    if "concurrent" not in skip:
        one = _throughput(args, 1)
        many = _throughput(args, args.concurrent)
        summary["concurrent"] = {"one": one, "many": many,
                                 "ratio": round(many["trials_per_minute"]
                                                / one["trials_per_minute"], 3)}
        print(f"concurrent: 1 process {one['trials_per_minute']} trials/min, "
              f"{args.concurrent} processes {many['trials_per_minute']} trials/min")
    if "cache" not in skip:
        import cache

        measured = cache.main(_common(args) + ["--eval-points", "2"])
        summary["cache"] = {k: measured.get(k) for k in ("head_only_speedup", "subset_speedup",
                                                        "accuracies_match",
                                                        "cache_compute_seconds")}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
