"""The built-in datasets plugin: real offline data (integration tests), its cache, and hf:."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from autotl.builtin import datasets as builtin
from autotl.data import load_data, prepare_splits
from autotl.errors import DataError
from autotl.plugins import load_plugins
from autotl.testing import DatasetConformance

needs_fashion_mnist = pytest.mark.skipif(
    not (builtin.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist is not installed")
needs_fortunes = pytest.mark.skipif(not builtin.FORTUNES_DIR.is_dir(),
                                    reason="Debian package fortunes is not installed")
needs_wordnet = pytest.mark.skipif(not (builtin.WORDNET_DIR / "data.noun").is_file(),
                                   reason="Debian package wordnet-base is not installed")
needs_apt_lists = pytest.mark.skipif(
    shutil.which("apt-cache") is None or not list(builtin.APT_LISTS_DIR.glob("*_Packages*")),
    reason="no apt package lists (not a Debian system, or `apt-get update` never ran)")


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(entry_points=False)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    """One temporary cache for the real data, so it is converted once per run."""
    path = tmp_path_factory.getbasetemp() / "autotl-cache"
    monkeypatch.setenv("AUTOTL_CACHE_DIR", str(path))
    return path


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache of this test's own (for tests that swap the sources)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("AUTOTL_CACHE_DIR", str(path))
    return path


def test_listing_datasets_imports_neither_torch_nor_datasets():
    code = ("import sys; from autotl.plugins import load_plugins; p = load_plugins(); "
            "names = p.datasets.names(); ns = [n.prefix for n in p.datasets.namespaces]; "
            "print(names, ns, 'torch' in sys.modules, 'datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ("['debian-packages', 'digits', 'fashion-mnist', 'fortunes', "
                           "'wordnet'] ['hf'] False False")


def test_digits(plugins):
    data = load_data("digits", plugins)
    assert data.modality == "image"
    assert len(data.train) == 1797 and data.test is None
    assert data.class_names == [str(d) for d in range(10)]
    image = data.train[0]["image"]
    assert (image.mode, image.size) == ("L", (8, 8))
    pixels = np.stack([np.asarray(data.train[i]["image"]) for i in range(20)])
    assert pixels.dtype == np.uint8 and pixels.max() == 255  # 0..16 scaled to 0..255


@needs_fortunes
def test_fortunes(plugins):
    data = load_data("fortunes", plugins)
    assert data.modality == "text"
    assert len(data.class_names) >= 40
    assert {"computers", "politics", "science", "food"} <= set(data.class_names)
    assert not any(n.endswith((".dat", ".u8")) for n in data.class_names)
    assert 14_000 < len(data.train) < 17_000
    texts = data.train["text"]
    assert all(t.strip() and t.strip() != "%" for t in texts)
    counts = Counter(data.train["label"])
    assert counts[data.class_names.index("computers")] > 1000


def test_split_fortunes():
    text = "first\n  line two\n%\n%\n\n%\nsecond\n%  \nthird"
    assert builtin.split_fortunes(text) == ["first\n  line two", "second", "third"]


@needs_wordnet
def test_wordnet(plugins):
    data = load_data("wordnet", plugins)
    assert data.modality == "text"
    assert data.class_names == list(builtin.WORDNET_LEXNAMES) and len(data.class_names) == 45
    assert len(data.train) == 117_659  # WordNet 3.0's synsets, each with a gloss
    counts = Counter(data.train["label"])
    assert counts[data.class_names.index("noun.artifact")] == 11_587
    animal = data.class_names.index("noun.animal")
    dog = [y for t, y in zip(data.train["text"], data.train["label"], strict=True)
           if t.startswith("a member of the genus Canis (probably descended")]
    assert dog == [animal]  # the gloss of dog.n.01, labelled by its file
    assert all(" | " not in t and not t.startswith("  ") for t in data.train["text"][:2000])


WORDNET_SAMPLE = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00015388 03 n 01 animal 0 002 @ 00004258 n 0000 ~ 01317541 n 0000 | a living organism; "animals move"
02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus Canis  
07555863 13 n 01 food 0 000 | any substance that can be metabolized
"""


def test_parse_wordnet_labels_each_gloss_by_its_lexicographer_file():
    assert builtin.parse_wordnet(WORDNET_SAMPLE) == [
        (3, 'a living organism; "animals move"'),
        (5, "a member of the genus Canis"),
        (13, "any substance that can be metabolized"),
    ]
    assert [builtin.WORDNET_LEXNAMES[n] for n in (3, 5, 13)] == [
        "noun.Tops", "noun.animal", "noun.food"]


@pytest.mark.parametrize("line", ["02084071 05 n 01 dog 0 001 no gloss bar",
                                  "02084071 99 n 01 dog 0 000 | a lexicographer file past 44"])
def test_parse_wordnet_names_a_line_that_is_not_a_synset(line):
    with pytest.raises(DataError, match=r"data.noun, line 2, is not a WordNet synset line.*"
                                        r"--reinstall wordnet-base"):
        builtin.parse_wordnet("  header\n" + line, "data.noun")


def test_missing_wordnet_says_how_to_install(plugins, monkeypatch, tmp_path, fresh_cache):
    monkeypatch.setattr(builtin, "WORDNET_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"data.noun, data.verb, data.adj, data.adv missing.*"
                                        r"apt-get install wordnet-base"):
        load_data("wordnet", plugins)


@needs_apt_lists
def test_debian_packages(plugins):
    data = load_data("debian-packages", plugins)
    assert data.modality == "text"
    assert {"games", "science", "sound", "net", "admin", "text"} <= set(data.class_names)
    assert len(data.train) > 10_000
    texts = list(data.train["text"])
    assert len(set(texts)) == len(texts)  # a description under two sections is dropped
    assert all(t and "\n" not in t for t in texts[:2000])


PACKAGES_SAMPLE = """\
Package: gnuplot-nox
Version: 5.4.4
Description: Command-line driven interactive plotting program
Section: math

Package: a-game
Section: contrib/games
Description: a small game
 It has two paragraphs.
 .
 This is the second.

Package: no-section
Description: skipped

Package: no-description
Section: net
"""


def test_parse_packages_gives_each_description_its_section():
    assert builtin.parse_packages(PACKAGES_SAMPLE) == [
        ("math", "Command-line driven interactive plotting program"),
        ("games", "a small game It has two paragraphs. This is the second."),
    ]


def test_debian_packages_drops_a_description_found_under_two_sections(
        plugins, monkeypatch, tmp_path, fresh_cache):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "mirror_dists_main_binary-amd64_Packages").write_text("stamp")
    fake = tmp_path / "bin" / "apt-cache"  # a real program on PATH, printing a fixed stream
    fake.parent.mkdir()
    twin = ("Package: twin\nSection: sound\nDescription: a small game\n It has two "
            "paragraphs.\n .\n This is the second.\n")
    stream = (PACKAGES_SAMPLE + "\n" + twin
              + "\nPackage: ed\nSection: editors\nDescription: an editor\n")
    (tmp_path / "stream").write_text(stream)
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'stream'}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(builtin, "APT_LISTS_DIR", lists)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    data = load_data("debian-packages", plugins)
    assert data.class_names == ["editors", "math"]
    assert sorted(data.train["text"]) == ["Command-line driven interactive plotting program",
                                          "an editor"]


def test_missing_apt_lists_say_how_to_get_them(plugins, monkeypatch, tmp_path, fresh_cache):
    monkeypatch.setattr(builtin, "APT_LISTS_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"no apt package lists in .*absent.*apt-get update"):
        load_data("debian-packages", plugins)


@needs_fashion_mnist
def test_fashion_mnist_loads_once_and_then_from_the_cache(plugins, cache_dir):
    start = time.perf_counter()
    first = load_data("fashion-mnist", plugins)
    built = time.perf_counter() - start
    start = time.perf_counter()
    again = load_data("fashion-mnist", plugins)
    reused = time.perf_counter() - start
    assert (cache_dir / "datasets" / f"fashion-mnist-{builtin.VERSIONS['fashion-mnist']}").is_dir()
    assert reused < 2.0 and reused < built / 3, (built, reused)
    assert again.fingerprint == first.fingerprint
    assert (len(again.train), len(again.test)) == (60_000, 10_000)
    assert again.class_names[0] == "T-shirt/top" and len(again.class_names) == 10
    assert set(Counter(again.test["label"]).values()) == {1000}
    image = again.train[0]["image"]
    assert (image.mode, image.size) == ("L", (28, 28))
    train, val = prepare_splits(again, n_per_class=5, val_fraction=0.2, seed=0)
    assert (len(train), len(val)) == (50, 1000)


def test_missing_fashion_mnist_says_how_to_install(plugins, monkeypatch, tmp_path, fresh_cache):
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"sudo apt-get install dataset-fashion-mnist.*make setup"):
        load_data("fashion-mnist", plugins)


def test_corrupt_fashion_mnist_file(monkeypatch, tmp_path):
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path)
    for name in builtin.FASHION_MNIST_FILES["train"] + builtin.FASHION_MNIST_FILES["test"]:
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + b"\x00" * 5)
    with pytest.raises(DataError, match="is truncated: its header promises"):
        builtin.load_fashion_mnist()


def write_fortunes(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_fortune_files_skip_indexes_links_and_folders(plugins, monkeypatch, tmp_path, fresh_cache):
    folder = write_fortunes(tmp_path / "fortunes", {
        "cats": "meow\n%\npurr\n%\n", "dogs": "woof\n%\n\n%\nbark", "cats.dat": "index"})
    (folder / "cats.u8").symlink_to(folder / "cats")
    (folder / "off").mkdir()
    (folder / "alias").symlink_to(folder / "dogs")
    monkeypatch.setattr(builtin, "FORTUNES_DIR", folder)
    data = load_data("fortunes", plugins)
    assert data.class_names == ["cats", "dogs"]
    assert list(data.train["text"]) == ["meow", "purr", "woof", "bark"]


def test_changed_sources_rebuild_the_cache_and_change_the_fingerprint(plugins, monkeypatch,
                                                                      tmp_path, fresh_cache):
    folder = write_fortunes(tmp_path / "fortunes", {"a": "1\n%\n2", "b": "3\n%\n4"})
    monkeypatch.setattr(builtin, "FORTUNES_DIR", folder)
    first = load_data("fortunes", plugins)
    assert load_data("fortunes", plugins).fingerprint == first.fingerprint
    write_fortunes(folder, {"b": "3\n%\n4\n%\n5"})
    changed = load_data("fortunes", plugins)
    assert len(changed.train) == 5
    assert changed.fingerprint != first.fingerprint


def test_building_the_cache_leaves_the_users_progress_bar_setting(plugins, monkeypatch,
                                                                   tmp_path, fresh_cache):
    import datasets

    folder = write_fortunes(tmp_path / "fortunes", {"a": "1\n%\n2", "b": "3\n%\n4"})
    monkeypatch.setattr(builtin, "FORTUNES_DIR", folder)
    datasets.disable_progress_bars()
    try:
        load_data("fortunes", plugins)
        assert not datasets.is_progress_bar_enabled()
    finally:
        datasets.enable_progress_bars()


def test_cache_is_used_when_the_sources_are_gone(plugins, monkeypatch, tmp_path, fresh_cache):
    folder = write_fortunes(tmp_path / "fortunes", {"a": "1\n%\n2", "b": "3\n%\n4"})
    monkeypatch.setattr(builtin, "FORTUNES_DIR", folder)
    first = load_data("fortunes", plugins)
    monkeypatch.setattr(builtin, "FORTUNES_DIR", tmp_path / "uninstalled")
    assert load_data("fortunes", plugins).fingerprint == first.fingerprint


def test_missing_fortunes_says_how_to_install(plugins, monkeypatch, tmp_path, fresh_cache):
    monkeypatch.setattr(builtin, "FORTUNES_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"apt-get install fortunes"):
        load_data("fortunes", plugins)


def test_hub_dataset_offline_is_a_clear_error(plugins, monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries read the variables at import time, which happened before this test.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert "hf:someone/nothing-here" in plugins.datasets
    with pytest.raises(DataError) as info:
        load_data("hf:someone/nothing-here", plugins)
    message = str(info.value)
    assert "'someone/nothing-here'" in message and "unreachable" in message
    assert "save_to_disk" in message


# -- the built-in datasets through the suite third-party datasets use -----------------------------
# (Last in this module: the real data is converted once, by the timing test above.)


class TestDigitsContract(DatasetConformance):
    dataset_name = "digits"


@needs_fashion_mnist
class TestFashionMnistContract(DatasetConformance):
    dataset_name = "fashion-mnist"


@needs_fortunes
class TestFortunesContract(DatasetConformance):
    dataset_name = "fortunes"


@needs_wordnet
class TestWordnetContract(DatasetConformance):
    dataset_name = "wordnet"


@needs_apt_lists
class TestDebianPackagesContract(DatasetConformance):
    dataset_name = "debian-packages"


class TestHubNamespaceContract(DatasetConformance):
    dataset_name = "hf:someone/nothing-here"
    needs_network = True
