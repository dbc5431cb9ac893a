"""load_data: every kind of source, and a clear DataError for every kind of bad input."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import datasets
import pytest

from autotl import DatasetSpec, hookimpl
from autotl.data import LoadedData, load_data
from autotl.errors import ConfigError, DataError
from autotl.plugins import load_plugins


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(entry_points=False)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Local inputs must never open a connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- image folders ---------------------------------------------------------------------------------


def test_image_folder_loads_classes_from_subfolders(image_folder, plugins, tmp_path):
    root = image_folder({"dog": 3, "cat": 2})
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"ignored")
    data = load_data(str(root), plugins)
    assert isinstance(data, LoadedData)
    assert data.name == str(root)
    assert data.modality == "image"
    assert data.class_names == ["cat", "dog"]
    assert data.train.column_names == ["image", "label"]
    assert isinstance(data.train.features["image"], datasets.Image)
    assert data.train.features["label"].names == ["cat", "dog"]
    assert sorted(data.train["label"]) == [0, 0, 1, 1, 1]
    assert data.train[0]["image"].size == (8, 8)
    assert data.test is None
    assert data.skipped == 0
    assert len(data.fingerprint) == 16


def test_image_folder_handles_mixed_modes_and_sizes(make_image, plugins, tmp_path):
    root = tmp_path / "mixed"
    modes = ["L", "RGB", "RGBA", "P"]
    for c in ("a", "b"):
        for i, mode in enumerate(modes):
            make_image(root / c / f"{mode}.png", mode=mode, size=(5 + 3 * i, 7 + i))
    make_image(root / "a" / "photo.jpg", mode="RGB", size=(20, 10))
    data = load_data(root, plugins)
    assert len(data.train) == 9
    seen_modes = set()
    for example in data.train:
        seen_modes.add(example["image"].mode)
        assert example["image"].convert("RGB").mode == "RGB"
    assert seen_modes == {"L", "RGB", "RGBA", "P"}


def test_image_folder_with_train_and_test_folders(image_folder, plugins, tmp_path):
    root = tmp_path / "split"
    image_folder({"a": 3, "b": 3}, root / "train")
    image_folder({"a": 1, "b": 2}, root / "test")
    data = load_data(root, plugins)
    assert (len(data.train), len(data.test)) == (6, 3)
    assert data.test.features["label"].names == ["a", "b"]


def test_missing_path_names_it_and_suggests_registered_names(plugins, tmp_path):
    missing = tmp_path / "nope" / "images"
    with pytest.raises(DataError, match="neither an existing file or folder") as info:
        load_data(str(missing), plugins)
    assert str(missing) in str(info.value)
    assert "must exist" in str(info.value)
    with pytest.raises(DataError, match="Did you mean 'fashion-mnist'"):
        load_data("fashion-mnst", plugins)


def test_missing_path_suggests_a_close_file_name(plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "reviews.csv", "text,label\na,x\n")
    with pytest.raises(DataError, match="Did you mean 'reviews.csv'"):
        load_data("reviews.cvs", plugins)


def test_empty_folder(plugins, tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found in") as info:
        load_data(tmp_path / "empty", plugins)
    assert str(tmp_path / "empty") in str(info.value)


def test_images_without_class_subfolders(make_image, plugins, tmp_path):
    make_image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class subfolders"):
        load_data(tmp_path / "flat", plugins)


def test_single_class(image_folder, plugins):
    root = image_folder({"cat": 4})
    with pytest.raises(DataError, match=r"one class folder \('cat'\).*at least 2 classes"):
        load_data(root, plugins)


def test_class_too_small_for_the_split(image_folder, plugins):
    root = image_folder({"sandal": 1, "boot": 3})
    with pytest.raises(DataError) as info:
        load_data(root, plugins)
    message = str(info.value)
    assert "class 'sandal' has 1 example in" in message
    assert str(root) in message
    assert "one to train, one to validate" in message


def test_unreadable_images_are_skipped_with_a_warning(image_folder, plugins, caplog):
    root = image_folder({"cat": 4, "dog": 4})
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "dog" / "empty.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="autotl.data.images"):
        data = load_data(root, plugins)
    assert data.skipped == 2
    assert len(data.train) == 8
    assert "cat/broken.png" in caplog.text and "dog/empty.jpg" in caplog.text
    assert "skipped 2 unreadable" in caplog.text


def test_mostly_unreadable_images_raise(image_folder, plugins):
    root = image_folder({"cat": 1, "dog": 1})
    for i in range(3):
        (root / "cat" / f"bad{i}.png").write_text("not a png")
    with pytest.raises(DataError, match=r"3 of 5 images .* unreadable") as info:
        load_data(root, plugins)
    assert "cat/bad0.png" in str(info.value)


def test_image_folder_fingerprint_follows_content(image_folder, make_image, plugins):
    root = image_folder({"cat": 2, "dog": 2})
    first = load_data(root, plugins).fingerprint
    assert load_data(root, plugins).fingerprint == first
    make_image(root / "cat" / "0.png", shade=200)
    assert load_data(root, plugins).fingerprint != first


# -- tables ----------------------------------------------------------------------------------------


def test_csv_text_and_label_are_detected(plugins, tmp_path):
    path = write_csv(tmp_path / "reviews.csv",
                     "id,review,stars\n1,great,good\n2,bad,poor\n3,fine,good\n4,NA,poor\n")
    data = load_data(path, plugins)
    assert data.modality == "text"
    assert data.train.column_names == ["text", "label"]
    assert data.class_names == ["good", "poor"]
    assert data.train["text"] == ["great", "bad", "fine", "NA"]  # "NA" is text, not missing
    assert data.train["label"] == [0, 1, 0, 1]


def test_integer_labels_sort_as_numbers(plugins, tmp_path):
    rows = "".join(f"t{i},{label}\n" for i, label in enumerate([10, 2, 1, 10, 2, 1]))
    data = load_data(write_csv(tmp_path / "d.csv", "sentence,label\n" + rows), plugins)
    assert data.class_names == ["1", "2", "10"]
    assert data.train["label"] == [2, 1, 0, 2, 1, 0]


def test_tsv(plugins, tmp_path):
    path = write_csv(tmp_path / "d.tsv", "text\tlabel\na, b\tx\nc\ty\nd\tx\ne\ty\n")
    data = load_data(path, plugins)
    assert data.train["text"][0] == "a, b"


@pytest.mark.parametrize("layout", ["records", "wrapped", "columns", "jsonl"])
def test_json_layouts(plugins, tmp_path, layout):
    records = [{"text": f"t{i}", "category": "ab"[i % 2], "extra": [i]} for i in range(4)]
    if layout == "jsonl":
        path = tmp_path / "d.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    else:
        payload = {"records": records, "wrapped": {"data": records},
                   "columns": {k: [r[k] for r in records] for k in records[0]}}[layout]
        path = tmp_path / "d.json"
        path.write_text(json.dumps(payload))
    data = load_data(path, plugins)
    assert data.class_names == ["a", "b"]
    assert data.train.column_names == ["text", "label"]
    assert len(data.train) == 4


def test_parquet_text(plugins, tmp_path):
    path = tmp_path / "d.parquet"
    datasets.Dataset.from_dict({"content": ["a", "b", "c", "d"], "label": [0, 1, 0, 1],
                                "n": [1, 2, 3, 4]}).to_parquet(path)
    data = load_data(path, plugins)
    assert data.modality == "text"
    assert data.train["text"] == ["a", "b", "c", "d"]
    assert data.class_names == ["0", "1"]


def test_parquet_with_image_feature(make_image, plugins, tmp_path):
    files = [make_image(tmp_path / f"{i}.png", size=(4 + i, 4)) for i in range(4)]
    features = datasets.Features({"img": datasets.Image(), "target": datasets.Value("string")})
    ds = datasets.Dataset.from_dict(
        {"img": [{"bytes": f.read_bytes(), "path": None} for f in files],
         "target": ["x", "y", "x", "y"]}, features=features)
    path = tmp_path / "imgs.parquet"
    ds.to_parquet(path)
    for f in files:
        f.unlink()  # the bytes live in the table
    data = load_data(path, plugins)
    assert data.modality == "image"
    assert data.class_names == ["x", "y"]
    assert data.train[3]["image"].size == (7, 4)


def test_csv_with_relative_image_paths(make_image, plugins, tmp_path):
    for i in range(4):
        make_image(tmp_path / "pics" / f"{i}.png", mode="L")
    path = write_csv(tmp_path / "d.csv", "file,label\n" + "".join(
        f"pics/{i}.png,{'ab'[i % 2]}\n" for i in range(4)))
    data = load_data(path, plugins)
    assert data.modality == "image"
    assert data.train[0]["image"].mode == "L"


def test_table_with_missing_image_files_skips_them(make_image, plugins, tmp_path, caplog):
    for i in range(5):
        make_image(tmp_path / f"{i}.png")
    path = write_csv(tmp_path / "d.csv", "image,label\n" + "".join(
        f"{i}.png,{'ab'[i % 2]}\n" for i in range(6)))
    with caplog.at_level(logging.WARNING):
        data = load_data(path, plugins)
    assert data.skipped == 1
    assert "row 5 (5.png)" in caplog.text


def test_explicit_columns_resolve_ambiguity(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "headline,summary,kind\na,b,x\nc,d,y\ne,f,x\ng,h,y\n")
    with pytest.raises(DataError, match="cannot tell which column") as info:
        load_data(path, plugins, label_column="kind")
    assert "'headline'" in str(info.value) and "text_column=" in str(info.value)
    data = load_data(path, plugins, text_column="summary", label_column="kind")
    assert data.train["text"] == ["b", "d", "f", "h"]


def test_missing_label_column_lists_the_columns(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,rank\na,1\nb,2\n")
    with pytest.raises(DataError, match="no label column") as info:
        load_data(path, plugins)
    assert "'text', 'rank'" in str(info.value)
    assert "--label-column" in str(info.value)


def test_named_column_that_does_not_exist(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,1\nb,2\n")
    with pytest.raises(DataError, match=r"label_column='lable' is not a column") as info:
        load_data(path, plugins, label_column="lable")
    assert "Did you mean 'label'" in str(info.value)


def test_non_text_value_names_row_and_value(plugins, tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "ok", "label": "a"}, {"text": "fine", "label": "b"},
            {"text": 42, "label": "a"}, {"text": "x", "label": "b"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"row 2 of .* holds int 42 in text column 'text'"):
        load_data(path, plugins)


def test_empty_text_cell_names_row(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,x\n,y\nb,x\nc,y\n")
    with pytest.raises(DataError, match=r"row 1 of .*d.csv is empty in text column 'text'"):
        load_data(path, plugins)


def test_missing_label_names_row(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,x\nb,y\nc,\nd,y\n")
    with pytest.raises(DataError, match=r"row 2 of .* has no label"):
        load_data(path, plugins)


def test_fractional_label_is_rejected(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,0.5\nb,1.5\n")
    with pytest.raises(DataError, match=r"row 0 .* label 0.5"):
        load_data(path, plugins)


def test_single_class_in_a_table(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(DataError, match=r"single class \('x'\)"):
        load_data(path, plugins)


def test_small_class_in_a_table(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,x\nb,x\nc,y\n")
    with pytest.raises(DataError, match="class 'y' has 1 example in .*d.csv"):
        load_data(path, plugins)


def test_bad_json_line(plugins, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": oops}\n')
    with pytest.raises(DataError, match="line 2 of .* is not valid JSON"):
        load_data(path, plugins)


def test_empty_csv(plugins, tmp_path):
    with pytest.raises(DataError, match="is empty"):
        load_data(write_csv(tmp_path / "d.csv", ""), plugins)


def test_unsupported_file(plugins, tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\0")
    with pytest.raises(DataError, match=r"cannot read .*model.bin: a .bin file"):
        load_data(path, plugins)


def test_table_fingerprint_follows_content(plugins, tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    first = load_data(path, plugins).fingerprint
    copy = write_csv(tmp_path / "copy.csv", path.read_text())
    assert load_data(copy, plugins).fingerprint == first
    write_csv(path, "text,label\na,x\nb,y\nc,x\nd,x\ne,y\n")
    assert load_data(path, plugins).fingerprint != first


# -- save_to_disk folders --------------------------------------------------------------------------


def test_saved_dataset_dict_with_test_split(plugins, tmp_path):
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["a", "b", "c", "d"],
                                             "labels": ["neg", "pos", "neg", "pos"]}),
        "test": datasets.Dataset.from_dict({"sentence": ["e", "f"], "labels": ["pos", "neg"]}),
    })
    dd.save_to_disk(tmp_path / "saved")
    data = load_data(tmp_path / "saved", plugins)
    assert data.modality == "text"
    assert data.class_names == ["neg", "pos"]
    assert data.test is not None and data.test["label"] == [1, 0]
    assert data.test.features["label"] == data.train.features["label"]
    assert load_data(tmp_path / "saved", plugins).fingerprint == data.fingerprint


def test_saved_test_split_with_an_unknown_label(plugins, tmp_path):
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"],
                                             "label": ["x", "y", "x", "y"]}),
        "test": datasets.Dataset.from_dict({"text": ["e"], "label": ["z"]}),
    }).save_to_disk(tmp_path / "saved")
    with pytest.raises(DataError, match="row 0 of the test split .* has label 'z'"):
        load_data(tmp_path / "saved", plugins)


def test_saved_image_dataset_with_class_label(make_image, plugins, tmp_path):
    files = [make_image(tmp_path / f"{i}.png", mode="RGBA") for i in range(4)]
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict({"image": [str(f) for f in files], "label": [0, 1, 0, 1]},
                                    features=features)
    ds.save_to_disk(tmp_path / "saved")  # embeds the bytes
    for f in files:
        f.unlink()
    data = load_data(tmp_path / "saved", plugins)
    assert data.modality == "image"
    assert data.class_names == ["a", "b"]
    assert data.train[1]["image"].mode == "RGBA"


# -- registered datasets ---------------------------------------------------------------------------


class TinyPlugin:
    @staticmethod
    @hookimpl
    def autotl_register_datasets(registry):
        registry.add(DatasetSpec(
            name="test:tiny", modality="text",
            load=lambda: datasets.DatasetDict({"train": datasets.Dataset.from_dict(
                {"text": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]})})))
        registry.add(DatasetSpec(name="test:broken", modality="text",
                                 load=lambda: 1 / 0))
        # As a hub dataset (hf:) comes: train, test and a `valid` split.
        registry.add(DatasetSpec(
            name="test:hub", modality="text",
            load=lambda: datasets.DatasetDict({
                "train": datasets.Dataset.from_dict(
                    {"text": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]}),
                "test": datasets.Dataset.from_dict({"text": ["t"], "label": ["x"]}),
                "valid": datasets.Dataset.from_dict({"text": ["v", "w"], "label": ["y", "x"]}),
            })))


def test_registered_dataset_from_a_plugin():
    plugins = load_plugins(entry_points=False, extra=[("tiny", TinyPlugin)])
    data = load_data("test:tiny", plugins)
    assert data.name == "test:tiny"
    assert data.class_names == ["x", "y"]
    assert load_data("test:tiny", plugins).fingerprint == data.fingerprint


def test_a_registered_datasets_valid_split_is_its_validation_set(caplog):
    plugins = load_plugins(entry_points=False, extra=[("tiny", TinyPlugin)])
    with caplog.at_level(logging.INFO, logger="autotl"):
        data = load_data("test:hub", plugins)
    assert data.val["text"] == ["v", "w"] and data.val["label"] == [1, 0]
    assert data.val_source == "the data's own `valid` split" and data.test["text"] == ["t"]
    assert "validation: the data's own `valid` split (2 rows), used as given" in caplog.text


def test_a_failing_registered_dataset_names_its_plugin():
    plugins = load_plugins(entry_points=False, extra=[("tiny", TinyPlugin)])
    with pytest.raises(DataError, match=r"'test:broken' \(from plugin 'tiny'\) failed to load"):
        load_data("test:broken", plugins)


def test_both_input_columns_given(plugins, tmp_path):
    with pytest.raises(DataError, match="not both"):
        load_data(tmp_path, plugins, text_column="a", image_column="b")


def test_classes_called_train_and_test_are_classes(image_folder, plugins):
    root = image_folder({"train": 2, "test": 2})
    data = load_data(root, plugins)
    assert data.class_names == ["test", "train"] and data.test is None


def test_unlabelled_test_split_is_dropped_and_validation_stays_validation(plugins, tmp_path):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["x", "y"])})

    def split(labels):
        return datasets.Dataset.from_dict({"text": [str(i) for i in range(len(labels))],
                                           "label": labels}, features=features)

    datasets.DatasetDict({"train": split([0, 1, 0, 1]), "test": split([-1, -1]),
                          "validation": split([1, 0, 1])}).save_to_disk(tmp_path / "glue")
    data = load_data(tmp_path / "glue", plugins)
    assert data.test is None
    assert data.val is not None and data.val["label"] == [1, 0, 1]
    assert data.val_source == "the data's own `validation` split"


def test_unreadable_image_in_a_saved_dataset_is_skipped(make_image, plugins, tmp_path):
    good = [make_image(tmp_path / f"{i}.png").read_bytes() for i in range(4)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in [*good, b"broken"]],
         "label": ["a", "b", "a", "b", "a"]}, features=features).save_to_disk(tmp_path / "s")
    before = sorted(p.name for p in (tmp_path / "s").iterdir())
    data = load_data(tmp_path / "s", plugins)
    assert data.skipped == 1 and len(data.train) == 4
    assert data.train["label"] == [0, 1, 0, 1]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == before  # nothing written there


def test_one_example_in_every_class_loads_for_a_prior_only_recommendation(image_folder,
                                                                          plugins):
    root = image_folder({"sandal": 1, "boot": 1})
    assert len(load_data(root, plugins).train) == 2


# -- a validation set the data brings ---------------------------------------------------------


def text_split(texts, labels):
    return datasets.Dataset.from_dict({"text": texts, "label": labels})


@pytest.mark.parametrize("name", ["validation", "valid", "val"])
def test_saved_validation_split_is_the_validation_set_row_for_row(plugins, tmp_path, name):
    datasets.DatasetDict({
        "train": text_split(["a", "b", "c", "d"], ["x", "y", "x", "y"]),
        "test": text_split(["t1", "t2"], ["y", "x"]),
        name: text_split(["v1", "v2", "v3"], ["y", "y", "x"]),
    }).save_to_disk(tmp_path / "saved")
    data = load_data(tmp_path / "saved", plugins)
    assert data.val["text"] == ["v1", "v2", "v3"] and data.val["label"] == [1, 1, 0]
    assert data.val.features["label"] == data.train.features["label"]
    assert data.train["text"] == ["a", "b", "c", "d"] and data.test["text"] == ["t1", "t2"]
    assert data.val_source == f"the data's own `{name}` split"
    assert data.val_fingerprint and data.val_fingerprint != data.fingerprint


def test_two_validation_splits_are_ambiguous(plugins, tmp_path):
    datasets.DatasetDict({
        "train": text_split(["a", "b", "c", "d"], ["x", "y", "x", "y"]),
        "validation": text_split(["v"], ["x"]), "val": text_split(["w"], ["y"]),
    }).save_to_disk(tmp_path / "saved")
    with pytest.raises(DataError, match=r"validation splits \['validation', 'val'\].*Keep one"):
        load_data(tmp_path / "saved", plugins)


def test_saved_validation_split_with_an_unknown_label(plugins, tmp_path):
    datasets.DatasetDict({
        "train": text_split(["a", "b", "c", "d"], ["x", "y", "x", "y"]),
        "validation": text_split(["e"], ["z"]),
    }).save_to_disk(tmp_path / "saved")
    with pytest.raises(DataError, match="row 0 of the validation split .* has label 'z'"):
        load_data(tmp_path / "saved", plugins)


@pytest.mark.parametrize("folder", ["val", "validation"])
def test_image_folder_with_a_val_folder_beside_train(image_folder, plugins, tmp_path, folder):
    root = tmp_path / "split"
    image_folder({"a": 3, "b": 3}, root / "train")
    image_folder({"a": 1, "b": 2}, root / "test")
    image_folder({"b": 2}, root / folder)  # a class may be missing from validation
    data = load_data(root, plugins)
    assert data.class_names == ["a", "b"]
    assert (len(data.train), len(data.test), len(data.val)) == (6, 3, 2)
    assert data.val["label"] == [1, 1]
    paths = [image["path"] for image in data.val.with_format("arrow")["image"].to_pylist()]
    assert all(f"/{folder}/b/" in path for path in paths)
    assert data.val_source == f"the data's own `{folder}/` folder"


def test_image_folder_val_class_the_training_data_lacks(image_folder, plugins, tmp_path):
    root = tmp_path / "split"
    image_folder({"a": 3, "b": 3}, root / "train")
    image_folder({"c": 1}, root / "val")
    with pytest.raises(DataError, match=r"\['c'\] in .*val have no counterpart.*"
                                        r"training classes: a, b"):
        load_data(root, plugins)


def test_val_data_csv_for_a_csv(plugins, tmp_path):
    train = write_csv(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    val = write_csv(tmp_path / "val.csv", "label,text\ny,v1\ny,v2\n")
    data = load_data(train, plugins, val_data=val)
    assert data.val["text"] == ["v1", "v2"] and data.val["label"] == [1, 1]
    assert data.val.features["label"] == data.train.features["label"]
    assert data.val_source == f"--val-data {val}"
    assert data.train["text"] == ["a", "b", "c", "d"]
    # The training data's fingerprint is its own; the validation set has one of its own.
    assert data.fingerprint == load_data(train, plugins).fingerprint
    other = write_csv(tmp_path / "other.csv", "label,text\ny,v1\nx,v2\n")
    assert load_data(train, plugins, val_data=other).val_fingerprint != data.val_fingerprint


def test_val_data_reads_the_same_column_options(plugins, tmp_path):
    train = write_csv(tmp_path / "train.csv", "body,topic,id\na,x,1\nb,y,2\nc,x,3\nd,y,4\n")
    val = write_csv(tmp_path / "val.csv", "body,topic,id\nv,y,9\n")
    data = load_data(train, plugins, text_column="body", label_column="topic", val_data=val)
    assert data.val["text"] == ["v"] and data.val["label"] == [1]


def test_val_data_with_a_label_the_training_data_lacks(plugins, tmp_path):
    train = write_csv(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    val = write_csv(tmp_path / "val.csv", "text,label\nv1,y\nv2,zebra\n")
    with pytest.raises(DataError) as err:
        load_data(train, plugins, val_data=val)
    message = str(err.value)
    assert "--val-data" in message and str(val) in message and "'zebra'" in message
    assert "classes: x, y" in message


@pytest.mark.parametrize("text", ["", "text,label\n"])
def test_empty_val_data(plugins, tmp_path, text):
    train = write_csv(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    val = write_csv(tmp_path / "val.csv", text)
    with pytest.raises(DataError, match=rf"--val-data '{val}'.*(empty|no rows)"):
        load_data(train, plugins, val_data=val)


def test_val_data_beside_the_datas_own_validation_split(plugins, tmp_path):
    datasets.DatasetDict({
        "train": text_split(["a", "b", "c", "d"], ["x", "y", "x", "y"]),
        "validation": text_split(["e"], ["x"]),
    }).save_to_disk(tmp_path / "saved")
    val = write_csv(tmp_path / "val.csv", "text,label\nv,x\n")
    with pytest.raises(ConfigError, match=r"own validation split \(the data's own `validation`"
                                          r" split, 1 rows\).*Drop --val-data"):
        load_data(tmp_path / "saved", plugins, val_data=val)


def test_val_data_image_folder_for_an_image_folder(image_folder, plugins, tmp_path):
    train = image_folder({"a": 3, "b": 3}, tmp_path / "train")
    val = image_folder({"a": 2}, tmp_path / "held")
    data = load_data(train, plugins, val_data=val)
    assert len(data.val) == 2 and data.val["label"] == [0, 0]


def test_val_data_of_another_modality(image_folder, plugins, tmp_path):
    train = image_folder({"a": 3, "b": 3}, tmp_path / "train")
    val = write_csv(tmp_path / "val.csv", "text,label\nv,a\n")
    with pytest.raises(DataError, match="holds text data but .* holds image data"):
        load_data(train, plugins, val_data=val)
