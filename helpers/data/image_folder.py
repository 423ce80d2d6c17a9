"""A folder of PNG or JPEG images, one subfolder per class, read with Pillow.

Layouts (under the data folder, ``files.data_folder``)::

    <path>/<class>/<image>.png                 runs draw their own splits
    <path>/train/<class>/<image>.png           a fixed split (``dataset.split: fixed``):
    <path>/test/<class>/<image>.png            train/ and test/ hold the same class folders

Class names are the folder names, numbered 0..k-1 in sorted order (numeric order when
every name is an integer, so folders ``0``..``10`` keep their numbers); ``dataset.classes``
picks among those numbers. Images are converted to greyscale (``mode: L``, 1 channel) or
RGB (3 channels), brought to ``size`` by resizing or centre-cropping, and scaled from 0..255
into [0, 1]: X (N, C, H, W) float32.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..params import Choice, ConfigError, Integer, ListOf, Optional, Params, Text, param
from ..registry import DATASETS
from .base import DataSource
from .files import checked, content_hash, data_path, inside_data_folder, read_only

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Modes Pillow stores with 8 bits per channel: converting them to L or RGB keeps 0..255.
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
                             "LAB", "HSV"})
SPLIT_FOLDERS = ("train", "test")


@dataclass(frozen=True)
class Listing:
    """The images of a folder: ``files`` in reading order, each with its ``labels`` entry
    (index into ``class_names``) and, for a fixed split, its ``is_test`` entry (else None)."""

    root: Path
    class_names: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    is_test: tuple[bool, ...] | None

    def signature(self) -> tuple:
        """Each file's path, size and modification time: changes when any image does."""
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in self.files)


def _visible(folder: Path) -> list[Path]:
    """The entries of ``folder`` but hidden ones, sorted; a ValueError names a link that leads
    out of the data folder (a class folder or an image may be a link, within it)."""
    return sorted(inside_data_folder(p) for p in folder.iterdir() if not p.name.startswith("."))


def _class_folders(folder: Path) -> list[str]:
    """The class subfolders of ``folder``; a ValueError if there are none or if it also holds files."""
    entries = _visible(folder)
    files = [p.name for p in entries if not p.is_dir()]
    if not entries:
        raise ValueError(f"image folder {folder} is empty: it must hold one subfolder of images per class"
                         + ("" if folder.name in SPLIT_FOLDERS else " (or train/ and test/ subfolders, each with "
                                                                    "one subfolder per class)"))
    if files:
        raise ValueError(f"image folder {folder} holds files {files[:5]} beside its class folders: "
                         "images go in one subfolder per class")
    return [p.name for p in entries]


def _class_order(names) -> list[str]:
    """Folder names sorted; numerically when every name is an integer."""
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _images(folder: Path) -> list[Path]:
    """The images of one class folder; a ValueError names an empty folder or a file that is
    not a PNG or JPEG image (hidden files are skipped)."""
    entries = _visible(folder)
    if not entries:
        raise ValueError(f"class folder {folder} holds no images")
    other = [p.name for p in entries if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES]
    if other:
        raise ValueError(f"class folder {folder} holds {other[:5]}, which are not PNG or JPEG images "
                         f"(suffixes {list(IMAGE_SUFFIXES)}, any case)")
    return entries


def list_images(root: Path) -> Listing:
    """The images under ``root`` in one of the two layouts (module docstring); a ValueError
    names the problem: an empty folder or class folder, stray files, train/ without test/,
    class folders that differ between train/ and test/, or (without a fixed split) a class
    with one image."""
    top = _class_folders(root)
    fixed = set(top) & set(SPLIT_FOLDERS)
    if fixed and set(top) != set(SPLIT_FOLDERS):
        raise ValueError(f"image folder {root} has {sorted(fixed)} beside {sorted(set(top) - fixed)}: a fixed "
                         "split needs exactly the subfolders train/ and test/, each with one subfolder per class")
    parts = [(root / s, s == "test") for s in SPLIT_FOLDERS] if fixed else [(root, False)]
    classes = {folder: _class_folders(folder) for folder, _ in parts}
    if fixed:
        train, test = (set(classes[root / s]) for s in SPLIT_FOLDERS)
        if train != test:
            raise ValueError(f"image folder {root}: train/ and test/ must hold the same class folders; only in "
                             f"train/: {sorted(train - test)}, only in test/: {sorted(test - train)}")
    names = _class_order(classes[parts[0][0]])
    files, labels, is_test = [], [], []
    for folder, test in parts:
        for label, name in enumerate(names):
            images = _images(folder / name)
            if not fixed and len(images) < 2:
                raise ValueError(f"class folder {folder / name} holds one image only: a stratified train/test "
                                 "split needs at least 2 images of every class")
            files += images
            labels += [label] * len(images)
            is_test += [test] * len(images)
    return Listing(root, tuple(names), tuple(files), tuple(labels), tuple(is_test) if fixed else None)


def _open(path: Path):
    """The Pillow image at ``path``, opened lazily (header only); a ValueError names the file."""
    from PIL import Image

    try:
        image = Image.open(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"image {path} cannot be read: {error}") from None
    if image.mode not in EIGHT_BIT_MODES:
        image.close()
        raise ValueError(f"image {path} has mode {image.mode!r}: only images with 8 bits per channel are read "
                         "(greyscale, palette, RGB or RGBA)")
    return image


def check_sizes(listing: Listing, size: tuple[int, int] | None, fit: str) -> None:
    """Check every image's size from its header (nothing is decoded): without ``size`` all
    images must share one size; ``fit: crop`` needs every image at least ``size``."""
    seen: dict[tuple[int, int], Path] = {}
    for path in listing.files:
        with _open(path) as image:
            height_width = image.size[::-1]
        seen.setdefault(height_width, path)
        if size is None and len(seen) > 1:
            (a, first), (b, second) = seen.items()
            raise ValueError(f"images differ in size: {first} is {a[0]}x{a[1]}, {second} is {b[0]}x{b[1]} "
                             "(height x width); set dataset.options.size: [height, width] (with fit: resize or "
                             "crop) to bring them to one size")
        if size is not None and fit == "crop" and (height_width[0] < size[0] or height_width[1] < size[1]):
            raise ValueError(f"image {path} is {height_width[0]}x{height_width[1]}, smaller than size "
                             f"{list(size)}: fit: crop cuts out the centre and never pads; use fit: resize")


def read_image(path: Path, mode: str, size: tuple[int, int] | None, fit: str) -> np.ndarray:
    """One image as (C, H, W) float32 in [0, 1]: converted to ``mode``, brought to ``size``
    ([H, W]; None: as it is) by ``fit``; a ValueError names the file if it cannot be decoded."""
    from PIL import Image

    with _open(path) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"image {path} cannot be read: {error}") from None
        image = image.convert(mode)
    if size is not None and image.size != (size[1], size[0]):
        if fit == "crop":
            left, top = (image.width - size[1]) // 2, (image.height - size[0]) // 2
            image = image.crop((left, top, left + size[1], top + size[0]))
        else:
            # A box filter averages the pixels an output pixel covers when shrinking (like the
            # IDX sets' area averaging); bilinear interpolation when enlarging.
            shrink = image.width >= size[1] and image.height >= size[0]
            image = image.resize((size[1], size[0]), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


@functools.lru_cache(maxsize=4)  # every worker process reloads its data set; the signature sees edits
def _read_folder(listing: Listing, signature: tuple, mode: str, size, fit: str):
    X = np.stack([read_image(p, mode, size, fit) for p in listing.files])
    y = np.array(listing.labels, dtype=np.int64)
    return read_only((X, y) if listing.is_test is None else (X, y, np.array(listing.is_test, dtype=bool)))


@functools.lru_cache(maxsize=4)
def _hash(listing: Listing, signature: tuple) -> str:
    return content_hash(listing.files, listing.root)


@DATASETS.register
class ImageFolder(DataSource):
    """PNG or JPEG images in one subfolder per class (optional train/ and test/ subfolders fix
    the split), greyscale or RGB, brought to one size, pixels scaled into [0, 1]."""

    name, label, labels = "image_folder", "image folder", ()
    tags = frozenset({"image", "files"})
    uses = ("helpers.data.files",)

    @dataclass(frozen=True)
    class Params(Params):
        path: str | None = param(None, Optional(Text()), "folder under the data folder: one subfolder of images "
                                 "per class, or train/ and test/ each holding those (a fixed split); required")
        mode: str = param("L", Choice(("L", "RGB")), "`L`: greyscale, 1 channel; `RGB`: 3 channels "
                          "(every image is converted)")
        size: tuple[int, int] | None = param(None, Optional(ListOf(Integer(1))), "[height, width] of every image "
                                             "after `fit` (null: the images' own size, the same for all)")
        fit: str = param("resize", Choice(("resize", "crop")), "how images reach `size`: `resize` scales "
                         "(box filter when shrinking, bilinear when enlarging; the aspect ratio is not kept), "
                         "`crop` cuts out the centre")

        def check(self, where):
            if self.path is None:
                raise ConfigError(f"{where}.path: the option path is needed: the image folder, relative to "
                                  "the data folder")
            if self.size is not None and len(self.size) != 2:
                raise ConfigError(f"{where}.size must be null or [height, width], got {list(self.size)}")
            checked(where, lambda: check_sizes(self.listing(where), self.size, self.fit))

        def listing(self, where: str = "dataset.options") -> Listing:
            """The folder's images (``list_images``), or a ``ConfigError`` naming ``where.path``."""
            root = data_path(self.path, f"{where}.path", kind="folder")
            return checked(f"{where}.path", lambda: list_images(root))

    @classmethod
    def input_shape(cls, params):
        channels = 1 if params.mode == "L" else 3
        if params.size is not None:
            return (channels, *params.size)
        with _open(params.listing().files[0]) as image:  # all images share this size (checked)
            return (channels, image.height, image.width)

    @classmethod
    def class_names(cls, params):
        return dict(enumerate(params.listing().class_names))

    @classmethod
    def has_fixed_split(cls, params):
        return params.listing().is_test is not None

    @classmethod
    def fingerprint(cls, params):
        listing = params.listing()
        return _hash(listing, listing.signature())

    @classmethod
    def load(cls, params):
        listing = params.listing()
        check_sizes(listing, params.size, params.fit)
        return _read_folder(listing, listing.signature(), params.mode, params.size, params.fit)
