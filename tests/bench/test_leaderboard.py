"""The leaderboard's three files, and its HTML page driven in a real headless Chromium."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import row

from autotl.bench.leaderboard import Leaderboard, non_dominated
from autotl.bench.results import write_rows
from autotl.cli import main
from autotl.errors import ConfigError


def _suite_rows(toy_rows: list[dict]) -> list[dict]:
    """The toy group at size 5, and a second size (20) and a second task, so the size plot
    has a line and the table has something to reorder."""
    at_20 = [dict(r, n_per_class=20, test_accuracy=min(1.0, r["test_accuracy"] + 0.1),
                  test_correct=None) for r in toy_rows]
    other = [dict(r, task="toy2", data_fingerprint="def456") for r in toy_rows]
    return toy_rows + at_20 + other


def test_leaderboard_files_hold_every_standing(toy_rows: list[dict], tmp_path: Path) -> None:
    write_rows(tmp_path / "rows.jsonl", _suite_rows(toy_rows))
    assert main(["leaderboard", str(tmp_path / "rows.jsonl"), "--out", str(tmp_path / "lb")]) == 0
    with open(tmp_path / "lb" / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    # 3 groups (toy@5, toy@20, toy2@5) × 3 methods
    assert len(table) == 9
    autotl = [r for r in table if r["method"] == "autotl" and r["task"] == "toy"
              and r["n_per_class"] == "5"][0]
    assert float(autotl["regret"]) == pytest.approx(25 / 40 - 20 / 40)
    assert float(autotl["regret_low"]) < float(autotl["regret"]) < float(autotl["regret_high"])
    assert float(autotl["noise_floor"]) == pytest.approx(0.5)
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "| autotl | 3 | 3 | 0.125 |" in md  # wins everywhere, regret 0.125 in each group
    assert "| full | 3 | 0 | 0.375 |" in md
    page = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") == 2 + 3  # size per task; compute per group
    assert "<script" in page and "http" not in page.split("<body>")[1]  # self-contained


def test_non_dominated_configs() -> None:
    points = [{"accuracy": 0.9, "seconds": 10}, {"accuracy": 0.8, "seconds": 2},
              {"accuracy": 0.7, "seconds": 5}, {"accuracy": 0.9, "seconds": 12}]
    assert non_dominated(points) == points[:2]


def test_rows_from_several_processors_are_named_with_the_groups_they_mix(
        toy_rows: list[dict]) -> None:
    amd, intel = "AMD EPYC, 2 cores", "Intel(R) Xeon(R) Processor, 2 cores"
    one = [dict(r, hardware=amd) for r in toy_rows]
    assert Leaderboard(one).machines() is None
    assert "Machines" not in Leaderboard(one).markdown()
    # The size-20 group all on one machine, the size-5 group's autotl rows on the other;
    # a row stored without its machine counts for neither.
    at_20 = [dict(r, n_per_class=20, protocol="real split_seed=3") for r in one]
    mixed = [dict(r, hardware=intel) if r["method"] == "autotl" else r for r in one]
    rows = mixed + at_20 + [dict(toy_rows[-1], method="lora", hardware=None)]
    board = Leaderboard(rows)
    text = board.machines()
    assert text is not None
    assert f"{amd}: {len(one) - 2 + len(at_20)} rows; {intel}: 2 rows" in text
    assert "toy at 5 per class (split seed 0)" in text
    assert "at 20 per class" not in text
    assert text in board.markdown()
    assert "more than one, and their regrets" in board.html()
    # The same rows on two machines but no group mixes them.
    apart = one + [dict(r, hardware=intel) for r in at_20]
    assert "No group compares rows from more than one." in Leaderboard(apart).machines()


def test_an_empty_leaderboard_is_refused() -> None:
    with pytest.raises(ConfigError, match="no result rows"):
        Leaderboard([])


def test_rendering_leaves_pyplot_and_its_backend_alone(toy_rows: list[dict],
                                                       tmp_path: Path) -> None:
    write_rows(tmp_path / "rows.jsonl", toy_rows)
    code = textwrap.dedent(f"""
        import sys, matplotlib
        before = matplotlib.get_backend()
        from autotl.cli import main
        assert main(["leaderboard", {str(tmp_path / 'rows.jsonl')!r}, "--out",
                     {str(tmp_path / 'lb')!r}]) == 0
        print("PYPLOT", "matplotlib.pyplot" in sys.modules, matplotlib.get_backend() == before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MPLBACKEND": "svg"})
    assert "PYPLOT False True" in out.stdout, out.stderr


def _browser():  # noqa: ANN202
    driver_path = shutil.which("chromedriver")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not (driver_path and browser_path):
        if os.environ.get("AUTOTL_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are missing; `make test` installs them "
                        "(Debian packages chromium and chromium-driver).")
        pytest.skip("needs chromium and chromedriver (`make test` installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path),
                            options=options)


@pytest.mark.browser
def test_leaderboard_page_sorts_and_shows_plots_in_chromium(toy_rows: list[dict],
                                                            tmp_path: Path) -> None:
    rows = _suite_rows(toy_rows) + [row("lora", "lora", {"lr": 0.001}, 0, 39, task="toy3",
                                        data_fingerprint="ghi")]
    paths = Leaderboard(rows).write(tmp_path)
    from selenium.webdriver.common.by import By

    browser = _browser()
    try:
        browser.get(paths[2].resolve().as_uri())
        body = browser.find_elements(By.CSS_SELECTOR, "#standings tbody tr")
        assert len(body) == 10  # 3 groups × 3 methods + toy3's lone lora row

        def column(index: int) -> list[str]:
            return [r.find_elements(By.TAG_NAME, "td")[index].text
                    for r in browser.find_elements(By.CSS_SELECTOR, "#standings tbody tr")]

        assert all(cell for cell in column(0))  # the table is filled
        before = column(3)
        header = browser.find_elements(By.CSS_SELECTOR, "#standings th")[3]  # test accuracy
        header.click()
        ascending = [float(v.split()[0]) for v in column(3)]
        assert ascending == sorted(ascending) and column(3) != before
        header.click()
        descending = [float(v.split()[0]) for v in column(3)]
        assert descending == sorted(ascending, reverse=True)
        assert column(2)[0] == "lora (win)"  # toy3's 39/40 is the best accuracy of all
        browser.find_elements(By.CSS_SELECTOR, "#standings th")[0].click()  # task, a string
        assert column(0) == sorted(column(0))
        plots = browser.find_elements(By.CSS_SELECTOR, "img.plot")
        assert len(plots) == 3 + 4  # size per task; compute per task and size
        for plot in plots:
            width = browser.execute_script("return arguments[0].naturalWidth", plot)
            assert width > 0 and plot.size["width"] > 0 and plot.size["height"] > 0
    finally:
        browser.quit()


def test_the_checked_in_rows_render(tmp_path: Path) -> None:
    results = Path(__file__).parents[2] / "benchmarks" / "results"
    assert main(["leaderboard", str(results), "--out", str(tmp_path)]) == 0
    with open(tmp_path / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert {"oracle", "autotl"} <= {r["method"] for r in table}
    assert all(r["regret_low"] for r in table if r["method"] != "oracle")  # every row paired
    assert (tmp_path / "leaderboard.html").stat().st_size > 10_000
