"""Fixtures for adapter tests: tiny cases whose references are identifiable by colour, and fake pipelines."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from multiid_bench.data.case import Case

# Reference k (0-based) is a solid image of COLOURS[k] with a distinct size, so tests can tell which
# reference went where without decoding anything but one pixel.
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 210, 20)]
GT_SIZE = (800, 600)
BOXES = [(500.0, 100.0, 600.0, 220.0), (100.0, 150.0, 200.0, 270.0), (300.0, 50.0, 380.0, 150.0),
         (650.0, 300.0, 760.0, 420.0)]


def colour_of(image: Image.Image) -> tuple[int, int, int]:
    """The colour at the image centre (solid test references)."""
    return image.convert("RGB").getpixel((image.width // 2, image.height // 2))  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _isolated_env_records(tmp_path_factory, monkeypatch):
    """Adapters read ``mbench setup-env`` records: never the developer's own ``~/.config`` in tests."""
    monkeypatch.setenv("MBENCH_CONFIG_DIR", str(tmp_path_factory.mktemp("mbench-config")))


@pytest.fixture
def make_case(tmp_path: Path) -> Callable[..., Case]:
    """``make_case(n, gt=True, boxes=True, case_id=...)`` writes the images and returns a Case."""

    def make(n: int = 2, *, gt: bool = True, boxes: bool = True, case_id: str | None = None,
             prompt: str = "Friends having dinner together.") -> Case:
        cid = case_id or f"p{min(n, 3)}_case{n}"
        refs = []
        for k in range(n):
            p = tmp_path / f"{cid}_ref{k}.png"
            Image.new("RGB", (100 + 20 * k, 120), COLOURS[k]).save(p)
            refs.append(p)
        gt_path = None
        if gt:
            gt_path = tmp_path / f"{cid}_gt.jpg"
            Image.new("RGB", GT_SIZE, (90, 90, 90)).save(gt_path)
        return Case(id=cid, subset="p1" if n == 1 else "p2" if n == 2 else "p3", prompt=prompt, gt=gt_path,
                    refs=tuple(refs), boxes=tuple(BOXES[:n]) if boxes else (), num_persons=n)

    return make


class FakePipe:
    """Records every call; returns a grey image of the requested size (or 64x48)."""

    def __init__(self, *, output: str = "diffusers", error: BaseException | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.output = output
        self.error = error

    def _image(self, kwargs: dict[str, Any]) -> Image.Image:
        return Image.new("RGB", (int(kwargs.get("width") or 64), int(kwargs.get("height") or 48)), (128, 128, 128))

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        image = self._image(kwargs)
        if self.output == "diffusers":
            return type("Out", (), {"images": [image]})()
        if self.output == "worker":
            return image, {"worker": {"size": list(image.size)}}
        return image

    def edit(self, **kwargs: Any) -> Any:  # the GPT client's method
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return Image.new("RGB", (1024, 1024), (1, 2, 3)), {"request_id": "req_1"}


@pytest.fixture
def fake_pipe() -> type[FakePipe]:
    return FakePipe
