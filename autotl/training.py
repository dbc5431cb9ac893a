"""One trial: build → apply strategy → train for a step budget → evaluate at checkpoints.

:class:`Trainer` holds what every trial of a study shares: the pretrained backbone (loaded once
per process and copied per trial, never re-read from disk), the splits, the device and the
activation cache.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autotl.backbones import Backbone
from autotl.cache import ActivationCache, activation_key
from autotl.config import SearchConfig
from autotl.data.splits import label_array
from autotl.inputs import (
    Tree,
    batches_of_inputs,
    input_bytes_estimate,
    steps_budget,
    tree_bytes,
    tree_cat,
    tree_leaves,
    tree_len,
    tree_map,
    trim_padding,
)
from autotl.models import TransferModel
from autotl.registry import HeadSpec, StrategySpec

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when what is stored under a key changes meaning
# Fault-injection point for tests (real processes inherit it): "oom@K" raises CUDA's
# out-of-memory error at step K of a trial's first attempt, "oom-always@K" at every attempt,
# "nan@K" makes step K's loss NaN.
FAULT_ENV = "AUTOTL_INJECT_FAULT"


@dataclass
class TrialPlan:
    """What one trial trains: a strategy and its parameters, a head, and the optimizer."""

    strategy: str
    strategy_params: dict[str, Any]
    head: str
    head_params: dict[str, Any]
    lr: float
    weight_decay: float

    def flat(self) -> dict[str, Any]:
        """One flat dict for tables: ``strategy``, ``lr``, then the strategy's and head's own."""
        out: dict[str, Any] = {"strategy": self.strategy, "lr": self.lr, "head": self.head,
                               "weight_decay": self.weight_decay}
        out.update(self.strategy_params)
        out.update({f"{self.head}.{k}": v for k, v in self.head_params.items()})
        return out


@dataclass
class TrialResult:
    """What a trial measured. ``state`` is ``complete``, ``pruned`` or ``failed``."""

    plan: TrialPlan
    state: str = "complete"
    number: int | None = None
    val_accuracy: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    frozen_depth: int = 0
    cached_depth: int | None = None
    accumulation_steps: int = 1
    error: str | None = None
    eval_seconds: float = 0.0  # validation passes, kept apart from train_seconds
    val_correct: str | None = None  # per validation row at the end: '1' right, '0' wrong
    trained: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # final tensors
    activation_seconds: float = 0.0  # computing cached activations, included in train_seconds
    # Floating-point operations the training took (torch's FlopCounterMode), the cached
    # activations' share included: unlike seconds, the same on any machine under any load, so
    # the selection rule's cost. None where nothing was counted.
    train_flops: float | None = None
    activation_flops: float = 0.0  # the frozen part's forward pass over the training rows
    fold_accuracies: list[float] | None = None  # each fold's accuracy, when scored over folds


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA, else Apple MPS, else CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from autotl.errors import ConfigError

        raise ConfigError("device='cuda' was asked for but torch sees no CUDA device; use "
                          "--device auto or cpu.")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """The kind of device a trial ran on, as trials record it: ``cpu``, or ``cuda`` with the
    GPU's model (training seconds compare only within one kind)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


class OutOfMemory(RuntimeError):
    """A trial did not fit in device memory, even at half the batch."""


class Trainer:
    """Runs trials of one study against shared, already prepared data."""

    def __init__(
        self,
        backbone: Backbone,
        train: Any,
        val: Any,
        *,
        test: Any = None,
        num_classes: int,
        config: SearchConfig,
        strategies: dict[str, StrategySpec],
        heads: dict[str, HeadSpec],
        split_keys: dict[str, str],
        cache: ActivationCache | None,
        device: torch.device,
        pool: Any = None,
    ) -> None:
        self.base = backbone
        self.base.module.to(device).eval()
        if backbone.is_cnn:  # the layout trials run in, so cached activations match theirs
            self.base.module.to(memory_format=torch.channels_last)
        self.train_split = train
        self.val_split = val
        self.splits = {"train": train, "val": val, **({"test": test} if test is not None else {}),
                       **({"all": pool} if pool is not None else {})}
        self.num_classes = num_classes
        self.config = config
        self.strategies = strategies
        self.heads = heads
        self.split_keys = split_keys
        self.cache = cache
        self.device = device
        self.labels = {name: torch.from_numpy(label_array(split)).long()
                       for name, split in self.splits.items()}
        self.steps = steps_budget(len(train), config.batch_size, config.epochs,
                                  config.min_steps, config.max_steps)
        self._stages_ok: bool | None = None
        self._weights_digest: str | None = None
        self._prefix_flops: dict[int, float | None] = {}  # depth → per row; views share it
        # In a view (folds, refit): positions of "train"/"val" within the "all" split.
        self.rows: dict[str, torch.Tensor] = {}

    # -- one trial -----------------------------------------------------------------------------

    def run(self, plan: TrialPlan, *, seed: int,
            should_stop: Callable[[float, int], bool] | None = None,
            between: bool = True) -> TrialResult:
        """Train ``plan``; ``should_stop(accuracy, checkpoint)`` is asked at each checkpoint
        (the pruner), and a ``True`` ends the trial as ``pruned``; so does a loss that is not
        finite (``error`` says where). ``between=False`` validates at the last checkpoint only
        (nothing listens before it, e.g. with pruning off): the same training, less
        evaluation; the loss is still checked at every checkpoint.

        Out of device memory, the trial is run again from the start at half the batch with
        two accumulation steps: the same examples per optimizer step, though BatchNorm sees
        half batches (``accumulation_steps`` records it). A second failure raises
        :class:`OutOfMemory` with what to do.
        """
        try:
            return self._run(plan, seed=seed, should_stop=should_stop, accumulation=1,
                             between=between)
        except torch.OutOfMemoryError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "out of memory"
        # Out of the except block, the failed attempt's frames (and tensors) are released.
        _release_device_memory()
        size = min(self.config.batch_size, len(self.labels["train"]))
        if size < 2:
            raise OutOfMemory(f"trial ran out of device memory at batch size {size} "
                              f"({first}); use a smaller --image-size or backbone.")
        log.warning("trial (%s) ran out of device memory at batch %d; retrying once with 2 "
                    "accumulation steps of %d", plan.strategy, size, math.ceil(size / 2))
        try:
            return self._run(plan, seed=seed, should_stop=should_stop, accumulation=2,
                             between=between)
        except torch.OutOfMemoryError:
            pass
        _release_device_memory()
        raise OutOfMemory(
            f"trial ran out of device memory at batch size {size} and again at "
            f"{math.ceil(size / 2)} × 2 accumulation steps ({first}); lower --batch-size or "
            "--image-size, pick a smaller backbone, or give this worker a GPU with more memory."
        )

    def _run(self, plan: TrialPlan, *, seed: int,
             should_stop: Callable[[float, int], bool] | None,
             accumulation: int, between: bool = True) -> TrialResult:
        result = None
        for result in self.checkpoints(plan, seed=seed, should_stop=should_stop,
                                       accumulation=accumulation, between=between):
            pass
        assert result is not None
        return result

    def checkpoints(self, plan: TrialPlan, *, seed: int,
                    should_stop: Callable[[float, int], bool] | None = None,
                    accumulation: int = 1, between: bool = True) -> Iterator[TrialResult]:
        """:meth:`run`, one checkpoint at a time: yields the trial's result after each
        validation checkpoint (folds train in lockstep this way); its timings are final once
        the iterator is exhausted. Time spent outside (while suspended) is not counted."""
        wall_start = time.perf_counter()
        torch.manual_seed(seed)
        model, depth = self.build_model(plan)
        counts = model.count_parameters()
        result = TrialResult(plan=plan, frozen_depth=depth, steps=self.steps,
                             trainable_params=counts["trainable"], total_params=counts["total"],
                             accumulation_steps=accumulation)
        if counts["trainable"] == 0:
            raise ValueError(f"strategy {plan.strategy!r} left nothing to train")

        cached = self._activations(depth) if self._cacheable() else None
        activation_seconds = 0.0
        if cached is not None:
            (train_acts, val_acts, result.cached_depth, activation_seconds) = cached
        result.activation_seconds = activation_seconds
        if result.cached_depth:
            # The training rows' share: validation's is evaluation, which an uncached trial's
            # count leaves out too.
            per_row = self._prefix_flops_per_row(result.cached_depth)
            result.activation_flops = (per_row * len(self.labels["train"])
                                       if per_row is not None else 0.0)
        model.to(self.device)
        if self.base.is_cnn:
            model.to(memory_format=torch.channels_last)
        forward = self._forward_fn(model, result.cached_depth)

        loop_seconds, suspended = 0.0, 0.0
        start = time.perf_counter()
        for _ in self._train(model, plan, result, forward, seed,
                             train_acts if cached else None, val_acts if cached else None,
                             should_stop, between):
            loop_seconds += time.perf_counter() - start
            result.train_seconds = loop_seconds - result.eval_seconds + activation_seconds
            pause = time.perf_counter()
            yield result
            start = time.perf_counter()
            suspended += start - pause
        loop_seconds += time.perf_counter() - start
        result.train_seconds = loop_seconds - result.eval_seconds + activation_seconds
        result.wall_seconds = time.perf_counter() - wall_start - suspended
        if result.state == "pruned":  # pruned at a checkpoint it did not yield
            yield result

    def _train(self, model: TransferModel, plan: TrialPlan, result: TrialResult,
               forward: Callable[[Tree], torch.Tensor], seed: int, train_acts: Tree | None,
               val_acts: Tree | None,
               should_stop: Callable[[float, int], bool] | None,
               between: bool = True) -> Iterator[int]:
        """The training loop; yields the checkpoint's index after each validation pass."""
        from timm.optim import create_optimizer_v2

        # foreach: one multi-tensor update instead of a loop over ~150 tensors; torch only
        # defaults to it on CUDA, and on CPU it cuts the step's optimizer time by about a third.
        optimizer = create_optimizer_v2(model, opt="adamw", lr=plan.lr,
                                        weight_decay=plan.weight_decay, foreach=True)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=plan.lr, total_steps=self.steps,
            pct_start=warmup_fraction(self.steps),
        )
        checkpoints = sorted({math.ceil(self.steps * i / self.config.eval_points)
                              for i in range(1, self.config.eval_points + 1)})
        batches = self._train_batches(train_acts, seed)
        fault = _injected_fault()
        parts = result.accumulation_steps
        # The first step whose loss was not finite (0: none), kept on the device: reading the
        # loss every step would make the GPU wait for the host. Checked at each checkpoint.
        bad_step = torch.zeros((), dtype=torch.long, device=self.device)
        first_flops, first_size = 0.0, 0
        model.train()
        for step in range(1, self.steps + 1):
            inputs, labels = next(batches)
            if fault is not None and fault[1] == step and (
                    fault[0] == "oom-always" or (fault[0] == "oom" and parts == 1)):
                raise torch.OutOfMemoryError(f"CUDA out of memory (injected by {FAULT_ENV})")
            optimizer.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=self.device)
            # The first step's operations are counted; a later step costs that in proportion
            # to its input's size (text batches are trimmed to their longest row). Counting
            # every step would slow a GPU step several times over.
            counter = _flop_counter() if step == 1 else contextlib.nullcontext()
            with counter:
                for part_inputs, part_labels in _split_batch(inputs, labels, parts):
                    with self._autocast():
                        loss = nn.functional.cross_entropy(forward(part_inputs), part_labels)
                    if parts > 1:  # the whole batch's mean, as one step without accumulation
                        loss = loss * (len(part_labels) / len(labels))
                    if fault is not None and fault == ("nan", step):
                        loss = loss * math.nan
                    loss.backward()
                    step_loss += loss.detach()
            size = _elements(inputs)
            if step == 1:
                first_flops, first_size = _counted(counter), size
                result.train_flops = result.activation_flops if first_flops else None
            if result.train_flops is not None and first_size:
                result.train_flops += first_flops * size / first_size
            optimizer.step()
            scheduler.step()
            bad_step = torch.where((bad_step == 0) & ~torch.isfinite(step_loss), step, bad_step)
            if step in checkpoints:
                if int(bad_step):  # the one host sync, at a checkpoint
                    result.state = "pruned"
                    result.error = (f"loss became NaN or infinite at step {int(bad_step)} "
                                    f"(lr={plan.lr:.2g} is likely too high for this strategy)")
                    return
                index = checkpoints.index(step)
                if not between and index < len(checkpoints) - 1:
                    continue  # no one reads this checkpoint's accuracy: skip the pass
                # The trial's value is its accuracy at the end of the budget: a maximum over
                # checkpoints would be one more selection on the validation rows, biased up.
                eval_start = time.perf_counter()
                correct = self.outcomes(model, result.cached_depth, val_acts)
                result.eval_seconds += time.perf_counter() - eval_start
                accuracy = accuracy_of(correct)
                result.history.append((step, accuracy))
                result.val_accuracy = accuracy
                if index == len(checkpoints) - 1:
                    result.val_correct = correct_string(correct)
                    result.trained = _trained_state(model)
                elif should_stop is not None and should_stop(accuracy, index):
                    result.state = "pruned"
                    return
                # Suspended here, a fold waits for the others (fold scoring runs them in
                # lockstep): its gradients, a model's worth of memory, are not needed again.
                optimizer.zero_grad(set_to_none=True)
                yield index
                model.train()

    @torch.inference_mode()
    def outcomes(self, model: TransferModel, depth: int | None, acts: Tree | None,
                 split: str = "val") -> torch.Tensor:
        """Whether each row of ``split`` is classified right, in the split's row order.
        Adapters are merged into a copy first, so evaluating a LoRA model costs what the plain
        model costs (merging in place would perturb the frozen weights by rounding on every
        unmerge)."""
        if any(_is_adapter(m) for m in model.modules()):
            model = copy.deepcopy(model)
            for module in model.modules():
                if _is_adapter(module):
                    module.merge()
        forward = self._forward_fn(model, depth)
        model.eval()
        parts = []
        for inputs, labels in self._eval_batches(acts, split):
            with self._autocast():
                logits = forward(inputs)
            parts.append((logits.argmax(-1) == labels).cpu())
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)

    def score(self, plan: TrialPlan, trained: dict[str, torch.Tensor],
              split: str = "test") -> tuple[float, str]:
        """Accuracy and per-row outcomes on ``split`` of the model ``plan`` trained into
        ``trained`` (a trial's final tensors), without training anything."""
        if split not in self.splits:
            raise ValueError(f"no {split!r} split in this study; it has {list(self.splits)}")
        model, depth = self.build_model(plan)
        missing = [k for k in trained if k not in model.state_dict()]
        if missing:
            raise ValueError(f"trained tensors {missing[:3]} do not belong to {plan.strategy}")
        model.load_state_dict(trained, strict=False)
        acts, used = None, None
        if self._cacheable():
            used = self._cache_depth(depth)
            fetched = self._fetch(split, used)
            acts = fetched[0] if fetched is not None else None
            if acts is None:
                used = None
        model.to(self.device)
        if self.base.is_cnn:
            model.to(memory_format=torch.channels_last)
        correct = self.outcomes(model, used, acts, split)
        return accuracy_of(correct), correct_string(correct)

    def build_model(self, plan: TrialPlan) -> tuple[TransferModel, int]:
        """A fresh copy of the pretrained backbone with ``plan``'s head and strategy applied,
        and the number of leading layer groups the strategy leaves untouched."""
        strategy = self.strategies[plan.strategy]
        backbone = self.base.copy()
        head = self.heads[plan.head].build(backbone.feature_dim, self.num_classes,
                                           plan.head_params)
        model = TransferModel(backbone, head)
        strategy.apply(model, plan.strategy_params)
        depth = min(max(int(strategy.frozen_depth(plan.strategy_params, self.base)), 0),
                    self.base.n_groups)
        return model, depth

    def view(self, train_rows: Any, val_rows: Any) -> Trainer:
        """This trainer with rows of the ``all`` split (the pool of a fold-scored study) as
        its training and validation splits: a fold, or with every row and no validation rows,
        the final refit. Its step budget is the one the rule gives its training rows; cached
        activations come from the ``all`` split's, computed once and indexed."""
        if "all" not in self.splits:
            raise ValueError("this trainer has no 'all' split to take rows from")
        if self._cacheable():  # settle the shared, lazily computed facts once, here
            self._digest_weights()
            self._stages_verified()
        view = copy.copy(self)
        pool = self.splits["all"]
        rows = {"train": torch.as_tensor(list(train_rows), dtype=torch.long),
                "val": torch.as_tensor(list(val_rows), dtype=torch.long)}
        view.splits = {**self.splits,
                       **{name: pool.select(idx.tolist(), keep_in_memory=True)
                          for name, idx in rows.items()}}
        view.train_split, view.val_split = view.splits["train"], view.splits["val"]
        view.labels = {**self.labels,
                       **{name: self.labels["all"][idx] for name, idx in rows.items()}}
        view.rows = rows
        view.steps = steps_budget(len(rows["train"]), self.config.batch_size,
                                  self.config.epochs, self.config.min_steps,
                                  self.config.max_steps)
        return view

    # -- batches -------------------------------------------------------------------------------

    def _to_device(self, tree: Tree) -> Tree:
        def move(t: torch.Tensor) -> torch.Tensor:
            t = t.to(self.device, non_blocking=True)
            if self.base.is_cnn and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            return t

        return tree_map(move, trim_padding(tree))

    def _train_batches(self, acts: Tree | None, seed: int) -> Iterator[tuple[Tree, torch.Tensor]]:
        labels = self.labels["train"]
        n = len(labels)
        size = min(self.config.batch_size, n)
        generator = torch.Generator().manual_seed(seed)
        # The DataLoader's worker seeds follow the trial's seed from a generator of their own:
        # a draw from ``generator`` would change an uncached trial's later epoch orders.
        loader_generator = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(n, generator=generator)
            chunks = [order[i:i + size] for i in range(0, n - size + 1, size)]
            if acts is not None:
                # On CUDA the gathered batch goes to pinned memory, so the copy to the device
                # is asynchronous (torch caches pinned blocks; no allocation per step).
                pin = self.device.type == "cuda"
                for idx in chunks:
                    batch = tree_map(lambda t, i=idx, p=pin: t[i].pin_memory() if p else t[i],
                                     acts)
                    yield (self._to_device(batch), labels[idx].to(self.device, non_blocking=pin))
                continue
            stream = batches_of_inputs(
                self.train_split, self.base, batch_size=size, order=torch.cat(chunks),
                train=True, augment=self.config.augment, num_workers=self.config.num_workers,
                generator=loader_generator,
            )
            for idx, batch in zip(chunks, stream, strict=False):
                yield self._to_device(batch), labels[idx].to(self.device)

    def _eval_batches(self, acts: Tree | None,
                      split: str = "val") -> Iterator[tuple[Tree, torch.Tensor]]:
        labels = self.labels[split]
        size = max(self.config.batch_size, 64)
        if acts is not None:
            for start in range(0, len(labels), size):
                sl = slice(start, start + size)
                yield (self._to_device(tree_map(lambda t, s=sl: t[s], acts)),
                       labels[sl].to(self.device))
            return
        stream = batches_of_inputs(self.splits[split], self.base, batch_size=size,
                                   num_workers=self.config.num_workers)
        for start, batch in zip(range(0, len(labels), size), stream, strict=False):
            yield self._to_device(batch), labels[start:start + size].to(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _precision(self) -> str:
        """How the frozen layers compute (part of a cache key: bf16 activations from a GPU
        are not those a CPU trial would compute)."""
        return "bf16-autocast" if self.device.type == "cuda" else "fp32"

    # -- activation cache ----------------------------------------------------------------------

    def _cacheable(self) -> bool:
        return self.cache is not None and self.config.cache and not self.config.augment

    def _forward_fn(self, model: TransferModel,
                    depth: int | None) -> Callable[[Tree], torch.Tensor]:
        """The trial's forward pass from activations at ``depth`` (``None``/0: from inputs)."""
        n_groups = self.base.n_groups
        if not depth:
            return model
        if depth >= n_groups:
            return model.head
        stages = self.base.stages(model.backbone)
        assert stages is not None  # depth was only chosen because the split exists

        def forward(h: Tree) -> torch.Tensor:
            for stage in stages[depth:]:
                h = stage(h)
            return model.head(h)

        return forward

    def _activations(self, depth: int) -> tuple[Tree, Tree, int, float] | None:
        """Cached activations at ``depth`` for train and val, the depth actually used (a
        partial depth falls back to the inputs when the backbone has no verified split), and
        the seconds they cost to compute."""
        depth = self._cache_depth(depth)
        trees, seconds = [], 0.0
        for split in ("train", "val"):
            fetched = self._fetch(split, depth)
            if fetched is None:
                return None
            trees.append(fetched[0])
            seconds += fetched[1]
        return trees[0], trees[1], depth, seconds

    def _prefix_flops_per_row(self, depth: int) -> float | None:
        """Operations of the frozen part's forward for one row, counted once per depth on the
        first few training rows (rows cached together share one padded length)."""
        if depth not in self._prefix_flops:
            split = self.splits["train"] if len(self.labels["train"]) else self.splits["val"]
            k = min(4, len(split))
            flops = None
            if k:
                batch = next(batches_of_inputs(split, self.base, batch_size=k, uniform=True,
                                               order=torch.arange(k)))
                counter = _flop_counter()
                with counter:
                    self._prefix(batch, depth)
                counted = _counted(counter)
                flops = counted / k if counted else None
            self._prefix_flops[depth] = flops
        return self._prefix_flops[depth]

    def _cache_depth(self, depth: int) -> int:
        """The depth whose activations can be cached: a partial depth only where the
        backbone's stage split is verified, else the inputs (0)."""
        if 0 < depth < self.base.n_groups and not self._stages_verified():
            return 0
        return depth

    def _fetch(self, split: str, depth: int) -> tuple[Tree, float] | None:
        assert self.cache is not None
        rows = self.rows.get(split)
        if rows is not None:  # a view: its rows of the activations of every row
            fetched = self._fetch("all", depth)
            if fetched is None:
                return None
            return tree_map(lambda t: t[rows], fetched[0]), fetched[1]
        key = activation_key(
            weights=self.base.weights_id, weights_digest=self._digest_weights(), depth=depth,
            data=self.split_keys[split],
            preprocessing=self.base.preprocessing.fingerprint(), format=CACHE_FORMAT,
            precision=self._precision(),
        )
        what = f"{split} inputs" if depth == 0 else f"{split} activations at depth {depth}"
        return self.cache.fetch(key, lambda budget: self._compute(split, depth, budget), what)

    def _digest_weights(self) -> str:
        """The base weights' digest (cache keys), computed once per trainer."""
        if self._weights_digest is None:
            self._weights_digest = self.base.weights_digest()
        return self._weights_digest

    def _compute(self, split: str, depth: int, budget: int) -> tuple[Tree, float] | None:
        data = self.splits[split]
        if depth == 0:
            if input_bytes_estimate(data, self.base) > budget:
                return None
            start = time.perf_counter()
            batches = list(batches_of_inputs(data, self.base, batch_size=256, uniform=True,
                                             num_workers=self.config.num_workers))
            return tree_cat(batches), time.perf_counter() - start
        inputs = self._fetch(split, 0)
        # An entry's cost includes the inputs it was computed from, hit or miss, so a trial's
        # train_seconds charge it what training from scratch would cost.
        input_seconds = inputs[1] if inputs is not None else 0.0
        start = time.perf_counter()
        source = [inputs[0]] if inputs is not None else batches_of_inputs(
            data, self.base, batch_size=256, uniform=True, num_workers=self.config.num_workers)
        outputs: list[Tree] = []
        for chunk in source:
            for lo in range(0, tree_len(chunk), 256):
                batch = tree_map(lambda t, s=slice(lo, lo + 256): t[s], chunk)
                outputs.append(self._prefix(batch, depth))
                if tree_bytes(outputs[0]) * len(data) / tree_len(outputs[0]) > budget:
                    return None
        return tree_cat(outputs), time.perf_counter() - start + input_seconds

    @torch.no_grad()
    def _prefix(self, batch: Tree, depth: int) -> Tree:
        """The frozen part, in eval mode, the trials' precision (bf16 autocast on CUDA, as an
        uncached trial's forward pass; stored as fp32, which holds bf16 values exactly) and
        memory layout (a channels-last convolution rounds differently), moved to the CPU."""
        module = self.base.module

        def move(t: torch.Tensor) -> torch.Tensor:  # as _to_device, without trimming padding
            t = t.to(self.device)
            if self.base.is_cnn and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            return t

        inputs = tree_map(move, batch)
        with self._autocast():
            if depth >= self.base.n_groups:
                out = module(**inputs) if isinstance(inputs, dict) else module(inputs)
            else:
                stages = self.base.stages()
                assert stages is not None
                out = inputs
                for stage in stages[:depth]:
                    out = stage(out)
        return tree_map(lambda t: t.float().cpu() if t.is_floating_point() else t.cpu(), out)

    def _stages_verified(self) -> bool:
        """Whether the backbone's stage split reproduces its own output (checked once on a few
        real examples, so a wrong split can never make the cache inexact)."""
        if self._stages_ok is None:
            stages = self.base.stages()
            self._stages_ok = False
            if stages is not None:
                sample = self.val_split.select(range(min(4, len(self.val_split))))
                batch = next(batches_of_inputs(sample, self.base, batch_size=4))
                with torch.no_grad():
                    inputs = tree_map(lambda t: t.to(self.device), batch)
                    whole = (self.base.module(**inputs) if isinstance(inputs, dict)
                             else self.base.module(inputs))
                    staged = inputs
                    for stage in stages:
                        staged = stage(staged)
                scale = whole.abs().max().item() + 1e-6
                self._stages_ok = (staged - whole).abs().max().item() <= 1e-4 * scale
            if not self._stages_ok:
                log.info("activation cache: %s has no verified layer split; partial freezes "
                         "reuse cached inputs only", self.base.name)
        return self._stages_ok


def _flop_counter() -> Any:
    """torch's operation counter (matrix products, convolutions, attention; forward and
    backward), silent, with a convolution's backward pass counted right (below)."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten.convolution_backward: _conv_backward_flops})


def _conv_backward_flops(grad_out_shape: Any, x_shape: Any, w_shape: Any, _bias: Any,
                         _stride: Any, _padding: Any, _dilation: Any, transposed: bool,
                         _output_padding: Any, _groups: Any, output_mask: Any,
                         **kwargs: Any) -> int:
    """Each gradient a convolution's backward pass computes (input, weight) costs what its
    forward pass costs. torch's own formula (2.14) leaves out the groups in the weight's
    gradient, so a depthwise convolution's is counted as many times over as it has channels:
    EfficientNet's backward pass came to 41 forward passes, where 2 is right."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape),
                              transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _counted(counter: Any) -> float:
    return float(counter.get_total_flops())


def _elements(tree: Tree) -> int:
    """Number of input elements in a batch: a step's cost scales with it."""
    return sum(t.numel() for t in tree_leaves(tree))


def _split_batch(inputs: Tree, labels: torch.Tensor,
                 parts: int) -> Iterator[tuple[Tree, torch.Tensor]]:
    """A batch as ``parts`` consecutive micro-batches (gradient accumulation)."""
    if parts == 1:
        yield inputs, labels
        return
    size = math.ceil(len(labels) / parts)
    for lo in range(0, len(labels), size):
        part = slice(lo, lo + size)
        yield tree_map(lambda t, p=part: t[p], inputs), labels[part]


def _injected_fault() -> tuple[str, int] | None:
    """``$AUTOTL_INJECT_FAULT`` as (kind, step); see :data:`FAULT_ENV`."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    kind, _, step = spec.partition("@")
    if kind not in ("oom", "oom-always", "nan") or not step.isdigit():
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected oom@STEP, oom-always@STEP or "
                         "nan@STEP")
    return kind, int(step)


def _release_device_memory() -> None:
    """What a failed attempt held goes back to the device before the next one."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def accuracy_of(correct: torch.Tensor) -> float:
    """The share of rows right, from per-row outcomes (0 for no rows)."""
    return int(correct.sum()) / len(correct) if len(correct) else 0.0


def correct_string(correct: torch.Tensor) -> str:
    """Per-row outcomes as a compact string ('1' right, '0' wrong), storable on a trial."""
    return "".join("1" if c else "0" for c in correct.tolist())


def warmup_fraction(steps: int) -> float:
    """The one-cycle schedule's warm-up share: 10 %, except where that is exactly one step
    (10 steps), on which torch's OneCycleLR divides by zero."""
    return 0.15 if math.isclose(0.1 * steps, 1.0) else 0.1


def _is_adapter(module: nn.Module) -> bool:
    """A PEFT adapter layer (duck-typed: PEFT is imported only by strategies that use it)."""
    return callable(getattr(module, "merge", None)) and hasattr(module, "merged") \
        and hasattr(module, "base_layer")


def _trained_state(model: TransferModel) -> dict[str, torch.Tensor]:
    """What a trial changed: trainable parameters and the buffers of modules that trained."""
    frozen = {id(m) for fm in model.frozen_modules() for m in fm.modules()}
    persistent = set(model.state_dict())  # skips buffers that are rebuilt, not saved
    state = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    for module_name, module in model.named_modules():
        if id(module) in frozen:
            continue
        for buffer_name, buffer in module.named_buffers(recurse=False):
            key = f"{module_name}.{buffer_name}" if module_name else buffer_name
            if key in persistent:
                state[key] = buffer.detach().cpu().clone()
    return state
