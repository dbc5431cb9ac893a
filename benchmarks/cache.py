"""What the activation cache saves: the same trial with and without it, in one run.

Two trials are measured, each with the cache warm and without the cache: head-only (the cache
holds the pooled features) and subset at half depth (it holds the output of the frozen first
half). "Warm" is what the cache promises a study: the activations are computed once, by the
first trial that needs them (timed separately, as ``cache_compute_seconds``), and every later
trial of the study reads them from memory. Each side is the wall time of ``Trainer.run``: model
copy, strategy, optimizer, every training step and every validation checkpoint. A third,
informational side re-reads the entries from disk with an empty memory, as a second study on
the same cache directory would.

Real data and real weights by default (Fashion-MNIST, EfficientNet-Lite0 at 64 px, 100 images
per class); a few minutes on a laptop CPU. The last line printed is one JSON object::

    python benchmarks/cache.py [--device cuda] [--steps 100] [--image-size 64] ...
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOALS = {"head_only_speedup": 20.0, "subset_speedup": 2.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist", help="dataset name or path")
    parser.add_argument("--backbone", default="offline:efficientnet-lite0")
    parser.add_argument("--n-per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128, help="tokens, for text data")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per trial")
    parser.add_argument("--eval-points", type=int, default=4,
                        help="validation checkpoints per trial (both sides evaluate them)")
    parser.add_argument("--freeze-depth", type=int, default=None,
                        help="subset depth (default: half the backbone's layer groups)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="activation cache directory (default: a fresh temporary one, so "
                        "the one-off compute is measured)")
    parser.add_argument("--no-pretrained", action="store_true",
                        help="random weights (no weights package needed)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from autotl.cache import ActivationCache
    from autotl.config import SearchConfig
    from autotl.plugins import load_plugins
    from autotl.study import configured_backbone, prepare
    from autotl.training import Trainer, TrialPlan, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    config = SearchConfig(
        data=args.data, backbone=args.backbone, n_per_class=args.n_per_class,
        image_size=args.image_size, max_length=args.max_length, batch_size=args.batch_size,
        min_steps=args.steps, max_steps=args.steps, eval_points=args.eval_points,
        strategies=["head-only", "subset"], heads=["linear"], device=args.device,
        pretrained=not args.no_pretrained, seed=args.seed,
    )
    plugins = load_plugins()
    start = time.perf_counter()
    prep = prepare(config, plugins)
    backbone = configured_backbone(prep.backbone_spec, prep.config)
    device = resolve_device(args.device)
    print(f"loaded {len(prep.train)} train / {len(prep.val)} val examples of {args.data} and "
          f"{backbone.name} ({backbone.n_groups} layer groups) in "
          f"{time.perf_counter() - start:.1f} s; device {device}, "
          f"{torch.get_num_threads()} CPU threads")

    depth = args.freeze_depth or max(1, backbone.n_groups // 2)
    plans = {
        "head_only": TrialPlan("head-only", {}, "linear", {}, 3e-3, 1e-4),
        "subset": TrialPlan("subset", {"freeze_depth": depth}, "linear", {}, 2e-3, 1e-4),
    }

    def trainer(cache: ActivationCache | None) -> Trainer:
        return Trainer(backbone, prep.train, prep.val, num_classes=len(prep.data.class_names),
                       config=prep.config, strategies=prep.strategies, heads=prep.heads,
                       split_keys=prep.split_keys, cache=cache, device=device)

    def timed(t: Trainer, plan: TrialPlan) -> tuple[Any, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        begin = time.perf_counter()
        result = t.run(plan, seed=args.seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return result, time.perf_counter() - begin

    budget = 64 * 1024**3
    with tempfile.TemporaryDirectory(prefix="autotl-bench-cache-") as scratch:
        cache_dir = args.cache_dir or Path(scratch)
        cache = ActivationCache(cache_dir, budget)
        cached_trainer = trainer(cache)
        plain_trainer = trainer(None)
        rows: dict[str, dict[str, Any]] = {}
        compute_seconds = 0.0
        for name, plan in plans.items():
            # 1. The study's first trial that needs the boundary computes it (also warms up
            # the kernels both sides use).
            before = cache.stats.compute_seconds
            cold, cold_seconds = timed(cached_trainer, plan)
            computed = cache.stats.compute_seconds - before
            compute_seconds += computed
            # 2. Every later trial reads it from memory: the per-study reuse.
            warm, warm_seconds = timed(cached_trainer, plan)
            # 3. Without the cache.
            plain, plain_seconds = timed(plain_trainer, plan)
            # 4. A second study on the same directory (memory empty, entries read from disk).
            disk, disk_seconds = timed(trainer(ActivationCache(cache_dir, budget)), plan)
            if warm.cached_depth is None:
                print(f"WARNING: {name} did not use the cache (over the budget?)")
            match = _same(warm, plain) and _same(cold, plain) and _same(disk, plain)
            if not match:
                print(f"{name} checkpoint accuracies: cached {warm.history}, uncached "
                      f"{plain.history}, first {cold.history}, from disk {disk.history}")
            rows[name] = {
                "cached": warm_seconds, "uncached": plain_seconds, "cold": cold_seconds,
                "disk": disk_seconds, "compute": computed, "cached_depth": warm.cached_depth,
                "accuracy": {"cached": warm.val_accuracy, "uncached": plain.val_accuracy,
                             "match": match,
                             "history": {"cached": warm.history, "uncached": plain.history}},
            }
            print(f"{name:9} cached {warm_seconds:7.2f} s | uncached {plain_seconds:7.2f} s | "
                  f"speedup {plain_seconds / warm_seconds:6.1f}x | first (computes) "
                  f"{cold_seconds:6.2f} s of which {computed:.2f} s compute | from disk "
                  f"{disk_seconds:6.2f} s | val acc cached {warm.val_accuracy:.4f} uncached "
                  f"{plain.val_accuracy:.4f} -> {'match' if match else 'DIFFER'}")
        entries = cache.disk_bytes()

    summary = {
        "head_only_speedup": _ratio(rows["head_only"]),
        "subset_speedup": _ratio(rows["subset"]),
        "head_only_seconds": _seconds(rows["head_only"]),
        "subset_seconds": _seconds(rows["subset"]),
        "cache_compute_seconds": round(compute_seconds, 3),
        "cache_compute_seconds_by_trial": {k: round(r["compute"], 3) for k, r in rows.items()},
        "cache_disk_bytes": entries,
        "accuracy": {k: r["accuracy"] for k, r in rows.items()},
        "accuracies_match": all(r["accuracy"]["match"] for r in rows.values()),
        "goals": GOALS,
        "goals_met": {k: _ratio(rows[k.removesuffix("_speedup")]) >= v
                      for k, v in GOALS.items()},
        "device": _device_name(device, torch),
        "settings": {
            "data": args.data, "backbone": backbone.name, "weights_id": backbone.weights_id,
            "n_per_class": args.n_per_class, "n_train": len(prep.train),
            "n_val": len(prep.val), "image_size": args.image_size,
            "batch_size": args.batch_size, "steps": args.steps,
            "eval_points": args.eval_points, "n_groups": backbone.n_groups,
            "subset_freeze_depth": depth, "cached_depth": {k: r["cached_depth"]
                                                           for k, r in rows.items()},
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "seed": args.seed,
        },
    }
    print(f"accuracies {'match' if summary['accuracies_match'] else 'DIFFER'}; head-only "
          f"{summary['head_only_speedup']}x (goal {GOALS['head_only_speedup']:g}x), subset "
          f"{summary['subset_speedup']}x (goal {GOALS['subset_speedup']:g}x), one-off compute "
          f"{compute_seconds:.1f} s")
    print(json.dumps(summary))
    return summary


def _same(a: Any, b: Any) -> bool:
    """Same accuracy at every checkpoint. On CPU the cache is exact; on CUDA the uncached
    frozen prefix runs under bf16 autocast while cached activations are fp32, so a few
    validation examples may flip."""
    return len(a.history) == len(b.history) and all(
        sa == sb and abs(xa - xb) < 1e-9 for (sa, xa), (sb, xb) in zip(a.history, b.history))


def _ratio(row: dict[str, Any]) -> float:
    return round(row["uncached"] / row["cached"], 2)


def _seconds(row: dict[str, Any]) -> dict[str, float]:
    return {k: round(row[k], 3) for k in ("cached", "uncached", "cold", "disk")}


def _device_name(device: Any, torch: Any) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()})"


if __name__ == "__main__":
    main(sys.argv[1:])
