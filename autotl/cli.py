"""The ``autotl`` command.

Listing commands (``plugins``, ``list``) never import torch, so they answer at once; the
training commands import it only when they run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

from autotl.config import SearchConfig
from autotl.errors import AutoTLError
from autotl.plugins import DISABLE_ENV, STRICT_ENV, Plugins, load_plugins
from autotl.registry import PLURALS

KINDS = {plural: kind for kind, plural in PLURALS.items()}

EPILOG = """\
examples:
  autotl list strategies                   what can be compared
  autotl search fashion-mnist --n-per-class 100 --image-size 96 --trials 12
  autotl search ./my_images --backbone timm:resnet50 --strategies head-only,lora
  autotl search reviews.csv --text-column review --label-column stars
  autotl search reviews.csv --val-data reviews-val.csv   your own validation rows, as given
  autotl search digits --workers 2 --trials 8   two processes on one study
  autotl worker --storage postgresql://u:pw@db/autotl --study NAME   join from any host
  autotl plugins                           installed plugins and what each registers

environment:
  {disable}=a,b   skip the named plugins
  {strict}=1        fail on a broken plugin instead of skipping it
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autotl",
        description="Measure which fine-tuning strategy (whole model, a frozen subset of layers, "
        "head only, or LoRA) and learning rate wins for your dataset and its size.",
        epilog=EPILOG.format(disable=DISABLE_ENV, strict=STRICT_ENV),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--strict", action="store_true",
                        help="fail on a broken plugin instead of skipping it")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="installed plugins, their versions and what each adds",
                       description="List every plugin (built-in or installed through the "
                       "'autotl' entry-point group), its version and what it registers; "
                       "broken plugins are listed with the reason they were skipped.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("list", help="registered backbones, heads, strategies or datasets",
                       description="List registered components. Open namespaces (timm:, hf:) "
                       "accept any name of that family and are shown with how names are formed.")
    p.add_argument("kind", choices=sorted(KINDS), help="what to list")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style filter, e.g. 'offline:*' (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "search", help="run a strategy search and recommend a strategy",
        description="Run an Optuna study over fine-tuning strategies, freeze depths, LoRA "
        "settings, heads and learning rates on DATA, then write recommendation.json, "
        "trials.csv, report.md, report.html and the best model to --out. Rerunning the same "
        "command resumes the study.",
        epilog=EPILOG.format(disable=DISABLE_ENV, strict=STRICT_ENV),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "worker", help="run trials of a stored study (join a search from any host)",
        description="Attach to a study that `autotl search` created in a shared storage and "
        "run its trials until it holds the finished trials its creator asked for, or its "
        "deadline passes; then exit 0. The study carries its own settings, so no others "
        "are needed; start as many workers as you like, on any hosts, at any time.",
        epilog="examples:\n  autotl worker --storage postgresql://user:pw@db/autotl "
        "--study digits-all-timm-resnet18\n  AUTOTL_STORAGE=postgresql://user:pw@db/autotl "
        "CUDA_VISIBLE_DEVICES=1 autotl worker --study NAME --data /mnt/data/images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_stored_study_arguments(p)
    p.add_argument("--data", help="where the study's data lives on this host (default: where "
                   "its creator read it); its fingerprint must match the study's")
    p.add_argument("--cache-dir", help="this host's activation cache folder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto (CUDA when available), cpu, cuda or mps")
    p.add_argument("--artifacts", help="where trials' trained tensors are kept, if not where "
                   "the study's creator said (a folder every worker and the report reach)")
    p.add_argument("--index", type=int, default=0,
                   help="this worker's number: its sampler is seeded with seed + index, so "
                   "workers draw different configs (default 0)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "report", help="write the recommendation and reports of a stored study",
        description="Build recommendation.json, trials.csv, report.md, report.html and "
        "best_model/ from a study in any storage: after workers finished, or to refresh the "
        "outputs while they run.",
        epilog="examples:\n  autotl report --storage sqlite:///runs/digits/study.db --study "
        "digits-all-timm-resnet18\n  autotl report --storage sqlite:///runs/digits/study.db "
        "--study digits-all-timm-resnet18 --trial 3   best_model/ from trial 3 instead",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_stored_study_arguments(p)
    p.add_argument("--data", help="where the study's data lives on this host (default: where "
                   "its creator read it)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="device for scoring the test split and rebuilding the best model")
    p.add_argument("--artifacts", help="where the workers kept trials' trained tensors, if not "
                   "where the study's creator said")
    p.add_argument("--cache-dir", help="this host's activation cache folder")
    p.add_argument("--trial", type=int, metavar="N",
                   help="put completed trial N in best_model/ instead of the recommended one, "
                   "e.g. the best estimate when a tie went to a cheaper config (the report "
                   "names it); recommendation.json still records what the rule chose")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "recommend", help="rank strategies from past results, without training",
        description="Answer from the prior (past studies and leaderboards) which strategies "
        "and configs should win for a problem like yours, by nearness in modality, examples "
        "per class, classes, backbone size and — when DATA is given — LogME, a cheap score of "
        "how well the frozen backbone's features fit your labels. Nothing is trained.",
        epilog="examples:\n  autotl recommend --modality image --n-per-class 20 --n-classes 10"
        "\n  autotl recommend ./my_images --backbone offline:efficientnet-lite0 --image-size 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", nargs="?", help="optional data (as for `autotl search`): infers "
                   "modality, classes and size, and adds LogME")
    p.add_argument("--modality", choices=["image", "text"], help="image or text")
    p.add_argument("--n-per-class", type=float, help="training examples per class")
    p.add_argument("--n-classes", type=int, help="number of classes")
    p.add_argument("--backbone", help="the backbone you will use (`autotl list backbones`)")
    p.add_argument("--image-size", type=int, help="image size for LogME features (with DATA)")
    p.add_argument("--prior", default="default",
                   help="'default' (shipped) or a prior JSON file (format: autotl.prior)")
    p.add_argument("--top", type=int, default=None, help="show only the best N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser(
        "predict", help="classify images or texts with a search's best model",
        description="Load the best model a search saved (RUN is its --out folder) and print "
        "the most likely classes for each input: image files for image models; for text "
        "models, each argument is a text, or a file with one text per line.",
    )
    p.add_argument("run", metavar="RUN", help="a search's output folder (or its best_model/)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, texts or text files")
    p.add_argument("--top-k", type=int, default=1, help="classes to show per input (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=cmd_predict)
    add_bench_commands(sub)
    return parser


def add_bench_commands(sub: Any) -> None:
    """``bench``, ``leaderboard`` and ``prior build``: the benchmark wing (autotl.bench)."""
    p = sub.add_parser(
        "bench", help="run a benchmark suite: oracle grid, autotl and baselines → result rows",
        description="Run a suite file's tasks at each size: the oracle (every config of the "
        "suite's grid, 2+ seeds, pruning off, each scored on the test split), autotl (a search "
        "with a budget of --budget × the oracle's training seconds, per search seed, its prior "
        "never holding the task's data) and the fixed baselines. Rows go to OUT/results.jsonl "
        "and the leaderboard to OUT/leaderboard/; rerunning skips finished runs.",
        epilog="examples:\n  autotl bench benchmarks/suites/smoke.toml\n"
        "  autotl bench benchmarks/suites/standard.toml --tasks digits-mobilenetv2-32px "
        "--methods oracle,autotl --out runs/bench-digits\n"
        "  autotl bench benchmarks/suites/small.toml --sizes 5 --draws 2 --out runs/small-d2"
        "   # one draw, beside other processes",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", metavar="SUITE", help="a suite file (TOML), e.g. "
                   "benchmarks/suites/smoke.toml")
    p.add_argument("--tasks", help="only these tasks (comma-separated names)")
    p.add_argument("--methods", help="only these methods (comma-separated: oracle, autotl, "
                   "autotl-one-split, and the suite's baselines)")
    p.add_argument("--sizes", help="only these sizes of each task (comma-separated examples "
                   "per class, or 'all'), e.g. 5,20")
    p.add_argument("--draws", help="only these draws of the training rows, for a suite with "
                   "draws = N (comma-separated, numbered from 0), e.g. 1,2: lets several "
                   "processes, each with its own --out, share a suite's draws")
    p.add_argument("--budget", type=float, help="autotl's budget as a fraction of the "
                   "oracle's training seconds (default: the suite's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--out", help="output folder (default: runs/bench-<suite name>)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "leaderboard", help="rank methods from benchmark results: regret, wins, plots",
        description="Merge benchmark result rows (.jsonl files, folders of them) and autotl "
        "study storages (sqlite URL, .db file, or a search's output folder) and write "
        "leaderboard.md, leaderboard.csv and a self-contained leaderboard.html: test accuracy "
        "and regret against the exhaustive oracle (with paired-bootstrap intervals) per task "
        "and size, each method's mean regret and wins, the mean regret over draws of the "
        "training rows with its interval (per protocol), accuracy against size and compute.",
        epilog="examples:\n  autotl leaderboard benchmarks/results\n"
        "  autotl leaderboard runs/bench-smoke my-tool.jsonl --out runs/leaderboard",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files, folders of them, or study storages")
    p.add_argument("--out", default="runs/leaderboard",
                   help="folder for the three files (default: runs/leaderboard)")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("prior", help="build a prior file from past results",
                       description="Work with priors: past results that seed a search.")
    prior_sub = p.add_subparsers(dest="prior_command", metavar="ACTION", required=True)
    b = prior_sub.add_parser(
        "build", help="turn size maps and result rows into a prior file",
        description="Turn size maps (size_map.json from `autotl search --sizes`) and benchmark "
        "result rows (.jsonl, folders, study storages) into a prior file that `--prior FILE` "
        "reads: one record per dataset, size and strategy, each with its data fingerprint so "
        "a search or benchmark can leave its own dataset out. A prior file among the sources "
        "keeps its records, so `autotl prior build old-prior.json new-rows.jsonl -o new.json` "
        "extends a prior.")
    b.add_argument("sources", nargs="+", metavar="RESULTS",
                   help="size_map.json files, prior files, result rows, folders or study "
                   "storages")
    b.add_argument("-o", "--out", required=True, help="prior file to write (JSON)")
    b.add_argument("--description", default="", help="what produced the results")
    b.set_defaults(func=cmd_prior_build)


def _add_stored_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=None,
                        help="the study's storage URL (postgresql://…, sqlite:///…, "
                        "journal:///…); default: $AUTOTL_STORAGE, which keeps a password off "
                        "the command line")
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--out", default=None,
                        help="this host's output folder (default: runs/<study>)")


def _storage_arg(args: argparse.Namespace) -> str:
    import os

    from autotl.worker import STORAGE_ENV

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if not storage:
        raise AutoTLError(f"no storage given: pass --storage URL (or set ${STORAGE_ENV}), the "
                          "storage the study was created in.")
    return storage


def _flag_type(annotation: Any) -> tuple[Any, bool]:
    """argparse ``type`` for a SearchConfig field annotation, and whether it is a bool."""
    hint = typing.get_type_hints(SearchConfig)[annotation]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args and (typing.get_origin(hint) in (typing.Union, types.UnionType)) \
        else hint
    if base is bool:
        return None, True
    if typing.get_origin(base) is list:
        return lambda s: [v.strip() for v in s.split(",") if v.strip()], False
    return base, False


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per SearchConfig field, with the field's help text and default."""
    parser.add_argument("data", nargs="?", help=SearchConfig.field_help()["data"])
    parser.add_argument("--config", metavar="FILE.toml",
                        help="read settings from a TOML file (flags given here win)")
    defaults = SearchConfig()
    for f in dataclasses.fields(SearchConfig):
        if f.name == "data":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, is_bool = _flag_type(f.name)
        default = getattr(defaults, f.name)
        help_text = f.metadata.get("help", "")
        if is_bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{help_text} (default: {default})")
        else:
            shown = "" if default is None else f" (default: {default})"
            parser.add_argument(flag, dest=f.name, type=kind, default=None,
                                metavar=f.name.upper(), help=help_text + shown)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SearchConfig)
              if getattr(args, f.name, None) is not None}
    if args.config:
        return SearchConfig.from_toml(args.config, **values)
    if not values.get("data"):
        raise AutoTLError("no data given: pass DATA (a dataset name, folder or file) or "
                          "--config FILE.toml; `autotl list datasets` shows the built-in ones.")
    return SearchConfig.from_mapping(values, source="command line")


# -- commands ----------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace, plugins: Plugins) -> int:
    from autotl.hookspecs import PLUGIN_API_VERSION
    from autotl.plugins import autotl_version

    plugins.fill_all()
    if args.json:
        print(json.dumps({
            "autotl": autotl_version(),
            "plugin_api": PLUGIN_API_VERSION,
            "plugins": [dataclasses.asdict(i) for i in plugins.info.values()],
            "skipped": [dataclasses.asdict(f) for f in plugins.failures],
            "blocked": plugins.blocked,
        }, indent=2))
        return 0
    width = max((len(n) for n in plugins.info), default=10)
    print(f"autotl {autotl_version()}, plugin API {PLUGIN_API_VERSION}\n")
    for info in plugins.info.values():
        api = f"  (plugin API {info.api})" if info.api else ""
        print(f"{info.name:<{width}}  {info.version or '-':<8}  {info.source}{api}")
        for kind, names in sorted(info.registered.items()):
            print(f"{'':<{width}}    {PLURALS[kind]}: {', '.join(names)}")
        if info.hooks:
            print(f"{'':<{width}}    hooks: {', '.join(info.hooks)}")
    for name in plugins.blocked:
        print(f"{name:<{width}}  blocked by {DISABLE_ENV}")
    if plugins.failures:
        print("\nskipped (broken, or made for another plugin API):")
        for failure in plugins.failures:
            print(f"  {failure.name}: {failure.stage}: {failure.error}")
    return 0


def cmd_list(args: argparse.Namespace, plugins: Plugins) -> int:
    kind = KINDS[args.kind]
    registry = plugins.registry(kind)
    specs = registry.list(args.pattern)
    namespaces = [ns for ns in registry.namespaces
                  if args.pattern == "*" or args.pattern.startswith(ns.prefix + ":")]
    if args.json:
        print(json.dumps({
            "names": [{"name": s.name, "provider": s.provider, "description": s.description,
                       **({"modality": s.modality} if hasattr(s, "modality") else {})}
                      for s in specs],
            "namespaces": [{"prefix": ns.prefix, "provider": ns.provider,
                            "description": ns.description} for ns in namespaces],
        }, indent=2))
        return 0
    rows = [(s.name, getattr(s, "modality", ""), s.description, s.provider) for s in specs]
    rows += [(f"{ns.prefix}:<name>", "", ns.description, ns.provider) for ns in namespaces]
    if not rows:
        print(f"no {args.kind} match {args.pattern!r}")
        return 1
    width = max(len(r[0]) for r in rows)
    for name, modality, description, provider in rows:
        modality = f"{modality:<6} " if any(r[1] for r in rows) else ""
        print(f"{name:<{width}}  {modality}{description}  [{provider}]")
    return 0


def cmd_search(args: argparse.Namespace, plugins: Plugins) -> int:
    import optuna

    from autotl.study import search

    # The command owns its process: Optuna's study-created notices (a size map's re-run studies
    # among them) would interleave with autotl's own log.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = config_from_args(args)
    result = search(config, plugins=plugins)  # a Recommendation, a SizeMap, or None
    if result is None:  # --workers 0: the study is created; workers elsewhere run it
        print("study created; start workers with `autotl worker --storage URL --study NAME` "
              "(or $AUTOTL_STORAGE), then write the outputs with `autotl report`.")
        return 0
    print(result.summary())
    return 0


def cmd_worker(args: argparse.Namespace, plugins: Plugins) -> int:
    from pathlib import Path

    from autotl.worker import run_worker

    ran = run_worker(_storage_arg(args), args.study, data=args.data,
                     out=Path(args.out) if args.out else None,
                     cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                     device=args.device, index=args.index, plugins=plugins,
                     artifacts=Path(args.artifacts) if args.artifacts else None)
    print(f"worker done: ran {ran} trials of study {args.study}")
    return 0


def cmd_report(args: argparse.Namespace, plugins: Plugins) -> int:
    from pathlib import Path

    from autotl.worker import write_report

    result = write_report(_storage_arg(args), args.study, data=args.data,
                          out=Path(args.out) if args.out else None, device=args.device,
                          cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                          plugins=plugins,
                          artifacts=Path(args.artifacts) if args.artifacts else None,
                          trial=args.trial)
    print(result.summary())
    return 0


def cmd_recommend(args: argparse.Namespace, plugins: Plugins) -> int:
    from autotl.prior import recommend

    query: dict[str, Any] = {"modality": args.modality, "n_per_class": args.n_per_class,
                             "n_classes": args.n_classes, "backbone": args.backbone}
    if args.data:
        from autotl.study import describe_problem

        settings = {"data": args.data, "backbone": args.backbone, "prior": "none",
                    "image_size": args.image_size}
        if args.n_per_class:
            settings["n_per_class"] = int(args.n_per_class)
        described = describe_problem(SearchConfig.from_mapping(
            {k: v for k, v in settings.items() if v is not None}), plugins)
        query.update({k: v for k, v in described.items() if query.get(k) is None})
    missing = [f"--{k.replace('_', '-')}" for k in ("modality", "n_per_class", "n_classes")
               if query.get(k) is None]
    if missing:
        raise AutoTLError(f"recommend needs {', '.join(missing)} (or DATA to infer them).")
    suggestions = recommend(query["modality"], query["n_per_class"], query["n_classes"],
                            backbone=query.get("backbone"),
                            backbone_params=query.get("backbone_params"),
                            logme=query.get("logme"), prior=args.prior, top=args.top)
    if args.json:
        print(json.dumps({"query": {k: v for k, v in query.items() if k != "strategies"},
                          "suggestions": [s.to_dict() for s in suggestions]}, indent=2))
        return 0
    described = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in query.items() if v is not None and k != "strategies")
    print(f"problem: {described}")
    if not suggestions:
        print(f"the prior ({args.prior}) holds no results for {query['modality']} data; "
              "run `autotl search` (it measures instead of guessing).")
        return 0
    for rank, s in enumerate(suggestions, 1):
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in s.params.items())
        nearest = s.evidence[0] if s.evidence else None
        seen = (f"; nearest: {nearest['dataset']} at {nearest['n_per_class']:.0f}/class scored "
                f"{nearest['mean_accuracy']:.3f}" if nearest else "")
        print(f"{rank}. {s.strategy:<12} score {s.score:.3f} (support {s.support:.2f})  "
              f"{params}{seen}")
    return 0


def cmd_predict(args: argparse.Namespace, plugins: Plugins) -> int:
    from pathlib import Path

    from autotl.saved_model import load_model

    if args.top_k < 1:
        raise AutoTLError(f"--top-k must be at least 1, but got {args.top_k}.")
    loaded = load_model(args.run, plugins=plugins)
    names, items = [], []
    if loaded.backbone.modality == "image":
        from PIL import Image, UnidentifiedImageError

        for raw in args.inputs:
            try:
                with Image.open(raw) as image:
                    items.append(image.convert("RGB"))
            except (OSError, UnidentifiedImageError) as exc:
                raise AutoTLError(f"cannot read image {raw!r}: {exc}") from exc
            names.append(raw)
    else:
        for raw in args.inputs:
            path = Path(raw)
            lines = path.read_text().splitlines() if path.is_file() else [raw]
            for i, line in enumerate(lines):
                if line.strip():
                    names.append(f"{raw}:{i + 1}" if path.is_file() else raw)
                    items.append(line)
    probs = loaded.predict_proba(items)
    k = min(args.top_k, probs.shape[1])
    top = probs.topk(k, dim=-1)
    for name, values, indices in zip(names, top.values.tolist(), top.indices.tolist(),
                                     strict=True):
        ranked = [(loaded.class_names[i], v) for i, v in zip(indices, values, strict=True)]
        if args.json:
            print(json.dumps({"input": name, "predictions": [
                {"class": c, "probability": round(v, 6)} for c, v in ranked]}))
        else:
            print(f"{name}\t" + "  ".join(f"{c} ({v:.2f})" for c, v in ranked))
    return 0


def cmd_bench(args: argparse.Namespace, plugins: Plugins) -> int:
    from autotl.bench.leaderboard import Leaderboard
    from autotl.bench.runs import Bench
    from autotl.bench.suite import load_suite

    def names(text: str | None) -> list[str] | None:
        return [v.strip() for v in text.split(",") if v.strip()] if text else None

    suite = load_suite(args.suite).select(tasks=names(args.tasks), methods=names(args.methods),
                                          sizes=names(args.sizes), draws=names(args.draws))
    out = args.out or f"runs/bench-{suite.name}"
    rows = Bench(suite, out, budget=args.budget, device=args.device, plugins=plugins).run()
    board = Leaderboard(rows)
    board.write(f"{out}/leaderboard")
    print(f"{len(rows)} result rows in {out}/results.jsonl; leaderboard in {out}/leaderboard/")
    for m in board.summary:
        regret = "-" if m.mean_regret is None else f"{m.mean_regret:.3f}"
        fraction = ("-" if m.mean_compute_fraction is None
                    else f"{m.mean_compute_fraction:.2f}")
        print(f"  {m.method:<12} mean regret {regret}  wins {m.wins}/{m.groups}  "
              f"compute fraction {fraction}")
    return 0


def cmd_leaderboard(args: argparse.Namespace, plugins: Plugins) -> int:
    from autotl.bench.leaderboard import Leaderboard
    from autotl.bench.results import read_results

    board = Leaderboard(read_results(args.results))
    for path in board.write(args.out):
        print(f"wrote {path}")
    for m in board.summary:
        regret = "-" if m.mean_regret is None else f"{m.mean_regret:.3f}"
        print(f"  {m.method:<12} mean regret {regret}  wins {m.wins}/{m.groups}")
    return 0


def cmd_prior_build(args: argparse.Namespace, plugins: Plugins) -> int:
    from pathlib import Path

    from autotl.prior import build_prior

    prior = build_prior(args.sources, description=args.description)
    counts: dict[str, int] = {}
    for record in prior["records"]:
        counts[record["dataset"]] = counts.get(record["dataset"], 0) + 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(prior, indent=1) + "\n")
    print(f"wrote {len(prior['records'])} records to {out}: "
          + ", ".join(f"{d} {n}" for d, n in sorted(counts.items())))
    return 0


# -- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s" if not args.verbose else "%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # timm announces every weights file it reads
        logging.getLogger("timm").setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        plugins = load_plugins(strict=args.strict or None)
        return args.func(args, plugins)
    except AutoTLError as exc:
        print(f"autotl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nautotl: interrupted; finished trials are saved in the study storage, rerun "
              "the same command to resume.", file=sys.stderr)
        return 130
