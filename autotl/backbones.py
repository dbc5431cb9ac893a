"""Backbones at run time: a feature extractor plus what the search needs to know about it.

:func:`timm_backbone` and :func:`hf_backbone` turn any timm architecture or transformers encoder
into a :class:`Backbone`; plugins that bring their own weights (``offline:``) call them too, so
layer groups, data config and LoRA targets come from one place. This module imports torch: only
``build`` factories reach it, never plugin discovery.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from autotl.errors import WeightsError

# Attention projections that LoRA adapts by default (the LoRA paper adapts query and value).
_ATTENTION_LINEARS = {
    "qkv", "query", "value", "q_proj", "v_proj", "q_lin", "v_lin", "query_key_value",
    "c_attn", "Wqkv",
}
_ATTENTION_OUTPUT = {"proj"}  # timm ViT's attn.proj, adapted along with the fused qkv


@dataclass(frozen=True)
class ImagePreprocessing:
    """timm's data config for the backbone (input size, mean, std, interpolation, crop)."""

    data_config: Mapping[str, Any]

    @property
    def image_size(self) -> int:
        return int(self.data_config["input_size"][-1])

    def resized(self, size: int) -> ImagePreprocessing:
        """The same normalisation at another square size, without centre-crop (small native
        images such as 28-px Fashion-MNIST keep their whole frame)."""
        config = dict(self.data_config, input_size=(3, size, size), crop_pct=1.0)
        return ImagePreprocessing(config)

    def transform(self, train: bool = False, augment: bool = False) -> Callable[[Any], Any]:
        """PIL image (any mode) → normalised float tensor; random augmentation only if asked."""
        from timm.data import create_transform

        timm_transform = create_transform(**self.data_config, is_training=train and augment)

        def to_tensor(image: Any) -> torch.Tensor:
            return timm_transform(image.convert("RGB"))

        return to_tensor

    def fingerprint(self) -> str:
        return _digest(dict(self.data_config))


@dataclass(frozen=True)
class TextPreprocessing:
    """The backbone's tokenizer and the length texts are cut to."""

    tokenizer: Any
    max_length: int = 128

    def fingerprint(self) -> str:
        tok = self.tokenizer
        return _digest({
            "class": type(tok).__name__,
            "name": getattr(tok, "name_or_path", ""),
            "vocab": getattr(tok, "vocab_size", 0),
            "max_length": self.max_length,
        })

    def encode(self, texts: list[str], *, uniform: bool = False) -> dict[str, torch.Tensor]:
        """Token tensors; ``uniform`` pads every text to ``max_length`` so batches of a split
        concatenate (training trims the shared padding again per batch)."""
        return dict(self.tokenizer(
            texts, padding="max_length" if uniform else True, truncation=True,
            max_length=self.max_length, return_tensors="pt",
        ))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Backbone:
    """A built backbone.

    ``module`` maps a batch (an image tensor, or a dict of token tensors) to pooled features of
    shape ``[batch, feature_dim]``. ``layer_groups`` lists parameter names of ``module`` per
    group, input→output, so "freeze depth k" means the first k groups on every model.
    ``lora_targets`` names the modules LoRA adapts. ``weights_id`` identifies the weights
    (cache keys use it).
    """

    name: str
    modality: str
    module: nn.Module
    feature_dim: int
    layer_groups: list[list[str]]
    lora_targets: list[str]
    preprocessing: ImagePreprocessing | TextPreprocessing
    weights_id: str
    is_cnn: bool = False
    stager: Callable[[nn.Module], list[Callable[[Any], Any]] | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_groups(self) -> int:
        return len(self.layer_groups)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def first_group_with(self, predicate: Callable[[str], bool]) -> int:
        """Index of the first layer group holding a parameter name ``predicate`` accepts
        (``n_groups`` if none): the frozen depth of a strategy that changes just those."""
        for depth, group in enumerate(self.layer_groups):
            if any(predicate(name) for name in group):
                return depth
        return self.n_groups

    def stages(self, module: nn.Module | None = None) -> list[Callable[[Any], Any]] | None:
        """``n_groups + 1`` callables over ``module`` (default: this backbone's): stage ``i``
        computes layer group ``i`` and the last turns the final stage's output into pooled
        features. ``None`` when the architecture has no known split; the activation cache then
        only reuses the whole backbone's output (head-only) or its inputs."""
        if self.stager is None:
            return None
        stages = self.stager(self.module if module is None else module)
        if stages is None or len(stages) != self.n_groups + 1:
            return None
        return stages

    def weights_digest(self) -> str:
        """A digest of the weights themselves, independent of device and memory layout.
        ``weights_id`` alone does not identify them: a random initialisation differs per
        process, and a plugin update or a local folder saved again keeps its name."""
        digest = hashlib.sha256()
        for name, tensor in self.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy())
        return digest.hexdigest()[:16]

    def copy(self) -> Backbone:
        """A copy with its own weights: each trial starts from the pretrained state without
        reading the weights from disk again."""
        import copy

        return replace(self, module=copy.deepcopy(self.module))


# -- timm ------------------------------------------------------------------------------------


def timm_backbone(
    arch: str,
    pretrained: bool = True,
    *,
    name: str | None = None,
    weights_file: str | os.PathLike[str] | None = None,
    weights_id: str | None = None,
    **create_kwargs: Any,
) -> Backbone:
    """A :class:`Backbone` from timm architecture ``arch``.

    ``weights_file`` loads pretrained weights from a local file through timm's own
    ``pretrained_cfg_overlay`` instead of the hub (how offline weight packages plug in).
    """
    import timm
    from timm.data import resolve_model_data_config
    from timm.models import group_parameters

    if weights_file is not None:
        create_kwargs["pretrained_cfg_overlay"] = dict(file=str(weights_file))
        pretrained = True
    try:
        model = timm.create_model(arch, pretrained=pretrained, num_classes=0, **create_kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if not pretrained:
            raise
        msg = (
            f"could not load pretrained weights for timm:{arch}: {type(exc).__name__}: {exc}. "
            "timm downloads them from the Hugging Face hub; without a network use an offline "
            "backbone (`autotl list backbones`, e.g. offline:efficientnet-lite0) or "
            "--no-pretrained for random initialisation."
        )
        raise WeightsError(msg) from exc
    groups = group_parameters(model, model.group_matcher(coarse=True))
    layer_groups = [list(groups[k]) for k in sorted(groups)]
    targets, is_cnn = _timm_lora_targets(model)
    if weights_id is None:
        weights_id = f"timm:{arch}:{'pretrained' if pretrained else 'random'}"
    return Backbone(
        name=name or f"timm:{arch}",
        modality="image",
        module=model,
        feature_dim=int(model.num_features),
        layer_groups=layer_groups,
        lora_targets=targets,
        preprocessing=ImagePreprocessing(resolve_model_data_config(model)),
        weights_id=weights_id,
        is_cnn=is_cnn,
        stager=timm_stages,
    )


def timm_stages(model: nn.Module) -> list[Callable[[Any], Any]] | None:
    """Split the timm families autotl knows into stages that match their coarse layer groups;
    others return ``None``. The activation cache checks the split against the whole model's
    output before trusting it."""
    from timm.models.efficientnet import EfficientNet
    from timm.models.resnet import ResNet
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(model, EfficientNet):
        return [
            lambda x: model.bn1(model.conv_stem(x)),
            *model.blocks,
            lambda x: model.forward_head(model.bn2(model.conv_head(x))),
        ]
    if isinstance(model, ResNet):
        return [
            lambda x: model.maxpool(model.act1(model.bn1(model.conv1(x)))),
            model.layer1, model.layer2, model.layer3, model.layer4,
            model.forward_head,
        ]
    if isinstance(model, VisionTransformer):
        return [
            lambda x: model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x)))),
            *model.blocks,
            lambda x: model.forward_head(model.norm(x)),
        ]
    return None


def _timm_lora_targets(model: nn.Module) -> tuple[list[str], bool]:
    """Attention projections if the model has attention, else pointwise (1×1) convolutions,
    else every linear layer; and whether the model is convolutional."""
    attention = [
        name for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ".attn." in f".{name}"
        and name.rsplit(".", 1)[-1] in _ATTENTION_LINEARS | _ATTENTION_OUTPUT
    ]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    is_cnn = len(convs) > 1 and not attention
    if attention:
        return attention, is_cnn
    pointwise = [
        name for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1
        and ".se." not in f".{name}."  # squeeze-excite gates act on pooled vectors, not features
    ]
    if pointwise:
        return pointwise, is_cnn
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears, is_cnn


# -- transformers ----------------------------------------------------------------------------


class MeanPooledEncoder(nn.Module):
    """A transformers encoder whose output is mean-pooled over real (unpadded) tokens."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **kwargs: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        return mean_pool(hidden, attention_mask)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states of real (unpadded) tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """transformers' "Loading weights" bar would land in load_model's and `autotl predict`'s
    output; the caller's own setting holds again afterwards."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def hf_backbone(
    model_id: str | os.PathLike[str],
    pretrained: bool = True,
    *,
    name: str | None = None,
    config: Any = None,
    tokenizer: Any = None,
    max_length: int = 128,
    weights_id: str | None = None,
) -> Backbone:
    """A :class:`Backbone` from a transformers encoder (hub id or local folder).

    Layer groups are the embeddings, then each encoder layer; the unused pooler is dropped so
    every parameter that is marked trainable really trains. ``config`` and ``tokenizer`` may be
    passed directly (tests use a tiny random BERT without any files).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model_id = str(model_id)
    try:
        if config is None:
            config = AutoConfig.from_pretrained(model_id)
        if pretrained:
            with _no_progress_bar():
                model = AutoModel.from_pretrained(model_id, config=config)
        else:
            model = AutoModel.from_config(config)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(model_id)
    except OSError as exc:
        msg = (
            f"could not load transformers model {model_id!r}: {exc}. Give a local folder with "
            "config.json, weights and tokenizer files, or a hub id with network access "
            "(HF_HUB_OFFLINE=1 means cached files only); offline:minilm-l6 works without one."
        )
        raise WeightsError(msg) from exc
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    layers = _encoder_layers(model)
    groups: list[list[str]] = [[] for _ in range(len(layers) + 1)]
    layer_prefixes = [prefix for prefix, _ in layers]
    for pname, _ in model.named_parameters():
        for i, prefix in enumerate(layer_prefixes):
            if pname.startswith(prefix + "."):
                groups[i + 1].append(f"encoder.{pname}")
                break
        else:  # embeddings before the first layer; a final norm after the last joins the top
            before = not any(groups[1:])
            groups[0 if before else -1].append(f"encoder.{pname}")
    targets = [
        f"encoder.{n}" for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in _ATTENTION_LINEARS
    ]
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    if weights_id is None:
        weights_id = f"hf:{model_id}:{'pretrained' if pretrained else 'random'}"
    return Backbone(
        name=name or f"hf:{model_id}",
        modality="text",
        module=MeanPooledEncoder(model),
        feature_dim=int(hidden),
        layer_groups=groups,
        lora_targets=targets,
        preprocessing=TextPreprocessing(tokenizer, max_length=max_length),
        weights_id=weights_id,
        stager=bert_stages,
    )


def bert_stages(pooled: nn.Module) -> list[Callable[[Any], Any]] | None:
    """Stages of a BERT-style encoder (``embeddings`` + ``encoder.layer``): activations carry
    ``(hidden states, attention mask)`` so later layers and pooling still see the padding."""
    model = getattr(pooled, "encoder", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if model is None or layers is None or not hasattr(model, "embeddings"):
        return None

    def attention_mask(hidden: torch.Tensor, mask: torch.Tensor) -> Any:
        if hasattr(model, "_create_attention_masks"):  # transformers 5
            return model._create_attention_masks(
                attention_mask=mask, encoder_attention_mask=None, embedding_output=hidden,
                encoder_hidden_states=None, cache=None,
            )[0]
        return model.get_extended_attention_mask(mask, mask.shape)

    def embed(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = model.embeddings(
            input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids")
        )
        return hidden, batch["attention_mask"]

    def layer_stage(layer: nn.Module) -> Callable[[Any], Any]:
        def run(state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            hidden, mask = state
            out = layer(hidden, attention_mask=attention_mask(hidden, mask))
            return (out[0] if isinstance(out, tuple) else out), mask
        return run

    def pool(state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mean_pool(*state)

    return [embed, *(layer_stage(layer) for layer in layers), pool]


def _encoder_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The transformer layers, input→output: the longest ``nn.ModuleList`` in the model."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        msg = f"{type(model).__name__} has no nn.ModuleList of layers; cannot form layer groups."
        raise WeightsError(msg)
    prefix, layers = max(lists, key=lambda item: len(item[1]))
    return [(f"{prefix}.{i}", layer) for i, layer in enumerate(layers)]


RANDOM_INIT_SEED = 0


def build_backbone(spec: Any, pretrained: bool) -> Backbone:
    """``spec.build(pretrained)``; a random initialisation is seeded (and leaves the global RNG
    as it was), so a model trained from random init reloads onto the same weights."""
    if pretrained:
        return spec.build(True)
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_INIT_SEED)
        return spec.build(False)
