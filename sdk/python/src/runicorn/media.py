"""Saving what ``run.log_image()`` is given into a file under ``media/``.

Accepted: a file path (copied), ``bytes``/``bytearray``/``memoryview`` (written as is), a PIL
image (saved with Pillow), a numpy array or anything with ``__array__`` (converted with Pillow).
Pillow and numpy are imported only when such an object is actually passed.
"""

import os
import shutil
from pathlib import Path
from typing import Any

_PIL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF"}


def _is_pil_image(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "save")


def _is_array(image: Any) -> bool:
    return hasattr(image, "__array_interface__") or hasattr(image, "__array__")


def save_image(image: Any, target: Path, fmt: str, quality: int) -> None:
    """Write ``image`` to ``target``. TypeError for an unsupported object, OSError for I/O."""
    pil_format = _PIL_FORMATS.get(fmt.lower(), fmt.upper())
    if isinstance(image, (bytes, bytearray, memoryview)):
        with open(str(target), "wb") as f:
            f.write(image)
        return
    if isinstance(image, (str, os.PathLike)):
        shutil.copyfile(str(image), str(target))
        return
    if _is_pil_image(image):
        image.save(str(target), format=pil_format, quality=quality)
        return
    if _is_array(image):
        try:
            import numpy
            from PIL import Image
        except ImportError:
            raise TypeError("log_image() needs Pillow and numpy to save an array") from None
        Image.fromarray(numpy.asarray(image)).save(str(target), format=pil_format, quality=quality)
        return
    raise TypeError(
        "log_image() takes a file path, bytes, a PIL image or a numpy array, not %s"
        % type(image).__name__
    )
