"""Your own data: dataset = "package.module:loader", a function of no arguments returning (x_train, y_train) tensors
(or arrays) or a torch.utils.data.Dataset of (x, y) pairs. y holds class indices (an integer tensor: one-hot
targets, as for the built-in datasets) or float targets (MSE only: used as they are). Each error is one line naming
the loader."""

import functools

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from phasediag.imports import UserCodeError, one_line, resolve


@functools.lru_cache(maxsize=4)
def load_user_data(path: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(inputs as float32, N x ..., targets as float32, N x k, whether the targets are one-hot classes). Cached per
    process: a search or sweep calls the loader once."""
    where = f"dataset={path!r}"
    loader = resolve("dataset", path)
    try:
        loaded = loader()
    except Exception as error:
        raise UserCodeError(f"{where}: the loader raised {one_line(error)}") from None
    if isinstance(loaded, Dataset):
        x, y = _stacked(where, loaded)
    elif isinstance(loaded, (tuple, list)) and len(loaded) == 2:
        x, y = (_tensor(where, name, value) for name, value in zip(("x_train", "y_train"), loaded))
    else:
        raise UserCodeError(f"{where}: the loader returned a {type(loaded).__name__}: return (x_train, y_train) "
                            "tensors or a torch.utils.data.Dataset")  # fmt: skip
    if x.ndim < 2 or len(x) == 0 or len(y) != len(x):
        raise UserCodeError(f"{where}: x_train {tuple(x.shape)} and y_train {tuple(y.shape)} must hold the same, "
                            "non-zero, number of examples, x_train with at least one dimension per example")  # fmt: skip
    if x.is_complex() or x.dtype == torch.bool:
        raise UserCodeError(f"{where}: x_train is {x.dtype}: give real numbers")
    classes = not (y.is_floating_point() or y.is_complex())
    if classes and (y.ndim != 1 or y.min() < 0):
        raise UserCodeError(f"{where}: an integer y_train must be class indices >= 0, one per example, got shape "
                            f"{tuple(y.shape)} and minimum {int(y.min())}")  # fmt: skip
    targets = F.one_hot(y.long()).float() if classes else y.float().reshape(len(y), -1)
    inputs = x.float()
    if not (torch.isfinite(inputs).all() and torch.isfinite(targets).all()):
        raise UserCodeError(f"{where}: x_train or y_train holds NaN or inf")
    return inputs, targets, classes


def _tensor(where: str, name: str, value: object) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except Exception as error:
        raise UserCodeError(f"{where}: {name} is a {type(value).__name__}, not a tensor ({one_line(error)})") from None


def _stacked(where: str, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (x, y) of a map-style Dataset, stacked."""
    try:
        items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    except Exception as error:
        raise UserCodeError(f"{where}: reading the Dataset's items raised {one_line(error)} (a Dataset needs __len__ "
                            "and __getitem__ returning (x, y))") from None  # fmt: skip
    if not items or not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items):
        raise UserCodeError(f"{where}: the Dataset is empty or its items are not (x, y) pairs")
    try:
        return torch.stack([torch.as_tensor(x) for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])
    except Exception as error:
        raise UserCodeError(f"{where}: the Dataset's items cannot be stacked into tensors ({one_line(error)})") from None
