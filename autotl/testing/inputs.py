"""Tiny inputs for tests: PIL images and strings as a user would give them, and a batch a
backbone's own preprocessing made from them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from autotl.backbones import Backbone

NUM_CLASSES = 3
TEXTS = ("the computer program has a bug", "love and food", "the law of science",
         "people in sport", "what data is in the code", "time for food and life")


def tiny_images(n: int = 4, size: int = 24, seed: int = 0) -> list[Image.Image]:
    """``n`` small RGB images of random noise with a bright stripe at one of three places."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        array = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        band = size // NUM_CLASSES
        array[:, (i % NUM_CLASSES) * band:(i % NUM_CLASSES + 1) * band] += 180
        images.append(Image.fromarray(array, mode="RGB"))
    return images


def tiny_texts(n: int = 4) -> list[str]:
    """``n`` short English sentences."""
    return [TEXTS[i % len(TEXTS)] for i in range(n)]


def tiny_labels(n: int = 4) -> list[int]:
    return [i % NUM_CLASSES for i in range(n)]


def example_batch(backbone: Backbone, batch: int = 4) -> tuple[Any, torch.Tensor]:
    """A batch made by the backbone's own preprocessing from tiny images or texts, and labels:
    an image tensor, or a dict of token tensors."""
    import torch

    from autotl.backbones import ImagePreprocessing

    labels = torch.tensor(tiny_labels(batch))
    if isinstance(backbone.preprocessing, ImagePreprocessing):
        transform = backbone.preprocessing.transform()
        return torch.stack([transform(image) for image in tiny_images(batch)]), labels
    return backbone.preprocessing.encode(tiny_texts(batch)), labels


def forward(module: torch.nn.Module, inputs: Any) -> torch.Tensor:
    """Call a backbone module on an image tensor or a dict of token tensors."""
    return module(**inputs) if isinstance(inputs, dict) else module(inputs)
