"""The best model of a study on disk, and loading it back to predict.

Only what training changed is saved, as safetensors: for LoRA the adapter and head, for
head-only the head, for a partial freeze the unfrozen part. Loading rebuilds the pretrained
backbone from its plugin, re-applies the strategy, and loads the saved tensors on top.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from autotl.errors import AutoTLError

log = logging.getLogger(__name__)

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
    """Load ``best_model/`` (or a run folder holding one) for prediction.

    Refuses, rather than predicting with something else: a file that lacks a tensor the
    strategy trains (it would stay at random init), and base weights whose digest differs
    from the ones the model was trained on (a plugin update, other weights in a folder)."""
    from safetensors.torch import load_file

    from autotl.backbones import build_backbone
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
    backbone = build_backbone(plugins.backbones.get(manifest["backbone"]),
                              manifest["pretrained"])
    stored_digest = manifest.get("base_weights_digest")
    if stored_digest and backbone.weights_digest() != stored_digest:
        raise AutoTLError(
            f"{folder} was trained on {manifest['backbone']} weights with digest "
            f"{stored_digest}, but the installed {manifest['backbone']} has digest "
            f"{backbone.weights_digest()}: its plugin or weights changed since. Install the "
            f"version it was trained with (see {MANIFEST}: 'plugins'), or run the search again.")
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
    trains = {name for name, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trains - set(state))
    if missing:
        raise AutoTLError(
            f"{folder / WEIGHTS} lacks {len(missing)} tensor(s) that strategy "
            f"{manifest['strategy']!r} trains (e.g. {missing[:3]}); loaded, they would keep "
            "their untrained values. The file is incomplete or from another config: run the "
            "search again.")
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise AutoTLError(f"{folder / WEIGHTS} holds tensors this model does not have: "
                          f"{result.unexpected_keys[:5]}; was it saved by another version?")
    model.eval()
    return LoadedModel(model=model, backbone=backbone, manifest=manifest)


# -- a study's trained tensors -------------------------------------------------------------------

STATE_ATTR = "state_artifact"


def _store(folder: Path) -> Any:
    """The artifact store in ``folder``: ``<out>/artifacts``, or ``--artifacts``, a folder
    every worker reaches (a shared file system, or an object store mounted as one)."""
    from optuna.artifacts import FileSystemArtifactStore

    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def keep_trial_state(trial: Any, trained: dict[str, torch.Tensor], store: Path) -> None:
    """Keep a running trial's final trained tensors in the study's artifact store, so the
    driver can save or score it once selection names it (its id: user attr
    ``state_artifact``)."""
    import optuna
    from optuna.artifacts import upload_artifact
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trial-{trial.number}.safetensors"
        save_file({k: v.contiguous() for k, v in trained.items()}, str(path))
        try:
            artifact_id = upload_artifact(study_or_trial=trial, file_path=str(path),
                                          artifact_store=_store(store))
        except (OSError, optuna.exceptions.OptunaError) as exc:  # retrained if needed
            log.warning("could not keep trial %d's trained tensors: %s", trial.number, exc)
            return
    trial.set_user_attr(STATE_ATTR, artifact_id)


def load_trial_state(trial: Any, store: Path) -> dict[str, torch.Tensor] | None:
    """A trial's kept tensors, or None when they were not kept (or were pruned)."""
    from optuna.artifacts import download_artifact
    from safetensors.torch import load_file

    artifact_id = trial.user_attrs.get(STATE_ATTR)
    if not artifact_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.safetensors"
        try:
            download_artifact(artifact_store=_store(store), artifact_id=artifact_id,
                              file_path=str(path))
        except Exception as exc:  # noqa: BLE001 — any store failure: fall back to retraining
            log.info("trial %d's kept tensors are unavailable (%s)", trial.number, exc)
            return None
        return load_file(str(path))


def prune_trial_states(study: Any, folder: Path, keep: set[int]) -> None:
    """Remove kept tensors of trials the selection no longer names, bounding the store."""
    store = _store(folder)
    for trial in study.get_trials(deepcopy=False):
        artifact_id = trial.user_attrs.get(STATE_ATTR)
        if artifact_id and trial.number not in keep:
            with contextlib.suppress(Exception):
                store.remove(artifact_id)


def save_best_model(out: Path, trial: Any, plan: Any, trained: dict[str, torch.Tensor],
                    prep: Any, backbone: Any, recommendation: Any) -> Path:
    """Write the recommended trial's (or the user's ``--trial``) trained tensors and how to
    rebuild them as ``best_model/``."""
    config = prep.config
    held = recommendation.user_choice or recommendation.recommended
    manifest = {
        "backbone": backbone.name,
        "pretrained": config.pretrained,
        "base_weights_digest": backbone.weights_digest(),
        "image_size": config.image_size,
        "max_length": config.max_length if backbone.modality == "text" else None,
        "modality": backbone.modality,
        "strategy": plan.strategy,
        "strategy_params": plan.strategy_params,
        "head": plan.head,
        "head_params": plan.head_params,
        "class_names": list(prep.data.class_names),
        "val_accuracy": trial.value,
        "test_accuracy": held.test_accuracy if held else None,
        "trial": trial.number,
        "study": config.study,
        "selection": recommendation.selection,
        # Whether the rule chose this trial, or a user's `autotl report --trial`.
        "chosen_by": "user" if recommendation.user_choice else "rule",
    }
    return save_model(out / "best_model", trained, manifest)
