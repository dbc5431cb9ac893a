"""Turning dataset splits into model inputs: whole tensors when they fit, batches when not.

Inputs and activations are "trees": a tensor, a tuple of tensors or a dict of tensors, all with
the example index first (images: ``[N, 3, H, W]``; text: token ids and masks ``[N, L]``; BERT
activations: ``(hidden [N, L, D], mask [N, L])``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from autotl.backbones import Backbone, ImagePreprocessing, TextPreprocessing

Tree = Any  # torch.Tensor | tuple[Tree, ...] | dict[str, Tree]


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], tree: Tree) -> Tree:
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, Mapping):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    return tuple(tree_map(fn, v) for v in tree)


def tree_leaves(tree: Tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    values = tree.values() if isinstance(tree, Mapping) else tree
    return [leaf for v in values for leaf in tree_leaves(v)]


def tree_cat(trees: list[Tree]) -> Tree:
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(trees)
    if isinstance(first, Mapping):
        return {k: tree_cat([t[k] for t in trees]) for k in first}
    return tuple(tree_cat([t[i] for t in trees]) for i in range(len(first)))


def tree_len(tree: Tree) -> int:
    return int(tree_leaves(tree)[0].shape[0])


def tree_bytes(tree: Tree) -> int:
    return sum(t.numel() * t.element_size() for t in tree_leaves(tree))


def trim_padding(tree: Tree) -> Tree:
    """Drop trailing columns that are padding in every row of a text batch (exact: padded
    positions are masked out of attention and pooling)."""
    mask = _mask_of(tree)
    if mask is None:
        return tree
    length = int(mask.sum(1).max().item()) if mask.numel() else 0
    if length >= mask.shape[1] or length == 0:
        return tree

    def cut(t: torch.Tensor) -> torch.Tensor:
        return t[:, :length] if t.dim() >= 2 and t.shape[1] == mask.shape[1] else t

    return tree_map(cut, tree)


def _mask_of(tree: Tree) -> torch.Tensor | None:
    if isinstance(tree, Mapping):
        return tree.get("attention_mask")
    if isinstance(tree, tuple) and len(tree) == 2:
        return tree[1]
    return None


def examples_of(split: Any, modality: str) -> list[Any]:
    """The raw inputs of a split (PIL images or strings)."""
    return split["image"] if modality == "image" else split["text"]


def batches_of_inputs(split: Any, backbone: Backbone, *, batch_size: int,
                      order: torch.Tensor | None = None, train: bool = False,
                      augment: bool = False, num_workers: int = 0,
                      uniform: bool = False,
                      generator: torch.Generator | None = None) -> Iterator[Tree]:
    """Preprocessed input batches of ``split`` in ``order`` (default: as stored); ``uniform``
    gives every text batch the same padded length so the batches concatenate.

    The DataLoader draws its workers' base seed from ``generator`` (default: a fresh one), never
    from the global RNG, so streaming inputs leaves a trial's dropout masks where they would be
    with cached inputs. Augmentation in the main process still draws from the global RNG.
    """
    indices = list(range(len(split))) if order is None else order.tolist()
    prep = backbone.preprocessing
    if isinstance(prep, TextPreprocessing):
        texts = split["text"]
        for start in range(0, len(indices), batch_size):
            chunk = [texts[i] for i in indices[start:start + batch_size]]
            yield prep.encode(chunk, uniform=uniform)
        return
    assert isinstance(prep, ImagePreprocessing)
    transform = prep.transform(train=train, augment=augment)
    dataset = _ImageRows(split, transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=indices, num_workers=num_workers,
        generator=generator if generator is not None else torch.Generator(),
    )
    yield from loader


class _ImageRows(torch.utils.data.Dataset):
    """Decodes and transforms one image per index, lazily (nothing is materialised)."""

    def __init__(self, split: Any, transform: Callable[[Any], torch.Tensor]) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.split[int(index)]["image"])


def input_bytes_estimate(split: Any, backbone: Backbone) -> int:
    """Bytes the preprocessed inputs of ``split`` would take as one tensor tree."""
    prep = backbone.preprocessing
    if isinstance(prep, ImagePreprocessing):
        size = prep.image_size
        return len(split) * 3 * size * size * 4
    return len(split) * prep.max_length * 8 * 3


def steps_budget(n_train: int, batch_size: int, epochs: float, min_steps: int,
                 max_steps: int) -> int:
    """Optimizer steps for a trial: ``epochs`` passes, clamped so tiny datasets still get
    ``min_steps`` updates and huge ones stop at ``max_steps``."""
    return max(min_steps, min(max_steps, math.ceil(epochs * n_train / batch_size)))
