"""Safe decoding of image files: every image in the toolkit enters through here.

Why one module: the reference evaluator opened images with PIL and no ``convert("RGB")``, so a
grayscale or palette GT crashed the face pipelines, EXIF rotation was ignored and a truncated JPEG
failed deep inside a model. Here an image is read once, hashed (the hash is the cache key of its
content), decoded from the same bytes, turned upright per its EXIF orientation and converted to
8-bit RGB. Anything we cannot decode raises :class:`~multiid_bench.errors.ImageDecodeError` naming
the file and the fix.

Mode policy (documented because it changes pixels):

* ``L``/``1``/``P``/``CMYK``/``YCbCr`` -> Pillow's RGB conversion (palette colours, naive CMYK).
* ``RGBA``/``LA``/``PA`` and palette images with transparency -> alpha is **dropped** (colour kept), as
  the reference pipelines (OpenCV, ``convert("RGB")``) do; no compositing onto a background.
* 16-bit and 32-bit integer (``I;16*``, ``I``) -> scaled to 8 bits by ``/257`` when values exceed 255
  (16-bit range), else taken as-is; float (``F``) -> ``[0, 1]`` data times 255, otherwise clipped.
* Multi-frame files (GIF, TIFF) -> the first frame.

Bounded reads (why: a symlink to ``/dev/zero`` or a FIFO given as an image read until the machine ran out of
memory, a 1.5 GB non-image file cost 1.4 GB): only regular files are opened (checked with ``stat`` before any
``open``, so a FIFO never blocks), files over ``DEFAULT_MAX_BYTES`` are refused from their size, and the
header's dimensions are checked against ``max_pixels`` before the pixels are decoded. Peak memory of one
decode is about the file size plus 7 bytes per pixel (Pillow's 4-byte RGBX buffer and the 3-byte array),
so at most ~0.55 GB at the 50 MP / 200 MB limits; 16-bit and float modes convert through float64 (24 more
bytes per pixel). docs/results.md states the same bound.
"""
from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from multiid_bench.errors import ImageDecodeError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "check_regular_file",
    "DecodedImage",
    "decode_bytes",
    "decode_image",
    "image_sha256",
    "load_image",
    "load_rgb_array",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
#: Largest image file read (bytes): a 50 MP PNG of photographic content is ~100 MB; anything larger is refused.
DEFAULT_MAX_BYTES = 200_000_000
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded once: its path, the sha256 of its file bytes and its (H, W, 3) uint8 RGB pixels.

    ``array`` is read-only so a cached decode cannot be modified by one consumer behind another's back.
    """

    path: str
    sha256: str
    array: np.ndarray = field(repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.array.shape[1]), int(self.array.shape[0])


def check_regular_file(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """The size of ``path`` if it is a regular file of at most ``max_bytes``; else :class:`ImageDecodeError`.

    ``stat`` follows symlinks, so a link to ``/dev/zero`` is a character device here; nothing is opened, so a
    FIFO cannot block the caller.
    """
    import stat as stat_mod

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageDecodeError(f"image file {p} does not exist. Check the path (manifest paths are relative to "
                              "the manifest's folder).") from None
    except OSError as e:
        raise ImageDecodeError(f"cannot read image file {p}: {e.strerror or e}. Check the path and permissions.") from e
    if stat_mod.S_ISDIR(st.st_mode):
        raise ImageDecodeError(f"{p} is a directory, not an image file.")
    if not stat_mod.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat_mod.S_ISFIFO(st.st_mode) else "a character device" if stat_mod.S_ISCHR(st.st_mode)
                else "a block device" if stat_mod.S_ISBLK(st.st_mode) else "a socket" if stat_mod.S_ISSOCK(st.st_mode)
                else "not a regular file")
        raise ImageDecodeError(f"{p} is {kind}, not a regular image file; pass the image file itself.")
    if st.st_size > max_bytes:
        raise ImageDecodeError(f"image file {p} is {st.st_size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit "
                               "for one image. Re-encode or downscale it.")
    return int(st.st_size)


def image_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes (streamed), the content key of an image; regular files only, size-capped."""
    p = Path(path)
    limit = check_regular_file(p)
    h = hashlib.sha256()
    seen = 0
    try:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                seen += len(chunk)
                if seen > limit + _CHUNK:  # the file grew while being read: stop, bounded
                    raise ImageDecodeError(f"image file {p} kept growing while being read; pass a finished file.")
                h.update(chunk)
    except OSError as e:
        raise ImageDecodeError(f"cannot read image file {p}: {e.strerror or e}. Check the path.") from e
    return h.hexdigest()


def _read_bytes(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    p = Path(path)
    check_regular_file(p, max_bytes=max_bytes)
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)  # never more than the limit, even if the file grew since stat
    except OSError as e:
        raise ImageDecodeError(f"cannot read image file {p}: {e.strerror or e}. Check permissions.") from e
    if len(data) > max_bytes:
        raise ImageDecodeError(f"image file {p} is over the {max_bytes / 1e6:.0f} MB limit for one image.")
    if not data:
        raise ImageDecodeError(f"image file {p} is empty (0 bytes). Re-download or regenerate it.")
    return data


def _header_check(path: str | Path, max_pixels: int) -> None:
    """Refuse a file that is not an image, or too many pixels, from its first bytes (before reading it all)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise ImageDecodeError(f"cannot read image file {p}: {e.strerror or e}. Check permissions.") from e
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(head))
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return  # some formats need more than the head to be identified: decode_bytes decides, size-capped
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image {p} is {width}x{height} = {width * height / 1e6:.1f} MP, over the {max_pixels / 1e6:.0f} MP "
            f"limit. Downscale it (e.g. to <= {max_pixels / 1e6:.0f} MP) or raise max_pixels explicitly.")


def _to_rgb(im: PILImage.Image, name: str) -> PILImage.Image:
    """Convert any Pillow mode to 8-bit RGB per the module's mode policy."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im)
        if arr.ndim == 3:  # e.g. 16-bit RGB variants some plugins expose
            arr = arr[..., :3]
        arr = arr.astype(np.float64)
        if mode == "F":
            scaled = arr * 255.0 if np.nanmax(arr) <= 1.0 else arr
        elif mode.startswith("I;16") or np.nanmax(arr) > 255:
            scaled = arr / 257.0
        else:
            scaled = arr
        u8 = np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
        if u8.ndim == 2:
            u8 = np.repeat(u8[..., None], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(u8), mode="RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # resolve palette transparency first, then drop alpha below
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageDecodeError(
            f"image {name} has pixel mode {mode!r}, which cannot be converted to RGB ({e}). "
            "Re-save it as an 8-bit RGB PNG or JPEG."
        ) from e


def decode_bytes(data: bytes, name: str = "<bytes>", *, max_pixels: int = DEFAULT_MAX_PIXELS) -> PILImage.Image:
    """Decode encoded image bytes into an upright 8-bit RGB PIL image (fully loaded, file-independent).

    Raises:
        ImageDecodeError: empty, truncated or unidentifiable data, more than ``max_pixels`` pixels,
            or a mode that cannot become RGB. The message names ``name`` and the fix.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageDecodeError(f"image {name} is empty (0 bytes). Re-download or regenerate it.")
    try:
        with warnings.catch_warnings():
            # We apply our own (lower) pixel limit below; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image {name} is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
                    f"{max_pixels / 1e6:.0f} MP limit. Downscale it (e.g. to <= {max_pixels / 1e6:.0f} MP) "
                    "or raise max_pixels explicitly."
                )
            if getattr(im, "n_frames", 1) > 1:
                log.info("image %s has %d frames; using the first", name, im.n_frames)
                im.seek(0)
            im.load()
            try:
                im = ImageOps.exif_transpose(im) or im
            except (ValueError, OSError, TypeError, KeyError) as e:  # malformed EXIF: keep pixels as stored
                log.warning("image %s: ignoring unreadable EXIF orientation (%s)", name, e)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(
            f"image {name} is too large for Pillow's safety limit ({e}). Downscale it before use."
        ) from e
    except UnidentifiedImageError as e:
        raise ImageDecodeError(
            f"image {name} is not a recognised image format ({len(data)} bytes). "
            "Check that the file is a PNG/JPEG/WebP and not HTML or a partial download."
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(
            f"image {name} is truncated or corrupt ({e}). Re-download or regenerate the file."
        ) from e
    rgb = _to_rgb(im, name)
    if rgb.width == 0 or rgb.height == 0:
        raise ImageDecodeError(f"image {name} has zero width or height.")
    return rgb


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> PILImage.Image:
    """Decode an image file into an upright 8-bit RGB PIL image.

    Raises:
        ImageDecodeError: missing, zero-byte, truncated or unreadable file, or over ``max_pixels``.
    """
    check_regular_file(path)
    _header_check(path, max_pixels)
    return decode_bytes(_read_bytes(path), str(path), max_pixels=max_pixels)


def load_rgb_array(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file into an (H, W, 3) uint8 RGB array (C-contiguous)."""
    return np.ascontiguousarray(np.asarray(load_image(path, max_pixels=max_pixels), dtype=np.uint8))


def jpeg_round_trip(array: np.ndarray, rounds: int = 1) -> np.ndarray:
    """``rounds`` JPEG encode/decode cycles with Pillow's defaults (quality 75, 4:2:0), as
    ``PIL.Image.save("x.jpg")`` does in the official conversion and inference scripts.

    Example:
        >>> a = np.zeros((16, 16, 3), np.uint8); a[4:12, 4:12] = 200
        >>> b = jpeg_round_trip(a)
        >>> b.shape == a.shape and b.dtype == np.uint8 and not np.array_equal(a, b)
        True
    """
    import io

    from PIL import Image

    out = np.asarray(array, dtype=np.uint8)
    for _ in range(int(rounds)):
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG")  # no quality/subsampling: Pillow's defaults, like upstream
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(out)


def stored_format(path: str | Path) -> str | None:
    """The file's image format as Pillow names it (``JPEG``, ``PNG``, ...), from the header; None if unreadable."""
    from PIL import Image

    try:
        check_regular_file(path)
        with Image.open(path) as im:
            return str(im.format)
    except Exception:
        return None


def stored_mode(path: str | Path) -> str | None:
    """The Pillow mode the file stores (``RGB``, ``L``, ``P``, ...), read from the header; None if unreadable.

    The official evaluation opens images without ``.convert("RGB")`` and crashes on modes whose array
    is not ``(H, W, 3|4)`` (grayscale, palette, 16-bit): the paper protocol needs to know.
    """
    from PIL import Image

    try:
        check_regular_file(path)
        with Image.open(path) as im:
            return str(im.mode)
    except Exception:
        return None


def decode_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read the file once, hash those bytes and decode the same bytes (no second read can differ)."""
    check_regular_file(path)
    _header_check(path, max_pixels)
    data = _read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    arr = np.ascontiguousarray(np.asarray(decode_bytes(data, str(path), max_pixels=max_pixels), dtype=np.uint8))
    arr.setflags(write=False)
    return DecodedImage(path=str(path), sha256=sha, array=arr)
