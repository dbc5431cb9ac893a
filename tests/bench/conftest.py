"""A small hand-made benchmark: one task at one size, an oracle of three configs × two seeds,
autotl with two search seeds and one fixed baseline, on a 40-example test split."""

from __future__ import annotations

from typing import Any

import pytest

from autotl.bench.results import new_row

N_TEST = 40


def correct(right: int, offset: int = 0) -> str:
    """``right`` examples correct, starting at ``offset`` (wrapping), of N_TEST."""
    marks = ["0"] * N_TEST
    for i in range(right):
        marks[(offset + i) % N_TEST] = "1"
    return "".join(marks)


def row(method: str, strategy: str, params: dict[str, Any], seed: int, right: int,
        offset: int = 0, seconds: float = 10.0, **extra: Any) -> dict[str, Any]:
    values = dict(task="toy", dataset="toy-data", data_fingerprint="abc123", n_per_class=5,
                  n_test=N_TEST, n_classes=2, modality="image", protocol="p1",
                  backbone="test:cnn", method=method, strategy=strategy, params=params,
                  val_accuracy=0.5, test_accuracy=right / N_TEST,
                  test_correct=correct(right, offset), seed=seed, compute_seconds=seconds,
                  train_seconds=seconds, date="2026-11-29T09:00:00+00:00")
    values.update(extra)
    return new_row(**values)


A = {"lr": 0.01}
B = {"lr": 0.1}
C = {"lr": 0.001, "r": 8, "alpha": 16}


@pytest.fixture
def toy_rows() -> list[dict[str, Any]]:
    """Oracle: A scores 30 and 20 right (mean 25/40), B 10 and 30 (20/40), C 40 and 0 (20/40).
    autotl: 10 and 30 right on the examples A gets right first. full: 10 right."""
    return [
        row("oracle", "full", A, 0, 30), row("oracle", "full", A, 1, 20),
        row("oracle", "head-only", B, 0, 10, seconds=2.0),
        row("oracle", "head-only", B, 1, 30, seconds=2.0),
        row("oracle", "lora", C, 0, 40, seconds=6.0), row("oracle", "lora", C, 1, 0, seconds=6.0),
        row("autotl", "full", A, 0, 10, seconds=9.0), row("autotl", "head-only", B, 1, 30,
                                                           seconds=9.0),
        row("full", "full", A, 0, 10),
    ]
