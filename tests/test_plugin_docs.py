"""docs/plugins.md stays true: every hook is documented there, and the page's example package,
assembled from its code blocks, installs, passes the conformance suites, shows up in
``autotl plugins`` and is searched."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autotl import hookspecs

DOCS = Path(__file__).parents[1] / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"```\w*\n# (autotl-example/\S+)\n(.*?)```", re.DOTALL)


def example_files() -> dict[str, str]:
    """The page's ``# autotl-example/…`` code blocks: path → content."""
    return {path: body for path, body in FILE_BLOCK.findall(DOCS.read_text())}


def test_every_hook_has_a_section_in_the_plugin_docs() -> None:
    headings = [line for line in DOCS.read_text().splitlines() if line.startswith("#")]
    missing = [hook for hook in hookspecs.hook_names()
               if not any(f"`{hook}`" in heading for heading in headings)]
    assert missing == [], f"hooks without a section in {DOCS.name}: {missing}"


def test_the_example_package_has_every_file_it_lists() -> None:
    files = example_files()
    assert set(files) == {
        "autotl-example/pyproject.toml", "autotl-example/autotl_example/__init__.py",
        "autotl-example/autotl_example/plugin.py", "autotl-example/autotl_example/networks.py",
        "autotl-example/tests/conftest.py", "autotl-example/tests/test_example.py"}
    plugin = files["autotl-example/autotl_example/plugin.py"]
    implemented = set(re.findall(r"^def (autotl_\w+)\(", plugin, re.MULTILINE))
    tests = files["autotl-example/tests/test_example.py"]
    implemented |= set(re.findall(r"def (autotl_create_\w+)\(self", tests))
    assert implemented == set(hookspecs.hook_names())  # a worked example of every hook


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n" \
                                f"{out.stderr[-3000:]}"
    return out


@pytest.mark.slow
def test_the_example_package_installs_passes_the_suites_and_is_searched(tmp_path: Path) -> None:
    for path, body in example_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
          "--no-build-isolation", "--target", str(site), str(tmp_path / "autotl-example")],
         dict(os.environ), tmp_path)
    # The installed copy (not the source folder) must be what Python finds.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path]),
           "AUTOTL_STRICT_PLUGINS": "1"}

    plugins = json.loads(_run([sys.executable, "-m", "autotl", "plugins", "--json"], env,
                              tmp_path).stdout)
    example = next(p for p in plugins["plugins"] if p["name"] == "example")
    assert "entry point from autotl-example" in example["source"]
    assert example["api"] == ">=1.1,<2"
    assert example["registered"] == {
        "backbone": ["example:tiny-cnn"], "head": ["example:cosine"],
        "strategy": ["example:top"], "dataset": ["example:stripes"]}
    assert example["hooks"] == ["autotl_trial_finished"]

    tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  str(tmp_path / "autotl-example" / "tests")], env, tmp_path / "autotl-example")
    summary = tests.stdout.strip().splitlines()[-1]
    assert re.search(r"\b[3-9]\d passed\b", summary) and "failed" not in summary, summary

    log = tmp_path / "trials.jsonl"
    out = tmp_path / "run"
    _run([sys.executable, "-m", "autotl", "search", "example:stripes",
          "--backbone", "example:tiny-cnn", "--heads", "example:cosine",
          "--strategies", "example:top,full", "--trials", "2", "--out", str(out),
          "--cache-dir", str(tmp_path / "cache"), "--min-steps", "4", "--max-steps", "4",
          "--eval-points", "1", "--prior", "none"],
         {**env, "AUTOTL_EXAMPLE_LOG": str(log)}, tmp_path)
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["strategy"] for r in rows) == ["example:top", "full"]
    assert {r["head"] for r in rows} == {"example:cosine"}
    recommendation = json.loads((out / "recommendation.json").read_text())
    assert recommendation["backbone"] == "example:tiny-cnn"
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["strategy"] for r in logged) == ["example:top", "full"]
    assert all(r["state"] == "complete" for r in logged)
