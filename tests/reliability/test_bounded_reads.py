"""Item 6: regular files only, size and header checked before reading, under a memory cap on the process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multiid_bench.errors import ImageDecodeError
from multiid_bench.images import DEFAULT_MAX_BYTES, decode_image, image_sha256, stored_mode

#: Address-space cap of the child: enough for Python + numpy + Pillow, far below what /dev/zero would take.
_CAP = 1_500_000_000

_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from multiid_bench.errors import ImageDecodeError
from multiid_bench.images import decode_image, image_sha256
for fn in (image_sha256, decode_image):
    try:
        fn(sys.argv[1])
    except ImageDecodeError as e:
        print("refused:", e)
    else:
        print("read it")
"""


def _capped(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(_CHILD.format(cap=_CAP)), str(path)], text=True,
                          capture_output=True, timeout=60, env=env)


@pytest.mark.parametrize("what", ["dev-zero link", "fifo", "huge non-image", "many pixels"])
def test_hostile_paths_are_refused_under_a_memory_cap(tmp_path: Path, what: str) -> None:
    path = tmp_path / "gen.png"
    if what == "dev-zero link":
        path.symlink_to("/dev/zero")
    elif what == "fifo":
        os.mkfifo(path)  # opening it would block forever: it must be refused from stat alone
    elif what == "huge non-image":
        with path.open("wb") as f:
            f.truncate(DEFAULT_MAX_BYTES + 1)  # sparse: costs no disk, would cost 200 MB of RAM to read
    else:  # 60 MP of zeros compress to a small PNG; refused from its header before Pillow allocates 240 MB
        Image.new("L", (10_000, 6_000)).save(path)
    res = _capped(path)
    assert res.returncode == 0, res.stderr[-2000:]
    sha, decoded = res.stdout.splitlines()
    assert decoded.startswith("refused:") and "Traceback" not in res.stderr
    if what == "many pixels":  # a small file: hashing it is fine, decoding it is not
        assert sha == "read it" and "50 MP limit" in decoded
    else:
        assert sha.startswith("refused:") and ("regular" in decoded or "limit" in decoded)


def test_header_and_type_checks_name_the_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageDecodeError, match="FIFO"):
        decode_image(fifo)
    assert stored_mode(fifo) is None  # a header probe never opens a FIFO either
    ok = tmp_path / "ok.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(ok)
    assert decode_image(ok).size == (4, 4) and len(image_sha256(ok)) == 64
