"""Every hook a plugin may implement: the reference a plugin author reads (docs/plugins.md is
the guide: a plugin from zero, each contract, testing with ``autotl.testing``, publishing).

A plugin is a module (or object) with functions decorated by :data:`autotl.hookimpl`, found
through the ``autotl`` entry-point group::

    # pyproject.toml of your distribution
    [project.entry-points.autotl]
    my-plugin = "my_package.autotl_plugin"

    # my_package/autotl_plugin.py
    import autotl

    @autotl.hookimpl
    def autotl_register_strategies(registry):
        registry.add(autotl.StrategySpec(name="my:bitfit", apply=..., frozen_depth=...))

Rules every implementation follows:

- Take only the parameters you use, spelled as below, and **no defaults**: pluggy never passes
  a defaulted parameter, so autotl rejects such implementations at load time.
- Import torch, timm or transformers inside the factories you register, not at module level:
  ``autotl list`` and ``autotl plugins`` load every plugin and must stay fast.
- Names are ``<namespace>:<id>``; bare names belong to autotl's built-ins. A duplicate name is
  an error that names both plugins.
- A hook that raises gets its plugin reported by name and skipped (``--strict`` or
  ``AUTOTL_STRICT_PLUGINS=1`` turns that into an error); what it registered is withdrawn.
- Say which plugin API versions the plugin works with, as a module attribute holding a PEP 440
  range: ``AUTOTL_PLUGIN_API = ">=1.1,<2"``. A plugin whose range excludes
  :data:`PLUGIN_API_VERSION` is skipped at load time and flagged by ``autotl plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from autotl.config import SearchConfig
    from autotl.registry import BackboneSpec, DatasetSpec, HeadSpec, Registry, StrategySpec
    from autotl.training import TrialResult

PROJECT = "autotl"
#: The plugin API this autotl offers, ``MAJOR.MINOR``. MINOR grows when hooks or spec fields are
#: added (plugins written for an older MINOR keep working); MAJOR grows when a hook or field
#: changes meaning or goes away. 1.1 added ``StrategySpec.inapplicable``.
PLUGIN_API_VERSION = "1.1"
#: The module attribute a plugin declares its supported range in.
PLUGIN_API_ATTRIBUTE = "AUTOTL_PLUGIN_API"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def autotl_register_backbones(registry: Registry[BackboneSpec]) -> None:
    """Add pretrained backbones.

    :param registry: call ``registry.add(BackboneSpec(...))`` for each named backbone, or
        ``registry.add_namespace(Namespace(prefix, resolve, description))`` to answer every
        ``<prefix>:<id>`` lazily (how ``timm:`` and ``hf:`` work).

    A backbone's ``build(pretrained)`` returns :class:`autotl.backbones.Backbone`, which gives
    pooled features, the feature dim, layer groups ordered input→output, LoRA target modules
    and the preprocessing it expects. ``autotl.backbones.timm_backbone`` and
    ``autotl.backbones.hf_backbone`` build one from a timm or transformers model.
    """


@hookspec
def autotl_register_heads(registry: Registry[HeadSpec]) -> None:
    """Add classifier heads put on the backbone's pooled features.

    :param registry: call ``registry.add(HeadSpec(...))``. A head's search parameters are
        drawn by its ``suggest(trial)``, named ``<head>.<param>`` in the study.
    """


@hookspec
def autotl_register_strategies(registry: Registry[StrategySpec]) -> None:
    """Add fine-tuning strategies: what trains, at which learning rates, and what stays frozen.

    :param registry: call ``registry.add(StrategySpec(...))``. ``frozen_depth`` must be exact:
        the activation cache reuses the outputs of that many leading layer groups, so a
        strategy that changes anything inside them must report a smaller depth. ``suggest``
        names its parameters ``<strategy>.<param>``; ``known_good`` configs lie inside
        ``lr_range`` and that space; ``inapplicable(backbone)`` says why the strategy cannot
        run on a backbone (or returns ``None``). ``autotl.testing.StrategyConformance``
        checks all of it.
    """


@hookspec
def autotl_register_datasets(registry: Registry[DatasetSpec]) -> None:
    """Add named datasets (``autotl search NAME``).

    :param registry: call ``registry.add(DatasetSpec(...))``; ``load()`` returns a
        ``datasets.DatasetDict`` with a ``train`` split (and optionally ``test``) holding an
        ``image`` or ``text`` column and a ``ClassLabel`` column ``label``.
    """


@hookspec
def autotl_trial_finished(result: TrialResult) -> None:
    """Called after every trial (complete, pruned or failed), in the process that ran it.

    :param result: what the trial measured; ``result.state`` says how it ended. Use it for
        loggers and experiment trackers. Exceptions here are reported and do not stop the study.
    """


@hookspec(firstresult=True)
def autotl_create_sampler(config: SearchConfig) -> optuna.samplers.BaseSampler | None:
    """Return the Optuna sampler for a study, or ``None`` to leave the choice to others.

    The first non-``None`` answer wins; the built-in seeded TPE sampler is registered
    ``trylast`` so any plugin overrides it.
    """


@hookspec(firstresult=True)
def autotl_create_pruner(config: SearchConfig) -> optuna.pruners.BasePruner | None:
    """Return the Optuna pruner fed with intermediate validation accuracy, or ``None``.

    The first non-``None`` answer wins; the built-in median-within-strategy pruner is ``trylast``.
    """


#: The registration hooks, by the component kind they fill.
REGISTRATION_HOOKS: dict[str, str] = {
    "backbone": "autotl_register_backbones",
    "head": "autotl_register_heads",
    "strategy": "autotl_register_strategies",
    "dataset": "autotl_register_datasets",
}


def hook_names() -> list[str]:
    """Names of every hook specified here."""
    return sorted(n for n, v in globals().items() if n.startswith("autotl_") and callable(v))


__all__ = ["PLUGIN_API_ATTRIBUTE", "PLUGIN_API_VERSION", "REGISTRATION_HOOKS", "hook_names",
           "hookimpl", "hookspec"]
