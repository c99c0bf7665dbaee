"""How long a folder of MNIST as PNG files takes to load: the first time (every file decoded) and again (from the
tensor cache). Writes the 70,000 images as train/<digit>/*.png and test/<digit>/*.png under a temporary folder,
then loads it twice through data.source=folder, as `tinyhub train` would, and prints the figures.

    python results/data/folder_decode.py [--data-dir ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def write_pngs(data_dir: Path, root: Path) -> int:
    from PIL import Image

    from tinyhub.trainer.data import load_dataset_splits

    splits = load_dataset_splits(source="local", dir=str(data_dir), cache_dir=str(root / "idx-cache"))
    count = 0
    for split, images, labels in (("train", splits.train_images, splits.train_labels),
                                  ("test", splits.test_images, splits.test_labels)):
        for label in range(10):
            (root / "mnist" / split / str(label)).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images[:, 0].numpy(), labels.tolist())):
            Image.fromarray(image).save(root / "mnist" / split / str(label) / f"{i:05d}.png")
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TINYHUB_DATA_DIR", "../shared/data/mnist"))
    args = parser.parse_args()
    from tinyhub.trainer.data import load_dataset_splits

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        count = write_pngs(Path(args.data_dir), root)
        written = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (root / "mnist").rglob("*.png"))
        figures = []
        for attempt in ("first load (decode every file)", "second load (from the cache)"):
            t0 = time.perf_counter()
            splits = load_dataset_splits(source="folder", path=str(root / "mnist"), cache_dir=str(root / "cache"))
            figures.append((attempt, time.perf_counter() - t0))
        print(f"{count:,} PNG files ({size / 1e6:.1f} MB) written in {written:.1f} s; identified as "
              f"{splits.source['name']} ({splits.source['identity']['identified_by']})")
        for attempt, seconds in figures:
            print(f"{attempt}: {seconds:.2f} s")
        print(f"machine: {os.cpu_count()} cores; {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
