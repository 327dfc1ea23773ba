"""Base for generators: ``build_request`` (pure) + ``run_request`` (calls ``self.pipe``).

Subclasses write two small hooks and inherit applicability checks, timing, failure capture and record
keeping. ``pipe`` can be injected at construction time, which is how the tests check every adapter's
requests without weights.
"""
from __future__ import annotations

import logging
import time
from abc import abstractmethod
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping

from multiid_bench.adapters._common import load_refs
from multiid_bench.adapters.base import Adapter, GenerationRecord, GenerationResult
from multiid_bench.errors import stops_run

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.data.case import Case

__all__ = ["CaseInputs", "PipelineAdapter", "Request"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """A fully built call: what :meth:`PipelineAdapter.run_request` sends, and what the record states.

    ``images`` are the conditioning images in the order sent; ``boxes`` are in output pixels;
    ``call_kwargs`` are the keyword arguments of the pipeline call (prompt, sizes, steps...).
    """

    prompt: str
    size: tuple[int, int]
    images: tuple[Any, ...] = ()
    reference_order: tuple[int, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    gt_derived_inputs: tuple[str, ...] = ()
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseInputs:
    """What a request builder starts from: the output size (W, H) asked for, the references in the order sent.

    Built once by :meth:`PipelineAdapter.case_inputs`, so each adapter's ``build_request`` keeps only what is
    particular to its model (prompt wording, keyword names, extra inputs).
    """

    width: int
    height: int
    order: tuple[int, ...]
    refs: tuple[Any, ...]

    def request(self, prompt: str, call_kwargs: Mapping[str, Any], *, images: tuple[Any, ...] | None = None,
                **fields: Any) -> Request:
        """The :class:`Request` at this size and reference order; ``images`` default to the references."""
        return Request(prompt=prompt, size=(self.width, self.height), images=self.refs if images is None else images,
                       reference_order=self.order, call_kwargs=call_kwargs, **fields)


class PipelineAdapter(Adapter):
    """Base for generators: ``build_request`` (pure) + ``run_request`` (calls ``self.pipe``).

    ``pipe`` may be injected (tests pass a fake object that records its call); otherwise ``load`` builds it.
    """

    def __init__(self, *, pipe: Any = None, **settings: Any) -> None:
        super().__init__(**settings)
        self.pipe = pipe

    def load(self, device: str = "cpu") -> None:
        self.device = device
        if self.pipe is None:
            self.pipe = self._load_pipeline(device)

    @abstractmethod
    def _load_pipeline(self, device: str) -> Any:
        """Build the real pipeline (heavy imports here); not called when a pipeline was injected."""

    def output_size(self) -> tuple[int, int]:
        """(W, H) requested from the method: ``width``/``height`` settings, else the native size."""
        w = self.settings.get("width") or self.capabilities.native_res[0]
        h = self.settings.get("height") or self.capabilities.native_res[1]
        return int(w), int(h)

    def case_inputs(self, case: "Case", order: tuple[int, ...] | None = None) -> CaseInputs:
        """Output size and the case's references in ``order`` (default: the case's own order), loaded as RGB."""
        width, height = self.output_size()
        order = tuple(range(len(case.refs))) if order is None else tuple(order)
        return CaseInputs(width, height, order, tuple(load_refs(case, order)))

    @abstractmethod
    def build_request(self, case: "Case", seed: int) -> Request:
        """Pure request building: prompt with template, references in order, scaled boxes, kwargs."""

    @abstractmethod
    def run_request(self, request: Request, seed: int) -> "Image.Image | tuple[Image.Image, dict[str, Any]]":
        """Call ``self.pipe`` with ``request``; return one image, or (image, facts for ``record.extra``)."""

    def generate(self, case: "Case", seed: int) -> GenerationResult:
        reason = self.not_applicable_reason(case)
        if reason:
            return self.skipped(case, seed, reason)
        if self.pipe is None:
            self.load(self.device or "cpu")
        t0 = time.perf_counter()
        request: Request | None = None
        try:
            request = self.build_request(case, seed)
            out = self.run_request(request, seed)
            image, facts = out if isinstance(out, tuple) else (out, {})
            image = image.convert("RGB")
            if facts:
                request = replace(request, extra={**request.extra, **facts})
        except Exception as e:  # the error's policy (errors.stops_run): a wrong setting, a missing extra/weight or
            if stops_run(e):    # a worker that cannot load stops the run; a bad reference file, an upstream error,
                raise           # a refusal, a timeout fail this case only
            log.warning("%s failed on case %s: %s", self.name, case.id, e)
            rec = self._request_record(case, seed, request, time.perf_counter() - t0)
            return GenerationResult(None, rec, "failed", f"{type(e).__name__}: {e}")
        rec = self._request_record(case, seed, request, time.perf_counter() - t0, image.size)
        return GenerationResult(image, rec, "ok", None)

    def _request_record(
        self, case: "Case", seed: int, request: Request | None, elapsed: float, out: tuple[int, int] | None = None
    ) -> GenerationRecord:
        if request is None:
            return self.record(case, seed, elapsed_s=elapsed)
        return self.record(
            case, seed, prompt=request.prompt, reference_order=request.reference_order,
            gt_derived_inputs=request.gt_derived_inputs, elapsed_s=elapsed, requested_size=request.size,
            output_size=out, extra=dict(request.extra),
        )
