"""Pixels as tinyhub trains them: images of any mode, size and channel count made into one uint8 tensor
(N, C, H, W) by the declared options, the same way for every source that reads image files or arrays (folder, csv,
npz): `data.channels`, `data.image_size`, `data.non_square` and `data.background`.

Resizing is Pillow's box filter when an image shrinks (each output pixel the area-weighted mean of the pixels it
covers: what "area" interpolation means) and bilinear when it grows, so a 56x56 digit made 28x28 keeps its strokes
instead of losing every other row. The method is recorded with the data and stated on the card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyhub.utils.images import ImageTooLargeError, open_image

from .common import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Shaping:
    """How decoded images become one tensor (a DataConfig's image options)."""

    channels: int = 0        # 0 = as the data is (one channel when every image is grayscale, else three)
    image_size: int = 0      # 0 = as the data is (every image must then have one size)
    non_square: str = "pad"  # pad (to a square, centred, on the background) | resize (stretch to a square)
    background: int = 0      # grey level that transparent pixels and padding become

    @classmethod
    def of(cls, data) -> "Shaping":
        return cls(data.channels, data.image_size, data.non_square, data.background)

    def key(self) -> str:
        """The part of a cache key that decoding depends on."""
        return f"c{self.channels}-s{self.image_size}-{self.non_square}-b{self.background}"


def pixels_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Pixels as uint8, refusing what a cast would silently turn into other pixels: values that are not finite,
    values outside 0-255, or floats in [0, 1] (which a cast would make all but black)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "uif" and array.dtype != np.bool_:
        raise DataError(f"{where} holds {array.dtype} values, not pixels; give 8-bit images (0-255).")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            raise DataError(f"{where} has {int(bad.sum()):,} pixel(s) that are not finite numbers (NaN or "
                            "infinite); fix or drop those images first.")
        if array.size and 0 < array.max() <= 1.0 and not np.all(array == np.round(array)):
            raise DataError(f"{where} is floats in [0, 1]; tinyhub reads 8-bit pixels (0-255). Scale the images by "
                            "255 (and store them as uint8) first.")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"{where} has pixel values from {array.min()} to {array.max()}; tinyhub reads 8-bit pixels "
                        "(0-255). Rescale the images first.")
    return np.rint(array).astype(np.uint8) if array.dtype.kind == "f" else array.astype(np.uint8)


def decode_image(path, background: int) -> np.ndarray:
    """One image file as uint8 (H, W, C), C 1 for grey pixels and 3 for colour: the first frame of an animation,
    a palette expanded, transparency flattened onto `background`. Raises DataError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = open_image(path)  # the header only: a pixel bomb is refused before it is decoded
        with img:
            img.seek(0)
            img.load()
            return _as_array(img, background)
    except ImageTooLargeError as e:
        raise DataError(f"{e}; shrink it, or leave it out (data.skip_bad=true skips it).") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        said = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise DataError(f"{path} is not a readable image ({said}): it is empty, truncated or corrupt. Replace it, "
                        "or leave it out (data.skip_bad=true skips such files).") from e


def _as_array(img, background: int) -> np.ndarray:
    from PIL import Image

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit and float images: their own range, to 8 bits
        array = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
        return np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)[:, :, None]
    if img.mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        base = Image.new("RGBA", img.size, (background, background, background, 255))
        rgb = Image.alpha_composite(base, img.convert("RGBA")).convert("RGB")
        img = rgb.convert("L") if img.mode in ("LA", "La") else rgb
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:
        return array[:, :, None]
    # Grey pixels in a colour format (WebP stores no grayscale; many JPEGs and palettes are grey): one channel
    if (array[:, :, 0] == array[:, :, 1]).all() and (array[:, :, 1] == array[:, :, 2]).all():
        return array[:, :, :1]
    return array


def _luma(images: np.ndarray) -> np.ndarray:
    """RGB (N, H, W, 3) to grayscale (N, H, W, 1) with ITU-R 601-2 luma, as Pillow's convert("L")."""
    weights = np.array([299, 587, 114], dtype=np.uint32)
    return ((images.astype(np.uint32) * weights).sum(-1, keepdims=True) + 500) // 1000


def shape_images(images: list[np.ndarray] | np.ndarray, names, shaping: Shaping) -> tuple[np.ndarray, str]:
    """Images (each uint8 H, W, C; or one array N, H, W, C) as one uint8 array (N, C, H, W), and what was done to
    them in words ("" when nothing). `names(i)` names image i in an error (a file, a row)."""
    if isinstance(images, np.ndarray):  # one array: every image has one size and channel count already
        groups = {images.shape[1:]: np.arange(len(images))}
        stack = lambda idx: images[idx]  # noqa: E731
    else:
        groups = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        stack = lambda idx: np.stack([images[i] for i in idx])  # noqa: E731
    colour = any(shape[2] == 3 for shape in groups)
    channels = shaping.channels or (3 if colour else 1)
    sizes = sorted({shape[:2] for shape in groups})
    if not shaping.image_size and len(sizes) > 1:
        first = {shape[:2]: idx[0] for shape, idx in groups.items()}
        a, b = sizes[0], sizes[-1]
        raise DataError(f"the images have different sizes: {names(first[a])} is {a[1]}x{a[0]} and {names(first[b])} "
                        f"is {b[1]}x{b[0]} (width x height). Set data.image_size=N to resize every image to NxN.")
    said = []
    out_size = shaping.image_size or max(sizes[0])
    n = sum(len(idx) for idx in groups.values())
    out = np.empty((n, channels, out_size, out_size), dtype=np.uint8)
    for shape, idx in groups.items():
        batch = stack(np.asarray(idx))
        if batch.shape[-1] == 3 and channels == 1:
            batch = _luma(batch).astype(np.uint8)
            said.append("converted to grayscale (ITU-R 601 luma)")
        elif batch.shape[-1] == 1 and channels == 3:
            batch = np.repeat(batch, 3, axis=-1)
            said.append("grayscale repeated to three channels")
        batch, done = _squared(batch, shaping, out_size)
        said += done
        out[np.asarray(idx)] = batch.transpose(0, 3, 1, 2)
    return out, "; ".join(dict.fromkeys(said))


def _squared(batch: np.ndarray, shaping: Shaping, size: int) -> tuple[np.ndarray, list[str]]:
    """(N, H, W, C) to (N, size, size, C): padded or stretched to a square, then resized."""
    from PIL import Image

    h, w = batch.shape[1:3]
    said = []
    if h != w and shaping.non_square == "pad":
        side = max(h, w)
        padded = np.full((len(batch), side, side, batch.shape[3]), shaping.background, dtype=np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        padded[:, top:top + h, left:left + w] = batch
        batch, h, w = padded, side, side
        said.append(f"padded to a square with grey level {shaping.background}")
    if (h, w) == (size, size):
        return batch, said
    method = Image.Resampling.BOX if size <= min(h, w) else Image.Resampling.BILINEAR
    out = np.empty((len(batch), size, size, batch.shape[3]), dtype=np.uint8)
    for i, image in enumerate(batch):
        for c in range(batch.shape[3]):
            out[i, :, :, c] = np.asarray(Image.fromarray(image[:, :, c]).resize((size, size), method))
    said.append(f"{'area' if method == Image.Resampling.BOX else 'bilinear'}, to {size}x{size}")
    return out, said
