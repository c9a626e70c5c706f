"""Datasets as in-memory tensors, and the LightningDataModule that fixes, per seed, the batch order and the
measurement set (identical for every c, so a search varies only c)."""

import functools
import gzip
import math
import os
import pickle
import shutil
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset
from torchvision import datasets as tv

from phasediag.imports import is_import_path
from phasediag.run.config import ConfigError, RunConfig, data_folder
from phasediag.run.user_data import load_user_data
from phasediag.vocabulary import DATASETS

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
SYNTHETIC_DEFAULT = ((1, 8, 8), 512)
NUM_CLASSES = 10
CIFAR10_TRAIN_SIZE = 50_000  # five batches of 10000


class DataError(ConfigError, FileNotFoundError):
    """A dataset's files are missing; the message names the folder, the files and how to get them."""


def prepare_fashion_mnist(root: Path | str, source: Path | str | None = None) -> Path:
    """Gunzip Debian's Fashion-MNIST IDX files into root/FashionMNIST/raw, where torchvision looks (nothing is
    created where Debian's package is missing)."""
    source = Path(DEBIAN_FASHION_MNIST if source is None else source)  # looked up at call time
    raw = Path(root) / "FashionMNIST" / "raw"
    for name in IDX_FILES:
        if not (raw / name).exists() and (source / f"{name}.gz").exists():
            raw.mkdir(parents=True, exist_ok=True)
            partial = raw / f"{name}.{os.getpid()}.tmp"  # processes preparing the cache at once write apart
            with gzip.open(source / f"{name}.gz", "rb") as packed, open(partial, "wb") as plain:
                shutil.copyfileobj(packed, plain)
            partial.rename(raw / name)  # never leave a half-written file behind
    return raw


def _missing(folder: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not (folder / name).exists()]


class _CIFAR10(tv.CIFAR10):
    """torchvision's CIFAR-10 reader; files are checked for presence, not for the official checksums."""

    def _check_integrity(self) -> bool:
        return not _missing(Path(self.root) / self.base_folder, CIFAR10_FILES)

    def _load_meta(self) -> None:  # torchvision's checks batches.meta's md5
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as meta:
            self.classes = pickle.load(meta, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


def _source(name: str, root: Path) -> tuple[type, Path, tuple[str, ...], str]:
    """torchvision class, folder, files and how to get them, of a downloadable dataset."""
    if name == "fashion_mnist":
        how = (f"install Debian's package dataset-fashion-mnist and run `phasediag data --data_dir {root}`, or pass "
               "--download true")  # fmt: skip
        return tv.FashionMNIST, root / "FashionMNIST" / "raw", IDX_FILES, how
    if name == "mnist":
        return tv.MNIST, root / "MNIST" / "raw", IDX_FILES, "copy the MNIST IDX files there (gunzipped) or pass --download true on a machine with network"
    return _CIFAR10, root / "cifar-10-batches-py", CIFAR10_FILES, "unpack cifar-10-python.tar.gz there or pass --download true on a machine with network"


def idx_length(path: Path) -> int:
    """The number of items of an IDX file (unsigned bytes), from its header. DataError naming the file when it is
    no such file, or shorter or longer than its header says (a truncated copy)."""
    with open(path, "rb") as file:
        head = file.read(4)
        dims = file.read(4 * head[3]) if len(head) == 4 else b""
    if len(head) < 4 or head[:3] != b"\0\0\x08" or not 1 <= head[3] <= 4 or len(dims) < 4 * head[3]:
        raise DataError(f"{path} is not an IDX file of unsigned bytes: delete it and prepare the dataset again")
    shape = [int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4)]
    expected, size = 4 + len(dims) + math.prod(shape), path.stat().st_size
    if size != expected:
        raise DataError(f"{path} is truncated or corrupt ({size} bytes, its header says {expected}): delete it and "
                        "prepare the dataset again")  # fmt: skip
    return shape[0]


def _files_ready(name: str, data_dir: str | None, download: bool) -> bool:
    """True when the dataset's files are all there (IDX files whole); False when missing and a download may fetch
    them; DataError otherwise. The default data folder gets Debian's Fashion-MNIST copied in; a folder the user
    named only by `phasediag data`."""
    root = data_folder(data_dir)
    if name == "fashion_mnist" and data_dir is None:
        prepare_fashion_mnist(root)
    _, folder, names, how = _source(name, root)
    missing = _missing(folder, names)
    if missing and not download:
        raise DataError(f"dataset {name!r}: missing {', '.join(missing)} in {folder.resolve()}; {how}")
    if names == IDX_FILES and not missing:
        for file in IDX_FILES:
            idx_length(folder / file)
    return not missing


def _torchvision_dataset(name: str, data_dir: str | None, download: bool) -> tv.VisionDataset:
    _files_ready(name, data_dir, download)
    root = data_folder(data_dir)
    cls, folder, _, _ = _source(name, root)
    try:
        return cls(str(root), train=True, download=download)
    except (EOFError, OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
        raise DataError(f"dataset {name!r} in {folder.resolve()} cannot be read ({type(error).__name__}: "
                        f"{str(error)[:200]}): delete the files and prepare the dataset again") from None  # fmt: skip


def train_size(name: str, root: str | None = None, download: bool = False) -> int | None:
    """The number of training examples, from the file headers (nothing is loaded); None when the files are
    missing and may be downloaded. DataError when they are missing or truncated."""
    if name == "uv":
        return 1
    if is_user_data(name):
        return len(load_user_data(name)[0])
    if name.startswith("synthetic"):
        return _parse_synthetic(name)[1]
    if not _files_ready(name, root, download):
        return None
    if name == "cifar10":
        return CIFAR10_TRAIN_SIZE
    folder = _source(name, data_folder(root))[1]
    images, labels = idx_length(folder / IDX_FILES[0]), idx_length(folder / IDX_FILES[1])
    if images != labels:
        raise DataError(f"{folder / IDX_FILES[0]} holds {images} images but {IDX_FILES[1]} {labels} labels")
    return images


def is_user_data(name: str) -> bool:
    """dataset names your own loader (package.module:loader), not a built-in (synthetic:CxHxW:N included)."""
    return name.split(":")[0] not in DATASETS and is_import_path(name)


def check_sizes(config: RunConfig) -> None:
    """subset, batch_size and the measurement set against the training set: refused when larger (not clamped).
    Your own data is loaded here (once per process), so a loader that fails does so before any run exists."""
    total = train_size(config.dataset, config.data_dir, config.download)
    if total is None:
        return
    if is_user_data(config.dataset) and config.loss == "xent" and not load_user_data(config.dataset)[2]:
        raise ConfigError(f"loss='xent' is not allowed with dataset={config.dataset!r}: its y_train holds float "
                          "targets; cross-entropy needs class indices (an integer tensor), or use loss=mse")  # fmt: skip
    if config.subset > total:
        raise ConfigError(f"subset={config.subset} is not allowed: dataset {config.dataset!r} has {total} training examples")
    n = config.subset or total
    if config.batch_size > n:
        raise ConfigError(f"batch_size={config.batch_size} is not allowed: larger than the {n} training examples "
                          "(use at most that, or 0 for full batch)")  # fmt: skip
    if config.measure_size > n:
        given = config.measure_examples or f"0 (the paper's m={config.measure_size} for {config.loss})"
        raise ConfigError(f"measure_examples={given} is not allowed: larger than the {n} training examples; use at most {n}")


def _images_and_labels(dataset: tv.VisionDataset) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # N,C,H,W
    return images, torch.as_tensor(dataset.targets, dtype=torch.long)


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Each image on its own: zero mean and unit standard deviation over its pixels, the population std (ddof = 0)
    like the authors' numpy code, so that |x|^2 = number of pixels exactly."""
    flat = images.float().flatten(1)
    flat = (flat - flat.mean(1, keepdim=True)) / flat.std(1, correction=0, keepdim=True).clamp_min(1e-8)
    return flat.view(images.shape)


def synthetic(shape: tuple[int, ...], size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded Gaussian inputs with random labels, for tests."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((size, *shape), generator=generator), torch.randint(0, NUM_CLASSES, (size,), generator=generator)


def _parse_synthetic(name: str) -> tuple[tuple[int, ...], int]:
    """'synthetic' or 'synthetic:CxHxW' or 'synthetic:CxHxW:N'."""
    parts = name.split(":")
    try:
        shape = tuple(int(s) for s in parts[1].split("x")) if len(parts) > 1 else SYNTHETIC_DEFAULT[0]
        size = int(parts[2]) if len(parts) > 2 else SYNTHETIC_DEFAULT[1]
    except ValueError:
        raise ConfigError(f"dataset={name!r} is not valid: use synthetic, synthetic:CxHxW or synthetic:CxHxW:N") from None
    return shape, size


@functools.lru_cache(maxsize=4)
def load(name: str, root: str | None = None, subset: int = 0, download: bool = False,
         standardization: str = "per_image") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Training inputs (N x C x H x W for images; standardized per image unless standardization='none') and targets
    (N x classes, one-hot; your own data's float targets as given). Cached per process."""
    if name == "uv":  # the uv model's single example (x, y) = (1, 0)
        return torch.ones(1, 1), torch.zeros(1, 1)
    if is_user_data(name):
        inputs, targets, _ = load_user_data(name)
    else:
        if name.startswith("synthetic"):
            inputs, labels = synthetic(*_parse_synthetic(name))
        else:
            inputs, labels = _images_and_labels(_torchvision_dataset(name, root, download))
        targets = F.one_hot(labels, NUM_CLASSES).float()
    if subset:
        inputs, targets = inputs[:subset], targets[:subset]
    return (standardize(inputs) if standardization == "per_image" else inputs.float()), targets


class EarlyTrainingData(L.LightningDataModule):
    """Training set, a seeded SGD batch order, and a fixed measurement set of m examples."""

    def __init__(
        self,
        dataset: str,
        root: str | None = None,
        subset: int = 0,
        seed: int = 0,
        batch_size: int = 512,
        measure_examples: int = 2048,
        download: bool = False,
        standardization: str = "per_image",
    ) -> None:
        super().__init__()
        self.inputs, self.targets = load(dataset, root, subset, download, standardization)
        n = len(self.inputs)
        if measure_examples > n:
            raise ConfigError(f"measure_examples={measure_examples} is not allowed: the training set has only {n} examples")
        self.seed = seed
        self.batch_size = batch_size if 0 < batch_size < n else n
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1_000_003))
        self.measurement_index = order[:measure_examples]

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])

    @property
    def num_classes(self) -> int:
        return self.targets.shape[1]

    @property
    def training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every training example (the subset when one is given): where L_t is measured."""
        return self.inputs, self.targets

    @property
    def measurement_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[self.measurement_index], self.targets[self.measurement_index]

    def train_dataloader(self) -> DataLoader:
        # A fresh generator each time: every c of a seed sees the same batches in the same order.
        generator = torch.Generator().manual_seed(self.seed)
        dataset = TensorDataset(self.inputs, self.targets)
        batches = BatchSampler(RandomSampler(dataset, generator=generator), self.batch_size, drop_last=False)
        return DataLoader(dataset, sampler=batches, batch_size=None)
