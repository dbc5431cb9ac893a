"""Built-in plugin: offline datasets (``fashion-mnist``, ``digits``, ``fortunes``,
``wordnet``, ``debian-packages``) and ``hf:owner/name`` for any Hugging Face Hub dataset.

Nothing heavy is imported here: numpy, scikit-learn, PIL and ``datasets`` load inside the
``load`` functions, so listing datasets stays instant. Each built-in dataset is converted once
into a ``save_to_disk`` folder under ``<cache_root>/datasets/<name>-<version>``; later loads
memory-map it. The folder records a stamp of its sources (file sizes and times, library
versions) and is rebuilt when they change.
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import io
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotl import hookimpl
from autotl.cache import cache_root
from autotl.errors import DataError
from autotl.registry import DatasetSpec, Namespace

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import numpy as np

    from autotl.registry import Registry

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
#: WordNet 3.0's lexicographer files by number (lexnames(5WN)): the label of each synset.
WORDNET_LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)
APT_LISTS_DIR = Path("/var/lib/apt/lists")
#: Bump a version when its conversion changes, so old cache folders are not reused.
VERSIONS = {"fashion-mnist": "1", "digits": "1", "fortunes": "1", "wordnet": "1",
            "debian-packages": "1"}
STAMP_FILE = "autotl-source.json"


# -- the cache -----------------------------------------------------------------------------------


def _cached(name: str, stamp: Callable[[], dict[str, Any]],
           build: Callable[[], datasets.DatasetDict]) -> datasets.DatasetDict:
    """``build()`` once, saved under ``<cache_root>/datasets/<name>-<version>``; later calls
    load that folder while ``stamp()`` (a description of the sources) is unchanged.

    If the sources are gone (``stamp`` raises :class:`DataError`) an existing folder is still
    used, so a copied cache works where the sources are not installed.
    """
    import datasets

    folder = cache_root() / "datasets" / f"{name}-{VERSIONS[name]}"
    marker = folder / STAMP_FILE
    saved = _read_stamp(marker)
    try:
        current = stamp()
    except DataError:
        if saved is None:
            raise
        log.info("using the cached %s in %s (its sources are not installed here)", name, folder)
        return datasets.load_from_disk(str(folder))
    if saved == current:
        try:
            return datasets.load_from_disk(str(folder))
        except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
            log.warning("rebuilding the cached %s in %s: %s", name, folder, exc)
    log.info("preparing %s once; it is cached in %s", name, folder)
    built = build()
    # Write beside the final folder and rename, so a reader never sees half a cache.
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        enabled = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # a one-off conversion; the log line says enough
        try:
            built.save_to_disk(str(tmp))
        finally:
            if enabled:  # the caller's own setting, not ours, holds afterwards
                datasets.enable_progress_bars()
        (tmp / STAMP_FILE).write_text(json.dumps(current, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("could not cache %s in %s (%s); it is rebuilt on every load", name,
                    folder, exc)
        return built
    return datasets.load_from_disk(str(folder))


def _read_stamp(marker: Path) -> dict[str, Any] | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _file_stamp(paths: list[Path]) -> dict[str, Any]:
    stats = {p.name: p.stat() for p in paths}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in sorted(stats.items())}


def _image_dataset(images: np.ndarray, labels: np.ndarray,
                   names: tuple[str, ...] | list[str]) -> datasets.Dataset:
    """Greyscale uint8 arrays → a Dataset of PNG-encoded ``Image`` and ``ClassLabel``."""
    import datasets
    from PIL import Image

    encoded = []
    for array in images:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"image": encoded, "label": labels.tolist()},
                                      features=features)


# -- fashion-mnist -------------------------------------------------------------------------------


def _fashion_mnist_files() -> list[Path]:
    paths = [FASHION_MNIST_DIR / f for pair in FASHION_MNIST_FILES.values() for f in pair]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        msg = (f"Fashion-MNIST is not installed: {', '.join(missing)} missing from "
               f"{FASHION_MNIST_DIR}. Install it with `sudo apt-get install "
               f"dataset-fashion-mnist` (or `make setup`).")
        raise DataError(msg)
    return paths


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format): magic 0x08 0x0N, N big-endian sizes."""
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 8, ndim]):
        msg = (f"{path} is not an IDX file of {ndim}-d unsigned bytes (it starts "
               f"{data[:4].hex()}); reinstall it with `sudo apt-get install --reinstall "
               f"dataset-fashion-mnist`.")
        raise DataError(msg)
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    if array.size != int(np.prod(shape)):
        msg = (f"{path} is truncated: its header promises {shape} but it holds {array.size} "
               f"bytes; reinstall it with `sudo apt-get install --reinstall "
               f"dataset-fashion-mnist`.")
        raise DataError(msg)
    return array.reshape(shape)


def _build_fashion_mnist() -> datasets.DatasetDict:
    import datasets

    splits = {}
    for split, (images, labels) in FASHION_MNIST_FILES.items():
        splits[split] = _image_dataset(_read_idx(FASHION_MNIST_DIR / images, 3),
                                       _read_idx(FASHION_MNIST_DIR / labels, 1),
                                       FASHION_MNIST_CLASSES)
    return datasets.DatasetDict(splits)


def load_fashion_mnist() -> datasets.DatasetDict:
    return _cached("fashion-mnist", lambda: _file_stamp(_fashion_mnist_files()),
                  _build_fashion_mnist)


# -- digits --------------------------------------------------------------------------------------


def _digits_stamp() -> dict[str, Any]:
    # The data ships inside scikit-learn; its version is the source's version (read without
    # importing scikit-learn, which takes a second).
    return {"scikit-learn": importlib.metadata.version("scikit-learn")}


def _build_digits() -> datasets.DatasetDict:
    import datasets
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 0..16 intensities → 0..255 so they are ordinary 8-bit greyscale images.
    images = np.rint(digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)
    names = [str(d) for d in digits.target_names]
    return datasets.DatasetDict({"train": _image_dataset(images, digits.target, names)})


def load_sklearn_digits() -> datasets.DatasetDict:
    return _cached("digits", _digits_stamp, _build_digits)


# -- fortunes ------------------------------------------------------------------------------------


def _fortune_files() -> list[Path]:
    if not FORTUNES_DIR.is_dir():
        msg = (f"the fortunes are not installed ({FORTUNES_DIR} does not exist). Install them "
               f"with `sudo apt-get install fortunes` (or `make setup`).")
        raise DataError(msg)
    files = sorted(
        p for p in FORTUNES_DIR.iterdir()
        if p.suffix not in (".dat", ".u8") and not p.is_symlink() and p.is_file()
        and not p.name.startswith(".")
    )
    if len(files) < 2:
        msg = (f"{FORTUNES_DIR} holds {len(files)} fortune category file(s); at least 2 are "
               f"needed. Reinstall with `sudo apt-get install --reinstall fortunes`.")
        raise DataError(msg)
    return files


def split_fortunes(text: str) -> list[str]:
    """Entries of a fortune file: separated by lines holding only ``%``; empty ones dropped."""
    entries, lines = [], []
    for line in [*text.splitlines(), "%"]:
        if line.strip() == "%":
            entry = "\n".join(lines).strip("\n").rstrip()
            if entry.strip():
                entries.append(entry)
            lines = []
        else:
            lines.append(line)
    return entries


def _build_fortunes() -> datasets.DatasetDict:
    import datasets

    files = _fortune_files()
    texts: list[str] = []
    labels: list[int] = []
    for code, path in enumerate(files):
        entries = split_fortunes(path.read_text(encoding="utf-8", errors="replace"))
        texts += entries
        labels += [code] * len(entries)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=[p.name for p in files])})
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": texts, "label": labels}, features=features)})


def load_fortunes() -> datasets.DatasetDict:
    return _cached("fortunes", lambda: _file_stamp(_fortune_files()), _build_fortunes)


# -- wordnet ------------------------------------------------------------------------------------


def _wordnet_files() -> list[Path]:
    paths = [WORDNET_DIR / name for name in WORDNET_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        msg = (f"WordNet is not installed ({', '.join(missing)} missing from {WORDNET_DIR}). "
               f"Install it with `sudo apt-get install wordnet-base` (or `make setup`).")
        raise DataError(msg)
    return paths


def parse_wordnet(text: str, source: str = "data file") -> list[tuple[int, str]]:
    """``(lexicographer file number, gloss)`` for each synset line of a WordNet ``data.*`` file.

    A synset line is ``offset lex_filenum ss_type ... | gloss`` (wndb(5WN)); the license header's
    lines start with two spaces and are skipped. The gloss is the text: its definition and any
    quoted examples, without the synset's own words, so the task is to tell from a definition
    what kind of thing it defines.
    """
    synsets = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("  "):
            continue
        head, bar, gloss = line.partition(" | ")
        fields = head.split()
        if not bar or len(fields) < 2 or not fields[1].isdigit() \
                or int(fields[1]) >= len(WORDNET_LEXNAMES):
            msg = (f"{source}, line {number}, is not a WordNet synset line (`offset lex_filenum "
                   f"ss_type ... | gloss`): {line[:80]!r}. Reinstall with `sudo apt-get install "
                   f"--reinstall wordnet-base`.")
            raise DataError(msg)
        if gloss.strip():
            synsets.append((int(fields[1]), gloss.strip()))
    return synsets


def _build_wordnet() -> datasets.DatasetDict:
    import datasets

    texts: list[str] = []
    labels: list[int] = []
    for path in _wordnet_files():
        for code, gloss in parse_wordnet(path.read_text(encoding="utf-8", errors="replace"),
                                         str(path)):
            texts.append(gloss)
            labels.append(code)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(WORDNET_LEXNAMES))})
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": texts, "label": labels}, features=features)})


def load_wordnet() -> datasets.DatasetDict:
    return _cached("wordnet", lambda: _file_stamp(_wordnet_files()), _build_wordnet)


# -- debian-packages -----------------------------------------------------------------------------


def _apt_list_files() -> list[Path]:
    files = sorted(APT_LISTS_DIR.glob("*_Packages*")) if APT_LISTS_DIR.is_dir() else []
    if not files:
        msg = (f"no apt package lists in {APT_LISTS_DIR}: debian-packages reads the package "
               f"descriptions apt keeps on a Debian or Ubuntu system. Run `sudo apt-get "
               f"update` there (or `make setup`).")
        raise DataError(msg)
    return files


def parse_packages(text: str) -> list[tuple[str, str]]:
    """``(section, description)`` for each record of an apt ``Packages`` stream (deb-control(5)
    stanzas, as ``apt-cache dumpavail`` prints them). The description is the short one plus
    any long one, its lines joined and its `` .`` paragraph marks dropped; the section loses
    its archive area (``contrib/net`` → ``net``). A record without either is skipped."""
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")):
                if key is not None:
                    fields[key].append(line.strip())
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = [value.strip()]
        section = (fields.get("Section") or [""])[0].rpartition("/")[2]
        words = [w for w in fields.get("Description", []) if w and w != "."]
        if section and words:
            out.append((section, " ".join(words)))
    return out


def _build_debian_packages() -> datasets.DatasetDict:
    import datasets

    # `_cached` has already checked that the lists are there (the stamp reads them).
    try:
        dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, check=True,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        msg = (f"`apt-cache dumpavail` failed ({exc}); debian-packages needs apt's package "
               f"lists on a Debian or Ubuntu system: run `sudo apt-get update`.")
        raise DataError(msg) from exc
    # One description under two sections would be a row with two answers: both are dropped.
    sections: dict[str, set[str]] = {}
    for section, description in parse_packages(dump.decode("utf-8", errors="replace")):
        sections.setdefault(description, set()).add(section)
    rows = sorted((next(iter(s)), d) for d, s in sections.items() if len(s) == 1)
    if not rows:
        msg = ("apt's package lists hold no package with a section and a description; run "
               "`sudo apt-get update`.")
        raise DataError(msg)
    names = sorted({section for section, _ in rows})
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": [d for _, d in rows], "label": [names.index(s) for s, _ in rows]},
        features=features)})


def load_debian_packages() -> datasets.DatasetDict:
    return _cached("debian-packages", lambda: _file_stamp(_apt_list_files()),
                   _build_debian_packages)


# -- hf: -----------------------------------------------------------------------------------------


def load_hub(repo_id: str) -> datasets.DatasetDict:
    """``datasets.load_dataset(repo_id)``; any failure becomes a DataError with a way out."""
    import datasets

    try:
        return datasets.load_dataset(repo_id)
    except Exception as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        folder = repo_id.replace("/", "__")
        msg = (f"cannot load {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: "
               f"{reason}). The hub is unreachable from here (no network, or HF_HUB_OFFLINE / "
               f"HF_DATASETS_OFFLINE set) or there is no such dataset. On a machine with "
               f"network access run `python -c \"import datasets; datasets.load_dataset("
               f"'{repo_id}').save_to_disk('{folder}')\"`, copy the folder here and pass its "
               f"path instead: `autotl search ./{folder}`.")
        raise DataError(msg) from exc


def resolve_hub(name: str) -> DatasetSpec:
    repo_id = name.partition(":")[2]
    # The modality is only known once the data is loaded; load_data detects it from the
    # columns, so this value is a placeholder the registry requires.
    return DatasetSpec(
        name=name,
        modality="text",
        load=functools.partial(load_hub, repo_id),
        description=f"Hugging Face Hub dataset {repo_id} (modality detected on load)",
    )


@hookimpl
def autotl_register_datasets(registry: Registry[DatasetSpec]) -> None:
    registry.add(DatasetSpec(
        name="fashion-mnist",
        modality="image",
        load=load_fashion_mnist,
        description="Fashion-MNIST: 28x28 grey clothing photos, 10 classes, 60,000 train + "
        "10,000 test (Debian dataset-fashion-mnist)",
    ))
    registry.add(DatasetSpec(
        name="digits",
        modality="image",
        load=load_sklearn_digits,
        description="scikit-learn digits: 8x8 grey handwritten digits, 10 classes, 1,797 images",
    ))
    registry.add(DatasetSpec(
        name="fortunes",
        modality="text",
        load=load_fortunes,
        description="Debian fortunes: quotes labelled by category file (computers, politics, "
        "science, …), ~15,000 texts",
    ))
    registry.add(DatasetSpec(
        name="wordnet",
        modality="text",
        load=load_wordnet,
        description="WordNet 3.0 glosses labelled by lexicographer file (noun.animal, "
        "noun.food, verb.motion, …), 45 classes, ~117,000 texts (Debian wordnet-base)",
    ))
    registry.add(DatasetSpec(
        name="debian-packages",
        modality="text",
        load=load_debian_packages,
        description="Debian package descriptions labelled by archive section (games, "
        "science, sound, …), ~60,000 texts on a Debian system (apt's package lists)",
    ))
    registry.add_namespace(Namespace(
        prefix="hf",
        resolve=resolve_hub,
        description="any Hugging Face Hub dataset, hf:owner/name (needs the network; offline, "
        "save_to_disk it elsewhere and pass the folder)",
    ))
