"""images.py: every bad input is a typed error naming the file; every odd mode becomes 8-bit RGB."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multiid_bench.errors import ImageDecodeError
from multiid_bench.images import DecodedImage, decode_image, image_sha256, load_image, load_rgb_array


def _save(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


def _gradient(w: int = 40, h: int = 30) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                           np.full((h, w, 1), 77.0)], axis=2).astype(np.uint8)


def test_rgb_roundtrip_and_sha(tmp_path: Path) -> None:
    arr = _gradient()
    p = _save(Image.fromarray(arr), tmp_path / "a.png")
    out = load_rgb_array(p)
    assert out.dtype == np.uint8 and out.shape == (30, 40, 3)
    np.testing.assert_array_equal(out, arr)
    d = decode_image(p)
    assert isinstance(d, DecodedImage)
    assert d.sha256 == hashlib.sha256(p.read_bytes()).hexdigest() == image_sha256(p)
    assert d.size == (40, 30)
    with pytest.raises(ValueError):
        d.array[0, 0, 0] = 1  # read-only


def test_missing_and_zero_byte(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"empty\.jpg is empty \(0 bytes\)"):
        load_image(empty)
    with pytest.raises(ImageDecodeError, match="directory"):
        load_image(tmp_path)


def test_truncated_and_garbage(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match=r"trunc\.jpg is truncated or corrupt"):
        load_image(trunc)
    html = tmp_path / "page.png"
    html.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ImageDecodeError, match=r"page\.png is not a recognised image format"):
        load_image(html)


def test_grayscale_and_bilevel(tmp_path: Path) -> None:
    g = (np.arange(20 * 10) % 256).astype(np.uint8).reshape(10, 20)
    out = load_rgb_array(_save(Image.fromarray(g, "L"), tmp_path / "g.png"))
    assert out.shape == (10, 20, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)
    out1 = load_rgb_array(_save(Image.fromarray(g > 100), tmp_path / "b.png"))
    assert set(np.unique(out1)) <= {0, 255}


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    arr = _gradient()
    pal = Image.fromarray(arr).quantize(16)
    out = load_rgb_array(_save(pal, tmp_path / "p.png"))
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    pal.info["transparency"] = 0
    out_t = load_rgb_array(_save(pal, tmp_path / "pt.png", transparency=0))
    assert out_t.shape == (30, 40, 3) and out_t.dtype == np.uint8


def test_rgba_drops_alpha_keeps_colour(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent: colour must be kept, not composited
    out = load_rgb_array(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert out.shape == (8, 8, 3)
    assert (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()
    la = load_rgb_array(_save(Image.fromarray(rgba[..., [0, 3]], "LA"), tmp_path / "la.png"))
    assert (la == 200).all()


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (16, 12), (0, 255, 255, 0))  # pure red in CMYK
    out = load_rgb_array(_save(cmyk, tmp_path / "c.jpg", quality=95))
    assert out.shape == (12, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_16bit_png_scaled(tmp_path: Path) -> None:
    a16 = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    im = Image.fromarray(a16)
    assert im.mode.startswith("I")
    out = load_rgb_array(_save(im, tmp_path / "d.png"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_exif_rotation_respected(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, stored landscape 40x20
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = _save(im, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_rgb_array(p)
    assert out.shape == (40, 20, 3)  # displayed portrait
    # after a 90 deg clockwise turn the stored left half ends up on top
    assert out[:15, :, 0].mean() > 200 and out[25:, :, 0].mean() < 50


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    # A valid header and a tiny IDAT: decoding would fail, so only the size check can explain the error.
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_over_50_megapixels_refused_before_decoding(tmp_path: Path) -> None:
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(10_000, 6_000))  # 60 MP header, no pixel data at all
    with pytest.raises(ImageDecodeError, match=r"huge\.png is 10000x6000 = 60\.0 MP, over the 50 MP limit"):
        load_image(p)
    small = _save(Image.fromarray(_gradient()), tmp_path / "s.png")
    with pytest.raises(ImageDecodeError, match="over the"):
        load_image(small, max_pixels=100)
    assert load_image(small, max_pixels=1200).size == (40, 30)


def test_multiframe_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    out = load_rgb_array(p)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50
