from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autotl.cli import main

TINY = ["--backbone", "timm:test_efficientnet", "--no-pretrained", "--n-per-class", "6",
        "--min-steps", "4", "--max-steps", "4", "--eval-points", "1", "--image-size", "32",
        "--strategies", "head-only,full"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotl", *args], capture_output=True,
                          text=True, timeout=300)


def test_python_m_autotl_lists_the_four_strategies() -> None:
    out = _run("list", "strategies")
    assert out.returncode == 0, out.stderr
    names = {line.split()[0] for line in out.stdout.splitlines()}
    assert {"full", "subset", "head-only", "lora"} <= names


@pytest.mark.parametrize("argv", [["list", "strategies"], ["list", "backbones"], ["plugins"],
                                  ["list", "datasets", "--json"]])
def test_listing_commands_do_not_import_torch(argv: list[str]) -> None:
    code = textwrap.dedent(f"""
        import sys
        from autotl.cli import main
        code = main({argv!r})
        heavy = [m for m in ("torch", "timm", "transformers", "datasets") if m in sys.modules]
        print("HEAVY", heavy, code)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "HEAVY [] 0" in out.stdout


def test_list_shows_how_open_namespaces_form_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "backbones"]) == 0
    text = capsys.readouterr().out
    assert "timm:<name>" in text and "any timm architecture" in text
    assert "hf:<name>" in text


def test_list_json_and_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "strategies", "head*", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["name"] for n in data["names"]] == ["head-only"]


def test_plugins_command_shows_versions_and_registrations(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["autotl.strategies"]["registered"]["strategy"] == [
        "full", "head-only", "lora", "subset"]
    assert by_name["extra-strategies"]["version"] == "0.1.0"


def test_search_help_teaches_every_setting() -> None:
    out = _run("search", "--help")
    assert out.returncode == 0
    for flag in ("--n-per-class", "--strategies", "--storage", "--timeout", "--config",
                 "--device", "--image-size", "--no-cache"):
        assert flag in out.stdout
    assert "examples:" in out.stdout
    assert "--val-data val.csv" in re.sub(r"\s+", " ", out.stdout)  # teaches by example


def test_errors_are_one_line_without_traceback() -> None:
    out = _run("search", "fashion-mnist", "--strategies", "ful", "--trials", "1")
    assert out.returncode == 2
    assert out.stderr.startswith("autotl: error: unknown strategy 'ful'")
    assert "Traceback" not in out.stderr
    missing = _run("search", "/no/such/folder")
    assert missing.returncode == 2 and "/no/such/folder" in missing.stderr


@pytest.mark.parametrize("kind", ["backbone", "head", "strategy", "dataset"])
def test_the_command_an_unknown_name_suggests_works(kind: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from autotl.errors import UnknownComponentError
    from autotl.plugins import load_plugins

    with pytest.raises(UnknownComponentError) as info:
        load_plugins().registry(kind).get("zz:nothing-like-it")
    suggested = re.search(r"`autotl (list [a-z]+)`", str(info.value))
    assert suggested, str(info.value)
    assert main(suggested.group(1).split()) == 0
    assert capsys.readouterr().out


def test_search_without_data_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search"]) == 2
    assert "no data given" in capsys.readouterr().err


def test_search_then_predict_from_the_command_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    config = tmp_path / "search.toml"
    config.write_text(f'data = "digits"\ntrials = 2\nout = "{out}"\nseed = 3\n')
    assert main(["search", "--config", str(config), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "For digits at 6 examples per class" in printed
    data = json.loads((out / "recommendation.json").read_text())
    assert data["n_trials"] == 2 and data["dataset"]["n_per_class"] == 6

    from PIL import Image
    image = tmp_path / "eight.png"
    Image.new("L", (8, 8), color=200).save(image)
    assert main(["predict", str(out), str(image), "--top-k", "3", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["input"] == str(image) and len(line["predictions"]) == 3
    assert {p["class"] for p in line["predictions"]} <= {str(d) for d in range(10)}


def test_bad_toml_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('data = "digits"\ntrails = 3\n')
    assert main(["search", "--config", str(config)]) == 2
    assert "'trails' (did you mean 'trials'?)" in capsys.readouterr().err


def test_a_rerun_with_other_strategies_exits_non_zero_naming_the_study(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["search", "digits", "--trials", "1", "--out", str(out), "--prior", "none", *TINY]
    assert main(args) == 0
    capsys.readouterr()
    changed = [a if a != "head-only,full" else "head-only" for a in args]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "study 'digits-6pc-timm-test_efficientnet'" in err and "strategies" in err
    assert "another --study name" in err
    with open(out / "trials.csv") as f:
        assert len(f.readlines()) == 2  # the header and the first run's one trial


def test_worker_without_a_storage_says_where_to_give_it(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTL_STORAGE", raising=False)
    assert main(["worker", "--study", "s"]) == 2
    assert "pass --storage URL (or set $AUTOTL_STORAGE)" in capsys.readouterr().err


def test_workers_on_sqlite_are_refused_with_what_to_do(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["search", "digits", "--workers", "2", "--storage",
                 f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    err = capsys.readouterr().err
    assert "SQLite is not safe for several processes" in err and "leave out --storage" in err
    assert not (tmp_path / "x.db").exists()


def test_workers_with_sizes_is_refused_with_what_to_do(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "digits", "--sizes", "5,10", "--workers", "2"]) == 2
    assert "run one `autotl search --n-per-class K --workers 2` per size" in \
        capsys.readouterr().err


def test_workers_0_creates_the_study_and_says_what_next(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    assert main(["search", "digits", "--workers", "0", "--storage", storage, "--study", "s",
                 "--out", str(tmp_path / "run"), *TINY]) == 0
    assert "study created; start workers with `autotl worker" in capsys.readouterr().out
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs["run"]["target"] == 20  # --trials' default, for the workers
    assert {t.state.name for t in study.trials} == {"WAITING"}  # queued, none run here
    assert not (tmp_path / "run" / "recommendation.json").exists()


def test_report_rewrites_the_outputs_of_a_stored_study(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["search", "digits", "--trials", "2", "--out", str(out), "--study", "s",
                 *TINY]) == 0
    first = json.loads((out / "recommendation.json").read_text())
    again = tmp_path / "again"
    assert main(["report", "--storage", f"sqlite:///{out / 'study.db'}", "--study", "s",
                 "--out", str(again), "--device", "cpu"]) == 0
    second = json.loads((again / "recommendation.json").read_text())
    assert second["recommended"]["trial"] == first["recommended"]["trial"]
    assert second["n_trials"] == 2 and (again / "trials.csv").is_file()
    assert (again / "best_model" / "model.json").is_file()


def test_val_data_beside_the_datas_own_validation_split_says_which_to_drop(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import datasets

    split = datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]})
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(tmp_path / "saved")
    val = tmp_path / "val.csv"
    val.write_text("text,label\ne,0\n")
    capsys.readouterr()  # save_to_disk's progress bars
    assert main(["search", str(tmp_path / "saved"), "--val-data", str(val)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autotl: error: ") and "Traceback" not in err
    assert "own validation split" in err and "Drop --val-data" in err


@pytest.mark.parametrize(("value", "message"), [
    ("20,lots", "project_to must be whole numbers of examples per class, e.g. --project-to "
                "20,100, but got 'lots'"),
    ("0,100", "project_to sizes must be at least 1 example per class, but got 0"),
])
def test_bad_project_to_is_refused_before_any_training(
        value: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["search", "digits", "--sizes", "5,10", "--project-to", value,
                 "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_project_to_without_sizes_is_refused_with_what_to_do(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["search", "digits", "--project-to", "20,100",
                 "--out", str(tmp_path / "run")]) == 2
    assert "so it needs --sizes (e.g. --sizes 5,10 --project-to 20,100)" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()
