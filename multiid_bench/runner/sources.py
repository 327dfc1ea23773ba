"""Where a run's generated images come from: an adapter (``evaluate``) or a folder (``score``).

Both hand the runner a *path* (never pixels), so every image, generated here or elsewhere, is decoded and
hashed by the same code, once. An adapter's image is saved losslessly (PNG) to ``<out>/images/<case>.png``
and its generation record appended to ``<out>/generations[.shard-i-of-n].jsonl`` (the layout of
``mbench generate``), so an evaluate folder can be re-scored with ``mbench score --images <out>`` and a
resumed run reuses images already made instead of paying for them twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from multiid_bench.errors import ConfigError, MBenchError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.adapters.base import Adapter
    from multiid_bench.data.case import Case
    from multiid_bench.runner.shard import Shard

__all__ = ["AdapterSource", "FolderSource", "Generated", "ImageSource"]

log = logging.getLogger(__name__)


@dataclass
class Generated:
    """The generated image of one case: a path (status ``ok``) or why there is none."""

    status: str
    path: str | None = None
    reason: str | None = None
    seed: int | None = None
    record: dict[str, Any] = field(default_factory=dict)


class ImageSource(Protocol):
    name: str

    def describe(self) -> dict[str, Any]: ...

    def load(self, device: str) -> None: ...

    def obtain(self, case: "Case") -> Generated: ...


class AdapterSource:
    """Generate through an adapter; reuse an image (and its record) a killed run already made."""

    def __init__(self, adapter: "Adapter", out_dir: Path, *, global_seed: int, shard: "Shard") -> None:
        from multiid_bench.runner.run_folder import generations_file, read_generations

        self.adapter = adapter
        self.name = adapter.name
        self.out_dir = Path(out_dir)
        self.global_seed = int(global_seed)
        self.records_path = generations_file(self.out_dir, shard)
        self._previous = {cid: r for cid, r in read_generations(self.out_dir).items() if r.get("status") == "ok"}
        self._loaded = False
        self._device = "cpu"

    def describe(self) -> dict[str, Any]:
        return {"kind": "adapter", **self.adapter.describe(), "global_seed": self.global_seed}

    def load(self, device: str) -> None:
        """Remember the device; the adapter loads lazily, before the first case that needs generating."""
        self._device = device

    def obtain(self, case: "Case") -> Generated:
        from multiid_bench.adapters.base import derive_seed
        from multiid_bench.adapters.generation import atomic_write_bytes
        from multiid_bench.runner.run_folder import IMAGES_DIR, append_row, image_path

        seed = derive_seed(self.global_seed, case.id)
        target = image_path(self.out_dir, case.id)
        prev = self._previous.get(case.id)
        if prev is not None and target.is_file() and int(prev.get("seed", -1)) == seed:
            return Generated("ok", str(target), None, seed, {**prev, "reused": True})
        if not self._loaded:
            self.adapter.load(self._device)
            self._loaded = True
        try:
            result = self.adapter.generate(case, seed)
        except MBenchError:
            raise
        except Exception as e:  # an adapter that breaks its contract still only fails this case
            log.warning("adapter %s raised on case %s: %s", self.name, case.id, e)
            return Generated("failed", None, f"generation failed: {type(e).__name__}: {e}", seed,
                             {"adapter": self.name, "case_id": case.id, "seed": seed})
        image_file = None
        if result.status == "ok":
            import io

            buf = io.BytesIO()
            result.image.save(buf, format="PNG")  # type: ignore[union-attr]
            atomic_write_bytes(target, buf.getvalue())
            image_file = f"{IMAGES_DIR}/{target.name}"
        row = result.to_row(image_file)
        row["global_seed"] = self.global_seed
        append_row(self.records_path, row)
        if result.status == "ok":
            return Generated("ok", str(target), None, seed, row)
        prefix = "not applicable" if result.status == "not_applicable" else "generation failed"
        return Generated(result.status, None, f"{prefix}: {result.reason}", seed, row)


class FolderSource:
    """Images made elsewhere (``mbench score --images DIR``), located with the ``folder`` adapter's rules."""

    name = "images"

    def __init__(self, root: Path, layout: str = "auto") -> None:
        self.root = Path(root).expanduser()
        self.layout = layout

    def describe(self) -> dict[str, Any]:
        return {"kind": "images", "root": str(self.root), "layout": self.layout}

    def load(self, device: str) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"--images {self.root} is not a directory; point it at the generated images")

    def obtain(self, case: "Case") -> Generated:
        from multiid_bench.adapters.folder import find_image

        try:
            path, layout, tried = find_image(self.root, case, self.layout)
        except ConfigError as e:  # e.g. two candidate files for one case: this case fails, the run goes on
            return Generated("failed", None, str(e), None, {"source": "images", "root": str(self.root)})
        if path is None:
            shown = ", ".join(str(p) for p in tried[:3]) + (" ..." if len(tried) > 3 else "")
            return Generated("failed", None, f"generated image not found (looked for {shown})", None,
                             {"source": "images", "root": str(self.root)})
        return Generated("ok", str(path), None, None, {"source": "images", "path": str(path), "layout": layout})
