"""Splits turned into model inputs."""

from __future__ import annotations

import datasets
import torch
from PIL import Image

from autotl.inputs import batches_of_inputs
from autotl.testing.backbones import tiny_cnn


def _images(n: int = 6) -> datasets.Dataset:
    images = [Image.new("RGB", (8, 8), color=(40 * i, 0, 0)) for i in range(n)]
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["a", "b"])})
    return datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]},
                                      features=features)


def test_image_batches_leave_the_global_rng_as_they_found_it() -> None:
    """A DataLoader draws a seed for its workers each time it is iterated; drawn from the
    global RNG, that would shift every later dropout mask of the trial."""
    split, backbone = _images(), tiny_cnn()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    batches = list(batches_of_inputs(split, backbone, batch_size=4))
    assert [len(b) for b in batches] == [4, 2]
    assert torch.equal(torch.get_rng_state(), state)


def test_random_augmentation_still_draws_from_the_global_rng() -> None:
    """Augmentation in the main process is the trial's own randomness: seeded by the trial, so
    one seed gives one sequence of crops."""
    split, backbone = _images(), tiny_cnn()

    def crops(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return torch.cat(list(batches_of_inputs(split, backbone, batch_size=4, train=True,
                                                augment=True)))

    assert torch.equal(crops(1), crops(1))
    assert not torch.equal(crops(1), crops(2))
