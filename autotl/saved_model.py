"""The best model of a study on disk, and loading it back to predict.

Only what training changed is saved, as safetensors: for LoRA the adapter and head, for
head-only the head, for a partial freeze the unfrozen part. Loading rebuilds the pretrained
backbone from its plugin, re-applies the strategy, and loads the saved tensors on top.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from autotl.errors import AutoTLError

FORMAT = 1
WEIGHTS = "model.safetensors"
MANIFEST = "model.json"


def save_model(folder: Path, state: dict[str, torch.Tensor], manifest: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``model.json`` as one unit.

    Both go into a new hidden folder beside ``folder``; then ``folder``, a symbolic link, is
    switched to it by one rename. A reader (or another process saving at the same moment)
    sees the old model or the new one, never the weights of one with the manifest of the
    other, and a failed write (a full disk) leaves the previous model in place.
    """
    from safetensors.torch import save_file

    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    version = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=parent))
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(version / WEIGHTS))
        (version / MANIFEST).write_text(json.dumps({"format": FORMAT, **manifest}, indent=2))
        for path in (version / WEIGHTS, version / MANIFEST):
            path.chmod(0o644)
        version.chmod(0o755)
    except OSError as exc:
        shutil.rmtree(version, ignore_errors=True)
        raise AutoTLError(
            f"could not write the model to {folder}: {exc.strerror or exc}. The study's trials "
            "are safe in its storage; free some space (or pick another --out) and write the "
            "outputs again with `autotl report`."
        ) from exc
    previous = os.readlink(folder) if folder.is_symlink() else None
    link = parent / f"{version.name}.link"
    os.symlink(version.name, link)  # relative: the run folder can be moved or copied
    if folder.is_dir() and not folder.is_symlink():  # a plain folder, from an older autotl
        shutil.rmtree(folder)
    os.replace(link, folder)
    if previous and previous != version.name and "/" not in previous:
        shutil.rmtree(parent / previous, ignore_errors=True)
    return folder


@dataclass
class LoadedModel:
    """A trained model ready to predict; ``manifest`` says how it was trained."""

    model: Any
    backbone: Any
    manifest: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @torch.no_grad()
    def predict_proba(self, inputs: list[Any]) -> torch.Tensor:
        """Class probabilities for PIL images (image models) or strings (text models)."""
        prep = self.backbone.preprocessing
        if self.backbone.modality == "image":
            transform = prep.transform()
            batch: Any = torch.stack([transform(image) for image in inputs])
        else:
            batch = prep.encode([str(text) for text in inputs])
        self.model.eval()
        return torch.softmax(self.model(batch), dim=-1)

    def predict(self, inputs: list[Any]) -> list[str]:
        """The most likely class name for each input."""
        return [self.class_names[i] for i in self.predict_proba(inputs).argmax(-1).tolist()]


def load_model(path: str | os.PathLike[str], plugins: Any = None) -> LoadedModel:
    """Load ``best_model/`` (or a run folder holding one) for prediction."""
    from safetensors.torch import load_file

    from autotl.models import TransferModel
    from autotl.plugins import load_plugins

    folder = Path(path)
    if (folder / "best_model" / MANIFEST).is_file():
        folder = folder / "best_model"
    if not (folder / MANIFEST).is_file():
        raise AutoTLError(f"no saved model in {str(path)!r}: expected {MANIFEST} and {WEIGHTS} "
                          "(a search's --out folder or its best_model/ subfolder).")
    folder = folder.resolve()  # one version: a save meanwhile switches the link, not files
    manifest = json.loads((folder / MANIFEST).read_text())
    plugins = plugins or load_plugins()
    backbone = plugins.backbones.get(manifest["backbone"]).build(manifest["pretrained"])
    if manifest.get("image_size") and backbone.modality == "image":
        backbone = replace(backbone, preprocessing=backbone.preprocessing.resized(
            manifest["image_size"]))
    if backbone.modality == "text" and manifest.get("max_length"):
        backbone = replace(backbone, preprocessing=replace(
            backbone.preprocessing, max_length=manifest["max_length"]))
    head = plugins.heads.get(manifest["head"]).build(
        backbone.feature_dim, len(manifest["class_names"]), manifest["head_params"])
    model = TransferModel(backbone, head)
    plugins.strategies.get(manifest["strategy"]).apply(model, manifest["strategy_params"])
    state = load_file(str(folder / WEIGHTS))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise AutoTLError(f"{folder / WEIGHTS} holds tensors this model does not have: "
                          f"{result.unexpected_keys[:5]}; was it saved by another version?")
    model.eval()
    return LoadedModel(model=model, backbone=backbone, manifest=manifest)
