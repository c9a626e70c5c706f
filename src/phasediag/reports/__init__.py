"""Results read back from the tracking store: phase diagrams, saturation (c_crit), the claims, and the uv model's job."""

from pathlib import Path


def output_files(out: str | Path, names: tuple[str, ...]) -> dict[str, Path]:
    """A report's files by name, in the folder `out` (created if missing)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return {name: folder / name for name in names}
