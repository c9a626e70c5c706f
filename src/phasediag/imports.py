"""Your own code by name: `package.module:attribute` (a model factory, a data loader) resolved to the object, with
one-line errors naming it, and a digest of the file that defines it (recorded with the run: which code made it).

Light (no torch): the option checks use `is_import_path`.
"""

import hashlib
import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

from phasediag.errors import ConfigError
from phasediag.vocabulary import IMPORT_PATH


class UserCodeError(ConfigError):
    """A factory or loader that cannot be imported, raises, or returns the wrong thing; one line naming it."""


def is_import_path(text: str) -> bool:
    return re.fullmatch(IMPORT_PATH, text) is not None


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: message` of an exception raised by user code, on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:limit]}" if text else type(error).__name__


def resolve(option: str, path: str) -> Any:
    """The callable named by `path` ('package.module:attribute'), for the option `option` (arch, dataset).

    The working folder is importable, as under `python -m`, so that `--arch examples.models:mixer` works from the
    folder that holds `examples/`."""
    module_name, _, attribute = path.partition(":")
    where = f"{option}={path!r} cannot be used"
    _working_folder_importable()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not (module_name == error.name or module_name.startswith(error.name + ".")):
            raise UserCodeError(f"{where}: importing {module_name} raised {one_line(error)}") from None
        raise UserCodeError(f"{where}: no module named {error.name!r} in the working folder {os.getcwd()} or on "
                            "PYTHONPATH") from None  # fmt: skip
    except Exception as error:
        raise UserCodeError(f"{where}: importing {module_name} raised {one_line(error)}") from None
    found: Any = module
    for name in attribute.split("."):
        if not hasattr(found, name):
            raise UserCodeError(f"{where}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
                                f"attribute {attribute!r}")  # fmt: skip
        found = getattr(found, name)
    if not callable(found):
        raise UserCodeError(f"{where}: {attribute!r} is a {type(found).__name__}, not a function")
    return found


def source_file(path: str) -> Path | None:
    """The file that defines the object of an import path (already resolved), or None (e.g. a compiled module)."""
    obj = resolve("source", path)
    for candidate in (obj, sys.modules[path.partition(":")[0]]):
        try:
            file = inspect.getsourcefile(candidate)
        except TypeError:
            continue
        if file and Path(file).is_file():
            return Path(file)
    return None


def source_digest(path: str) -> str:
    """The first 16 hex digits of the SHA-256 of the object's source file; 'unknown' when it has none."""
    file = source_file(path)
    return hashlib.sha256(file.read_bytes()).hexdigest()[:16] if file else "unknown"


def _working_folder_importable() -> None:
    folder = os.getcwd()
    if "" not in sys.path and folder not in sys.path:
        sys.path.insert(0, folder)
