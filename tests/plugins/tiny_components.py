"""Tiny backbones and datasets for fast end-to-end tests, registered like a real plugin."""

from __future__ import annotations

import autotl

N_PER_CLASS = 24
WORDS = {
    "code": "computer program bug code data",
    "food": "food love life time people",
    "law": "law science the of and",
}


def _images():  # noqa: ANN202
    """Three classes of 24×24 images that differ in brightness pattern, plus noise."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images, labels = [], []
    for label in range(3):
        for _ in range(N_PER_CLASS):
            array = rng.integers(0, 60, size=(24, 24), dtype=np.uint8)
            array[:, label * 8:(label + 1) * 8] += 180
            images.append(Image.fromarray(array, mode="L"))
            labels.append(label)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["left", "mid", "right"])})
    train = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    return datasets.DatasetDict({"train": train})


def _texts():  # noqa: ANN202
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    texts, labels = [], []
    for label, (name, words) in enumerate(WORDS.items()):
        vocab = words.split()
        for _ in range(N_PER_CLASS):
            texts.append(" ".join(rng.choice(vocab, size=int(rng.integers(3, 9)))))
            labels.append(label)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(WORDS))})
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": texts, "label": labels}, features=features)})


def _explode(model, params):  # noqa: ANN001, ANN202, ARG001
    raise RuntimeError("this strategy always fails")


@autotl.hookimpl
def autotl_register_backbones(registry):  # noqa: ANN001, ANN201
    from autotl import testing

    for name, build in (("cnn", "tiny_cnn"), ("vit", "tiny_vit"), ("bert", "tiny_bert")):
        registry.add(autotl.BackboneSpec(
            name=f"test:{name}", modality="text" if name == "bert" else "image",
            build=lambda pretrained, b=build: getattr(testing, b)(),
        ))


@autotl.hookimpl
def autotl_register_datasets(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.DatasetSpec(name="test:images", modality="image", load=_images))
    registry.add(autotl.DatasetSpec(name="test:texts", modality="text", load=_texts))


@autotl.hookimpl
def autotl_register_strategies(registry):  # noqa: ANN001, ANN201
    registry.add(autotl.StrategySpec(name="test:explode", apply=_explode,
                                     frozen_depth=lambda params, backbone: 0))
