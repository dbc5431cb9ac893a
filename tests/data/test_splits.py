"""prepare_splits: stratified, seeded validation drawn first; balanced per-class subsets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import pytest

from autotl.data import (
    LoadedData,
    hold_out_test,
    label_array,
    prepare_splits,
    select_classes,
    train_counts,
)
from autotl.errors import ConfigError, DataError

COUNTS = {"a": 50, "b": 20, "c": 10}


def make_data(counts: dict[str, int] = COUNTS) -> LoadedData:
    names = list(counts)
    labels = [c for c, n in enumerate(counts.values()) for _ in range(n)]
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    train = datasets.Dataset.from_dict(
        {"text": [f"row {i}" for i in range(len(labels))], "label": labels}, features=features)
    return LoadedData(name="toy", modality="text", train=train, test=None, class_names=names,
                      fingerprint="0" * 16)


def rows(ds: datasets.Dataset) -> list[str]:
    return list(ds["text"])


def per_class(ds: datasets.Dataset) -> dict[int, int]:
    return dict(sorted(Counter(ds["label"]).items()))


def test_validation_is_stratified_and_the_rest_trains():
    train, val = prepare_splits(make_data(), n_per_class=None, val_fraction=0.2, seed=0)
    assert per_class(val) == {0: 10, 1: 4, 2: 2}
    assert per_class(train) == {0: 40, 1: 16, 2: 8}
    assert not set(rows(train)) & set(rows(val))
    assert train.features == val.features == make_data().train.features


def test_validation_bounds_per_class():
    data = make_data({"big": 1000, "tiny": 2, "small": 3})
    train, val = prepare_splits(data, n_per_class=None, val_fraction=0.1, seed=0,
                                max_val_per_class=25)
    assert per_class(val) == {0: 25, 1: 1, 2: 1}  # capped; at least one
    _, val = prepare_splits(data, n_per_class=None, val_fraction=0.9, seed=0)
    assert per_class(val)[1] == 1  # one example always stays to train on


def test_n_per_class_is_balanced_and_disjoint_from_validation():
    train, val = prepare_splits(make_data(), n_per_class=5, val_fraction=0.2, seed=3)
    assert per_class(train) == {0: 5, 1: 5, 2: 5}
    assert not set(rows(train)) & set(rows(val))


def test_validation_does_not_depend_on_n_per_class():
    data = make_data()
    vals = [rows(prepare_splits(data, n_per_class=k, val_fraction=0.2, seed=7)[1])
            for k in (None, 1, 5, 8)]
    assert all(v == vals[0] for v in vals)


def test_smaller_training_sets_are_nested_in_larger_ones():
    data = make_data()
    small = set(rows(prepare_splits(data, n_per_class=2, val_fraction=0.2, seed=1)[0]))
    large = set(rows(prepare_splits(data, n_per_class=6, val_fraction=0.2, seed=1)[0]))
    assert small < large


def test_same_seed_same_splits_different_seed_different_splits():
    data = make_data()
    first = [rows(d) for d in prepare_splits(data, n_per_class=5, val_fraction=0.2, seed=11)]
    again = [rows(d) for d in prepare_splits(data, n_per_class=5, val_fraction=0.2, seed=11)]
    other = [rows(d) for d in prepare_splits(data, n_per_class=5, val_fraction=0.2, seed=12)]
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_too_large_n_per_class_names_classes_and_the_largest_that_works():
    with pytest.raises(DataError) as info:
        prepare_splits(make_data(), n_per_class=20, val_fraction=0.2, seed=0)
    message = str(info.value)
    assert "'b' (16)" in message and "'c' (8)" in message and "'a'" not in message
    assert "largest n_per_class that works is 8" in message
    train, _ = prepare_splits(make_data(), n_per_class=8, val_fraction=0.2, seed=0)
    assert per_class(train) == {0: 8, 1: 8, 2: 8}


def test_a_class_with_one_example_cannot_be_split():
    with pytest.raises(DataError, match=r"'lonely' \(1\).*at least 2"):
        prepare_splits(make_data({"a": 5, "lonely": 1}), n_per_class=None, val_fraction=0.2,
                       seed=0)


@pytest.mark.parametrize("kwargs", [{"val_fraction": 0.0}, {"val_fraction": 1.0},
                                    {"n_per_class": 0}, {"max_val_per_class": 0}, {"seed": -1}])
def test_bad_settings(kwargs):
    settings = {"n_per_class": None, "val_fraction": 0.2, "seed": 0} | kwargs
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        prepare_splits(make_data(), **settings)


def test_train_counts_is_the_ceiling_for_n_per_class():
    assert train_counts(make_data(), val_fraction=0.2) == {"a": 40, "b": 16, "c": 8}


def test_label_array_follows_the_selected_rows():
    train, _ = prepare_splits(make_data(), n_per_class=3, val_fraction=0.2, seed=0)
    labels = label_array(train)
    assert labels.dtype.name == "int64"
    assert labels.tolist() == list(train["label"])


def test_select_classes_keeps_and_re_encodes_only_those() -> None:
    from autotl.data import select_classes

    data = make_data()
    kept = select_classes(data, ["c", "a"])
    assert kept.class_names == ["c", "a"]
    assert kept.train.features["label"].names == ["c", "a"]
    assert per_class(kept.train) == {0: 10, 1: 50}
    assert all(text in rows(data.train) for text in rows(kept.train))
    assert kept.fingerprint != data.fingerprint


def test_select_classes_writes_nothing_beside_a_dataset_on_disk(tmp_path: Path) -> None:
    """Built-in datasets live in a shared cache folder that several processes (bench draws)
    select from at once: a file written there by one raced with the others."""
    data = make_data()
    data.train.save_to_disk(tmp_path / "train")
    before = sorted(p.name for p in (tmp_path / "train").iterdir())
    on_disk = LoadedData(name="toy", modality="text",
                         train=datasets.load_from_disk(str(tmp_path / "train")), test=None,
                         class_names=data.class_names, fingerprint=data.fingerprint)
    kept = select_classes(on_disk, ["c", "a"])
    assert per_class(kept.train) == {0: 10, 1: 50}
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == before


@pytest.mark.parametrize(("names", "message"), [
    (["a", "zebra"], "'zebra'.*its classes are"),
    (["a"], "at least 2 distinct classes"),
])
def test_select_classes_rejects_bad_names(names: list[str], message: str) -> None:
    from autotl.data import select_classes

    with pytest.raises(DataError, match=message):
        select_classes(make_data(), names)


# -- a validation set the data brings ---------------------------------------------------------


def with_given_val(data: LoadedData) -> LoadedData:
    import dataclasses

    val = datasets.Dataset.from_dict({"text": ["v0", "v1", "v2"], "label": [2, 0, 1]},
                                      features=data.train.features)
    return dataclasses.replace(data, val=val, val_source="--val-data v.csv",
                               val_fingerprint="1" * 16)


def test_a_given_validation_set_is_used_row_for_row_and_every_training_row_trains():
    data = with_given_val(make_data())
    train, val = prepare_splits(data, n_per_class=None, val_fraction=0.2, seed=0)
    assert rows(val) == ["v0", "v1", "v2"] and val["label"] == [2, 0, 1]
    assert rows(train) == rows(data.train)  # nothing drawn out of training, order kept
    # val_fraction does not apply: another one changes nothing.
    assert rows(prepare_splits(data, n_per_class=None, val_fraction=0.5, seed=0)[0]) \
        == rows(train)
    assert train_counts(data, val_fraction=0.2) == COUNTS


def test_n_per_class_subsamples_training_beside_a_given_validation_set():
    data = with_given_val(make_data())
    small, val = prepare_splits(data, n_per_class=5, val_fraction=0.2, seed=0)
    large, _ = prepare_splits(data, n_per_class=10, val_fraction=0.2, seed=0)
    assert per_class(small) == {0: 5, 1: 5, 2: 5} and rows(val) == ["v0", "v1", "v2"]
    assert set(rows(small)) < set(rows(large))  # nested across sizes
    with pytest.raises(DataError, match=r"n_per_class=11 .* class\(es\) 'c' \(10\).*is 10"):
        prepare_splits(data, n_per_class=11, val_fraction=0.2, seed=0)


def test_classes_apply_to_a_given_validation_set():
    data = select_classes(with_given_val(make_data()), ["c", "a"])
    assert data.val["text"] == ["v0", "v1"] and data.val["label"] == [0, 1]
    assert data.val.features["label"].names == ["c", "a"]
    assert data.val_fingerprint not in (None, "1" * 16)
    with pytest.raises(DataError, match="leaves no row of the validation set"):
        import dataclasses

        only_b = dataclasses.replace(with_given_val(make_data()),
                                     val=with_given_val(make_data()).val.select([2]))
        select_classes(only_b, ["a", "c"])


def test_test_fraction_holds_out_only_training_rows_beside_a_given_validation_set():
    data = hold_out_test(with_given_val(make_data()), 0.2, seed=0)
    assert rows(data.val) == ["v0", "v1", "v2"]
    assert len(data.train) + len(data.test) == sum(COUNTS.values())
    assert not set(rows(data.test)) & set(rows(data.val))
