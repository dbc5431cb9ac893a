"""What autotl's trial loop costs over a bare PyTorch loop: the same model, batch and steps.

Both sides fine-tune the whole backbone plus a new linear head (strategy ``full``) from the same
pretrained weights, with AdamW and a one-cycle schedule, on the same preprocessed input tensors
held in memory, for the same number of steps at the same batch size, and evaluate once on the
same validation tensors at the end. What each side's timed region holds:

* autotl: one ``Trainer.run`` with a warm activation cache (depth 0: the cache holds the
  preprocessed inputs, so no image is decoded while timing). That is everything a trial does:
  copying the pretrained backbone, building the head, applying the strategy, timm's AdamW
  (parameter groups without decay for norms and biases), its batch iterator (index the cached
  tensors, move them, channels-last for CNNs), a device-side finiteness flag read at the
  checkpoint, the evaluation (a merged copy for adapters; none here) and the copy of the best state.
* bare: the loop one would write by hand: ``copy.deepcopy`` of the backbone, a new
  ``nn.Linear``, ``torch.optim.AdamW`` over all parameters, ``randperm`` batches indexed from the
  same tensors, forward, cross-entropy, backward, step, and one evaluation pass. It uses the
  numerics autotl picks (channels-last for a CNN, bf16 autocast on CUDA, the multi-tensor
  ``foreach`` AdamW) so that the ratio measures the loop and not a memory-format, precision or
  optimizer-kernel choice; ``--bare-layout contiguous``
  makes it a plain NCHW loop instead.

Both sides run a few untimed warm-up steps first, then alternate ``--repeats`` times; the best
time of each side counts (other processes only ever make a run slower). The last line printed
is one JSON object with ``ratio = autotl_throughput / bare_throughput`` (goal >= 0.95)::

    python benchmarks/overhead.py [--device cuda] [--steps 60]
    python benchmarks/overhead.py --backbone timm:test_efficientnet --no-pretrained  # no weights
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import platform
import sys
import time
from typing import Any

GOAL = 0.95


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--backbone", default="offline:efficientnet-lite0",
                        help="an image backbone; timm:test_efficientnet with --no-pretrained "
                        "needs no weights")
    parser.add_argument("--no-pretrained", action="store_true")
    parser.add_argument("--n-per-class", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--val-fraction", type=float, default=0.005,
                        help="held-out share per class (small: the one evaluation both sides "
                        "run is identical, so it only dilutes the ratio)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps per side")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs per side, alternating; the best counts")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--bare-layout", default="same", choices=("same", "contiguous"),
                        help="bare loop memory format: the same as autotl's, or plain NCHW")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from autotl.cache import ActivationCache
    from autotl.config import SearchConfig
    from autotl.data.splits import label_array
    from autotl.errors import ConfigError
    from autotl.inputs import batches_of_inputs, tree_cat
    from autotl.plugins import load_plugins
    from autotl.study import configured_backbone, prepare
    from autotl.training import Trainer, TrialPlan, resolve_device, warmup_fraction

    if args.threads:
        torch.set_num_threads(args.threads)
    config = SearchConfig(
        data=args.data, backbone=args.backbone, n_per_class=args.n_per_class,
        val_fraction=args.val_fraction, image_size=args.image_size,
        batch_size=args.batch_size, min_steps=args.steps,
        max_steps=args.steps, eval_points=1, strategies=["full"], heads=["linear"],
        device=args.device, pretrained=not args.no_pretrained, seed=args.seed,
    )
    prep = prepare(config, load_plugins())
    backbone = configured_backbone(prep.backbone_spec, prep.config)
    if backbone.modality != "image":
        raise ConfigError(f"the overhead benchmark takes an image backbone, but got "
                          f"{backbone.name!r} ({backbone.modality}).")
    device = resolve_device(args.device)
    num_classes = len(prep.data.class_names)

    # The same preprocessed tensors for both sides, computed as the cache computes them.
    def tensors(split: Any) -> torch.Tensor:
        return tree_cat(list(batches_of_inputs(split, backbone, batch_size=256, uniform=True)))

    train_x, val_x = tensors(prep.train), tensors(prep.val)
    train_y = torch.from_numpy(label_array(prep.train)).long()
    val_y = torch.from_numpy(label_array(prep.val)).long()
    print(f"{len(prep.train)} train / {len(prep.val)} val images of {args.data} at "
          f"{args.image_size} px, {backbone.name}, device {device}, "
          f"{torch.get_num_threads()} CPU threads")

    # -- autotl ---------------------------------------------------------------------------------
    cache = ActivationCache(None, 64 * 1024**3)  # in memory: what a study's later trials see
    trainer = Trainer(backbone, prep.train, prep.val, num_classes=num_classes,
                      config=prep.config, strategies=prep.strategies, heads=prep.heads,
                      split_keys=prep.split_keys, cache=cache, device=device)
    plan = TrialPlan("full", {}, "linear", {}, args.lr, args.weight_decay)
    steps = trainer.steps
    trainer.steps = args.warmup_steps  # warm-up: fills the cache, builds kernels, once
    trainer.run(plan, seed=args.seed)
    trainer.steps = steps
    assert steps == args.steps and cache.stats.misses == 2  # train and val inputs

    def run_autotl() -> float:
        result = trainer.run(plan, seed=args.seed)
        assert result.cached_depth == 0, "autotl did not train from the cached inputs"
        assert result.val_accuracy is not None
        return result.val_accuracy

    # -- bare PyTorch ---------------------------------------------------------------------------
    channels_last = backbone.is_cnn and args.bare_layout == "same"
    layout = torch.channels_last if channels_last else torch.contiguous_format
    use_autocast = device.type == "cuda"  # as Trainer._autocast

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return (torch.autocast("cuda", dtype=torch.bfloat16) if use_autocast
                else contextlib.nullcontext())
    pretrained = backbone.module  # already on the device and in eval mode (the Trainer put it)

    def run_bare(n_steps: int) -> float:
        torch.manual_seed(args.seed)
        model = torch.nn.Sequential(copy.deepcopy(pretrained),
                                    torch.nn.Linear(backbone.feature_dim, num_classes))
        model.to(device=device, memory_format=layout)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr,
                                      weight_decay=args.weight_decay, foreach=True)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=args.lr, total_steps=n_steps, pct_start=warmup_fraction(n_steps))
        generator = torch.Generator().manual_seed(args.seed)
        n, size = len(train_y), min(args.batch_size, len(train_y))
        model.train()
        step = 0
        while step < n_steps:
            order = torch.randperm(n, generator=generator)
            for lo in range(0, n - size + 1, size):
                if step == n_steps:
                    break
                idx = order[lo:lo + size]
                x = train_x[idx].to(device).contiguous(memory_format=layout)
                y = train_y[idx].to(device)
                with autocast():
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
        model.eval()
        correct = 0
        eval_size = max(args.batch_size, 64)
        with torch.inference_mode():
            for lo in range(0, len(val_y), eval_size):
                x = val_x[lo:lo + eval_size].to(device).contiguous(memory_format=layout)
                with autocast():
                    logits = model(x)
                correct += int((logits.argmax(-1) == val_y[lo:lo + eval_size].to(device)).sum())
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"bare loop: loss became {loss.item()}")
        return correct / len(val_y)

    run_bare(args.warmup_steps)

    def timed(fn: Any) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        begin = time.perf_counter()
        accuracy = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - begin, accuracy

    times: dict[str, list[float]] = {"autotl": [], "bare": []}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        for side, fn in (("autotl", run_autotl), ("bare", lambda: run_bare(args.steps))):
            seconds, accuracy[side] = timed(fn)
            times[side].append(seconds)
            print(f"run {repeat + 1}/{args.repeats} {side:6}: {seconds:7.2f} s, "
                  f"{args.steps * args.batch_size / seconds:7.1f} examples/s, "
                  f"val acc {accuracy[side]:.4f}")

    examples = args.steps * args.batch_size
    best = {side: min(t) for side, t in times.items()}
    throughput = {side: examples / best[side] for side in best}
    ratio = throughput["autotl"] / throughput["bare"]
    summary = {
        "ratio": round(ratio, 4),
        "autotl_throughput": round(throughput["autotl"], 2),
        "bare_throughput": round(throughput["bare"], 2),
        "autotl_seconds": [round(t, 3) for t in times["autotl"]],
        "bare_seconds": [round(t, 3) for t in times["bare"]],
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "device": _device_name(device, torch),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "val_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "settings": {
            "data": args.data, "backbone": backbone.name, "image_size": args.image_size,
            "n_train": len(prep.train), "n_val": len(prep.val),
            "val_fraction": args.val_fraction, "strategy": "full",
            "optimizer": "AdamW + OneCycleLR", "lr": args.lr,
            "weight_decay": args.weight_decay, "repeats": args.repeats,
            "warmup_steps": args.warmup_steps, "bare_layout": args.bare_layout,
            "channels_last": backbone.is_cnn, "autocast": "bf16" if use_autocast else None,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
        },
    }
    print(f"ratio = autotl {throughput['autotl']:.1f} / bare {throughput['bare']:.1f} "
          f"examples/s = {ratio:.3f} (goal >= {GOAL})")
    print(json.dumps(summary))
    return summary


def _device_name(device: Any, torch: Any) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()})"


if __name__ == "__main__":
    main(sys.argv[1:])
