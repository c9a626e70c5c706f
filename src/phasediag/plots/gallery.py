"""Copy a figure into docs/figures/ under a size limit: `python -m phasediag.plots.gallery SOURCE TARGET [LIMIT]`.

A PNG over the limit is saved with a 256-colour palette (plots have few colours), then, if still too large, scaled
down by 0.85 at a time; the picture is never cropped.
"""

import io
import shutil
import sys
from pathlib import Path

from PIL import Image

LIMIT = 250_000  # bytes (the README's gallery: each figure under 250 KB)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def fit_png(source: Path | str, target: Path | str, limit: int = LIMIT) -> int:
    """Copy source to target, smaller than `limit` bytes; returns the size written."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_size <= limit:
        shutil.copyfile(source, target)
        return target.stat().st_size
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    data = _png(image.quantize(colors=256))
    while len(data) > limit:
        image = image.resize((max(1, int(image.width * 0.85)), max(1, int(image.height * 0.85))), Image.LANCZOS)
        data = _png(image.quantize(colors=256))
    target.write_bytes(data)
    return len(data)


if __name__ == "__main__":
    size = fit_png(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else LIMIT)
    print(f"{sys.argv[2]}: {size / 1000:.0f} KB")
