"""Datasets as in-memory tensors, and the LightningDataModule that fixes, per seed, the batch order and the
measurement set (identical for every c, so a search varies only c)."""

import functools
import gzip
import pickle
import shutil
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset
from torchvision import datasets as tv

from phasediag.run.config import ConfigError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
SYNTHETIC_DEFAULT = ((1, 8, 8), 512)
NUM_CLASSES = 10


class DataError(FileNotFoundError):
    """A dataset's files are missing; the message names the folder, the files and how to get them."""


def prepare_fashion_mnist(root: Path | str, source: Path | str | None = None) -> Path:
    """Gunzip Debian's Fashion-MNIST IDX files into root/FashionMNIST/raw, where torchvision looks."""
    source = Path(DEBIAN_FASHION_MNIST if source is None else source)  # looked up at call time
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        if not (raw / name).exists() and (source / f"{name}.gz").exists():
            with gzip.open(source / f"{name}.gz", "rb") as packed, open(raw / f"{name}.tmp", "wb") as plain:
                shutil.copyfileobj(packed, plain)
            (raw / f"{name}.tmp").rename(raw / name)  # never leave a half-written file behind
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


def _torchvision_dataset(name: str, root: Path, download: bool) -> tv.VisionDataset:
    if name == "fashion_mnist":
        prepare_fashion_mnist(root)
        cls, folder, names = tv.FashionMNIST, root / "FashionMNIST" / "raw", IDX_FILES
        how = "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass --download"
    elif name == "mnist":
        cls, folder, names = tv.MNIST, root / "MNIST" / "raw", IDX_FILES
        how = "copy the MNIST IDX files there (gunzipped) or pass --download on a machine with network"
    else:
        cls, folder, names = _CIFAR10, root / "cifar-10-batches-py", CIFAR10_FILES
        how = "unpack cifar-10-python.tar.gz there or pass --download on a machine with network"
    missing = _missing(folder, names)
    if missing and not download:
        raise DataError(f"dataset {name!r}: missing {', '.join(missing)} in {folder.resolve()}; {how}")
    return cls(str(root), train=True, download=download)


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
def load(name: str, root: str = "data", subset: int = 0, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Training inputs (standardized, N x C x H x W) and one-hot targets (N x classes). Cached per process."""
    if name == "uv":  # the uv model's single example (x, y) = (1, 0)
        return torch.ones(1, 1), torch.zeros(1, 1)
    if name.startswith("synthetic"):
        images, labels = synthetic(*_parse_synthetic(name))
    else:
        images, labels = _images_and_labels(_torchvision_dataset(name, Path(root), download))
    if subset:
        images, labels = images[:subset], labels[:subset]
    return standardize(images), F.one_hot(labels, NUM_CLASSES).float()


class EarlyTrainingData(L.LightningDataModule):
    """Training set, a seeded SGD batch order, and a fixed measurement set of m examples."""

    def __init__(
        self,
        dataset: str,
        root: str = "data",
        subset: int = 0,
        seed: int = 0,
        batch_size: int = 512,
        measure_examples: int = 2048,
        download: bool = False,
    ) -> None:
        super().__init__()
        self.inputs, self.targets = load(dataset, root, subset, download)
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
