"""Datasets (DESIGN.md section 4): per-image standardisation, one-hot targets, torchvision file layouts,
the missing-files message, synthetic data, and the seeded batch order / measurement set."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from phasediag.run import data
from phasediag.run.config import ConfigError


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.load.cache_clear()
    yield
    data.load.cache_clear()


def standardized_numpy(images: np.ndarray) -> np.ndarray:
    """Reference: each image on its own, zero mean and unit population std (ddof = 0, numpy's default, the authors')."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    flat = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
    return flat.reshape(images.shape)


# ---------------------------------------------------------------- file writers


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 ndim, big-endian int32 dims, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def mnist_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_idx_set(folder: Path, n_train: int = 20, n_test: int = 5, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The four IDX files (gzipped when gz) in folder; returns the training images and labels."""
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = mnist_like(n_train, 1)
    test_x, test_y = mnist_like(n_test, 2)
    contents = {
        "train-images-idx3-ubyte": idx_bytes(train_x),
        "train-labels-idx1-ubyte": idx_bytes(train_y),
        "t10k-images-idx3-ubyte": idx_bytes(test_x),
        "t10k-labels-idx1-ubyte": idx_bytes(test_y),
    }
    for name, blob in contents.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return train_x, train_y


class _Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 str (the official CIFAR-10 files are Python 2 pickles): loads as bytes with
    encoding='bytes' and as str with encoding='latin1' (what torchvision uses)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def py2_pickle(obj, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def write_cifar(folder: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Official python-format batches; returns the training rows (N x 3072) and labels in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        py2_pickle({b"batch_label": name.encode(), b"labels": batch_labels, b"data": batch}, folder / name)
        if name != "test_batch":
            rows.append(batch)
            labels.extend(batch_labels)
    names = [s.encode() for s in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")]
    py2_pickle({b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}, folder / "batches.meta")
    return np.concatenate(rows), np.asarray(labels)


# ---------------------------------------------------------------- standardisation, one-hot, subset


def test_standardize_each_image_on_its_own():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4) ** 1.5
    images[1] *= 7.0
    out = data.standardize(images)
    assert out.shape == images.shape
    flat = out.flatten(1).double()
    assert torch.allclose(flat.mean(1), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(flat.std(1, correction=0), torch.ones(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(flat.pow(2).sum(1), torch.full((2,), 48.0, dtype=torch.float64), rtol=1e-5)  # |x|^2 = pixels
    np.testing.assert_allclose(out.numpy(), standardized_numpy(images.numpy()), atol=1e-5)
    # a constant image does not blow up
    assert torch.isfinite(data.standardize(torch.full((1, 1, 3, 3), 5.0))).all()


def test_synthetic_load_is_standardized_one_hot_and_subset_takes_first():
    inputs, targets = data.load("synthetic:2x5x5:30")
    assert inputs.shape == (30, 2, 5, 5) and targets.shape == (30, 10)
    flat = inputs.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(30), atol=1e-5)
    assert torch.allclose(flat.std(1, correction=0), torch.ones(30), atol=1e-5)
    assert targets.dtype == torch.float32
    assert torch.all(targets.sum(1) == 1) and set(targets.unique().tolist()) == {0.0, 1.0}
    raw_x, raw_y = data.synthetic((2, 5, 5), 30)
    assert torch.equal(targets.argmax(1), raw_y)
    small_x, small_y = data.load("synthetic:2x5x5:30", subset=7)
    assert small_x.shape == (7, 2, 5, 5)
    assert torch.equal(small_x, inputs[:7]) and torch.equal(small_y, targets[:7])


def test_synthetic_shapes_and_seeding():
    x, y = data.load("synthetic")
    assert x.shape == (512, 1, 8, 8) and y.shape == (512, 10)
    x, y = data.load("synthetic:3x4x6")
    assert x.shape == (512, 3, 4, 6)
    x, y = data.load("synthetic:1x2x2:9")
    assert x.shape == (9, 1, 2, 2)
    a = data.synthetic((1, 4, 4), 10, seed=0)
    b = data.synthetic((1, 4, 4), 10, seed=0)
    c = data.synthetic((1, 4, 4), 10, seed=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("spec", ["synthetic:axb", "synthetic:1x8x8:many", "synthetic:1x8x8:", "synthetic:"])
def test_malformed_synthetic_spec(spec):
    with pytest.raises(ConfigError, match="synthetic"):
        data.load(spec)


# ---------------------------------------------------------------- MNIST / CIFAR-10 / Fashion-MNIST files


def test_mnist_from_idx_files(tmp_path):
    train_x, train_y = write_idx_set(tmp_path / "MNIST" / "raw", n_train=20)
    inputs, targets = data.load("mnist", root=str(tmp_path))
    assert inputs.shape == (20, 1, 28, 28) and targets.shape == (20, 10)
    assert torch.equal(targets.argmax(1), torch.as_tensor(train_y, dtype=torch.long))
    assert torch.all(targets.sum(1) == 1)
    np.testing.assert_allclose(inputs.numpy(), standardized_numpy(train_x[:, None]), atol=1e-5)
    data.load.cache_clear()
    sub_x, sub_y = data.load("mnist", root=str(tmp_path), subset=6)
    assert sub_x.shape == (6, 1, 28, 28)
    assert torch.equal(sub_x, inputs[:6]) and torch.equal(sub_y, targets[:6])


def test_cifar10_from_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    rows, labels = write_cifar(folder, per_batch=4)
    with open(folder / "data_batch_1", "rb") as f:  # the official format: bytes keys under encoding='bytes'
        assert {b"data", b"labels"} <= set(pickle.load(f, encoding="bytes"))
    inputs, targets = data.load("cifar10", root=str(tmp_path))
    assert inputs.shape == (20, 3, 32, 32) and targets.shape == (20, 10)
    assert torch.equal(targets.argmax(1), torch.as_tensor(labels, dtype=torch.long))
    assert torch.all(targets.sum(1) == 1)
    # a row is 1024 red, 1024 green, 1024 blue values, each 32 x 32 row-major: pixel (c, h, w) = row[c*1024 + h*32 + w]
    expected = standardized_numpy(rows.reshape(20, 3, 32, 32))
    np.testing.assert_allclose(inputs.numpy(), expected, atol=1e-5)
    n, c, h, w = 13, 2, 5, 17
    row = rows[n].astype(np.float64)
    value = (row[c * 1024 + h * 32 + w] - row.mean()) / row.std()
    assert inputs[n, c, h, w].item() == pytest.approx(value, abs=1e-5)


def test_prepare_fashion_mnist_gunzips_atomically_and_is_idempotent(tmp_path):
    source = tmp_path / "debian"
    train_x, train_y = write_idx_set(source, n_train=12, gz=True)
    root = tmp_path / "root"
    raw = data.prepare_fashion_mnist(root, source=source)
    assert raw == root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.IDX_FILES)
    assert not list(raw.glob("*.tmp"))
    for name in data.IDX_FILES:
        assert (raw / name).read_bytes() == gzip.decompress((source / f"{name}.gz").read_bytes())
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in raw.iterdir()}
    assert data.prepare_fashion_mnist(root, source=source) == raw
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in raw.iterdir()} == before
    assert not list(raw.glob("*.tmp"))
    # and torchvision's FashionMNIST reads what was prepared
    inputs, targets = data.load("fashion_mnist", root=str(root))
    assert inputs.shape == (12, 1, 28, 28)
    assert torch.equal(targets.argmax(1), torch.as_tensor(train_y, dtype=torch.long))
    np.testing.assert_allclose(inputs.numpy(), standardized_numpy(train_x[:, None]), atol=1e-5)


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_subset_in_the_default_data_folder(tmp_path, monkeypatch):
    """The default folder ($PHASEDIAG_DATA here) gets Debian's copy on first use; a folder the user names does not."""
    monkeypatch.setenv("PHASEDIAG_DATA", str(tmp_path))
    inputs, targets = data.load("fashion_mnist", subset=100)
    assert inputs.shape == (100, 1, 28, 28) and targets.shape == (100, 10)
    assert torch.all(targets.sum(1) == 1)
    assert torch.allclose(inputs.flatten(1).mean(1), torch.zeros(100), atol=1e-5)
    assert not list((tmp_path / "FashionMNIST" / "raw").glob("*.tmp"))
    named = tmp_path / "named"
    named.mkdir()
    with pytest.raises(data.DataError, match=f"phasediag data --data_dir {named}"):
        data.load("fashion_mnist", root=str(named))
    assert not list(named.iterdir())


def _check_missing_message(error: data.DataError, folder: Path, missing: list[str], present: list[str] = ()):
    message = str(error)
    assert "\n" not in message
    assert str(folder.resolve()) in message
    for name in missing:
        assert name in message
    for name in present:
        assert name not in message


def test_mnist_missing_files(tmp_path):
    with pytest.raises(data.DataError) as info:
        data.load("mnist", root=str(tmp_path))
    _check_missing_message(info.value, tmp_path / "MNIST" / "raw", list(data.IDX_FILES))
    assert isinstance(info.value, FileNotFoundError)
    # only the absent ones are named
    raw = tmp_path / "MNIST" / "raw"
    write_idx_set(raw)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    data.load.cache_clear()
    with pytest.raises(data.DataError) as info:
        data.load("mnist", root=str(tmp_path))
    _check_missing_message(info.value, raw, ["t10k-labels-idx1-ubyte"], ["train-images-idx3-ubyte"])


def test_cifar10_missing_files(tmp_path):
    with pytest.raises(data.DataError) as info:
        data.load("cifar10", root=str(tmp_path))
    _check_missing_message(info.value, tmp_path / "cifar-10-batches-py", list(data.CIFAR10_FILES))
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").unlink()
    (folder / "batches.meta").unlink()
    data.load.cache_clear()
    with pytest.raises(data.DataError) as info:
        data.load("cifar10", root=str(tmp_path))
    _check_missing_message(info.value, folder, ["data_batch_3", "batches.meta"], ["data_batch_1", "test_batch"])


def test_fashion_mnist_missing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(data.DataError) as info:
        data.load("fashion_mnist", root=str(tmp_path / "root"))
    _check_missing_message(info.value, tmp_path / "root" / "FashionMNIST" / "raw", list(data.IDX_FILES))
    assert "dataset-fashion-mnist" in str(info.value)
    assert not (tmp_path / "root").exists()  # nothing created


# ---------------------------------------------------------------- EarlyTrainingData


def _batches(module: data.EarlyTrainingData) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in module.train_dataloader()]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_measurement_set_fixed_by_seed():
    spec = "synthetic:1x4x4:64"
    a = data.EarlyTrainingData(spec, seed=0, batch_size=16, measure_examples=20)
    b = data.EarlyTrainingData(spec, seed=0, batch_size=16, measure_examples=20)
    c = data.EarlyTrainingData(spec, seed=1, batch_size=16, measure_examples=20)
    assert len(a.measurement_index) == 20 and len(set(a.measurement_index.tolist())) == 20
    assert torch.equal(a.measurement_index, b.measurement_index)
    assert not torch.equal(a.measurement_index, c.measurement_index)
    x, y = a.measurement_set
    assert x.shape == (20, 1, 4, 4) and y.shape == (20, 10)
    assert torch.equal(x, a.inputs[a.measurement_index])
    assert a.in_shape == (1, 4, 4) and a.num_classes == 10


def test_batch_order_repeatable_and_seeded():
    spec = "synthetic:1x4x4:64"
    a = data.EarlyTrainingData(spec, seed=0, batch_size=16, measure_examples=8)
    first, second = _batches(a), _batches(a)
    assert [len(x) for x, _ in first] == [16, 16, 16, 16]
    assert _same(first, second)  # every c of a seed sees the same batches
    assert _same(first, _batches(data.EarlyTrainingData(spec, seed=0, batch_size=16, measure_examples=8)))
    other = _batches(data.EarlyTrainingData(spec, seed=1, batch_size=16, measure_examples=8))
    assert not _same(first, other)
    # one epoch covers each example once
    seen = torch.cat([x for x, _ in first]).flatten(1)
    assert torch.equal(seen[seen[:, 0].argsort()], a.inputs.flatten(1)[a.inputs.flatten(1)[:, 0].argsort()])


def test_full_batch():
    module = data.EarlyTrainingData("synthetic:1x4x4:50", seed=3, batch_size=0, measure_examples=10)
    batches = _batches(module)
    assert len(batches) == 1
    x, y = batches[0]
    assert x.shape == (50, 1, 4, 4) and y.shape == (50, 10)
    # a batch larger than the data set is also one full batch
    assert len(_batches(data.EarlyTrainingData("synthetic:1x4x4:50", batch_size=512, measure_examples=10))) == 1


def test_measure_examples_larger_than_dataset():
    with pytest.raises(ConfigError) as info:
        data.EarlyTrainingData("synthetic:1x4x4:50", measure_examples=2048)
    assert "2048" in str(info.value) and "50" in str(info.value)
