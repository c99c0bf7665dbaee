"""Opening an image file someone else made: its size is read from the header and refused above a ceiling before a
single pixel is decoded (a few kilobytes of PNG can declare hundreds of millions of pixels). Training's data
sources and the demo open images through here."""

from __future__ import annotations

import warnings

#: The largest image tinyhub decodes, in pixels (4,096 x 4,096).
MAX_PIXELS = 4096 * 4096


class ImageTooLargeError(ValueError):
    """An image whose header declares more than MAX_PIXELS pixels."""

    def __init__(self, path, width: int, height: int):
        self.width, self.height = width, height
        super().__init__(f"{path} declares {width:,} x {height:,} pixels, more than tinyhub decodes ({MAX_PIXELS:,})")


def open_image(path):
    """A PIL image opened lazily (nothing decoded yet), its declared size checked against MAX_PIXELS."""
    from PIL import Image

    with warnings.catch_warnings():  # Pillow's own warning about large images: the check below says more
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(path)
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise ImageTooLargeError(path, width, height)
    return img
