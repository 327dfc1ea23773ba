"""The face stage of the runner: decode once, detect once per detector, embed once per face model.

Given the image views a chunk of cases needs (generated, GT, padded references), :class:`FeatureExtractor`
returns, per view, the detected faces of each detector and the embeddings of each face model:

1. an entry already in the :class:`~multiid_bench.runner.cache.FeatureCache` (or this run's memory) is
   reused, so the image is not even decoded;
2. otherwise the file is read and decoded once (``multiid_bench.images.decode_image``), padded if it is a
   reference, run through each detector that misses (``detect_batch`` images per call), aligned, and
   the faces of *all* images of the chunk are embedded together in batches of ``batch_size``.

Overlap (why: on a GPU the embedding of one group of images is short next to decoding and detecting the
next): the views are cut into groups of ``detect_batch`` detector misses; a worker thread decodes, detects
and aligns group *g+1* while this thread embeds the crops of group *g*. Crops are queued per face model and
embedded in exactly the batches the sequential path would use (the first ``k * batch_size`` queued crops),
so rows do not depend on ``overlap``. torch, onnxruntime, OpenCV and Pillow release the GIL in their
kernels, so the two stages really run at once. ``stage_seconds`` records the busy time of each stage
(decode, detect:<id>, align:<name>, embed:<name>).

Per-image failures (a missing or corrupt file, a detector crash on one image) become an ``error`` on that
view, so the case that needs it fails with the reason and the rest of the run goes on. Missing weights or
dependencies (``MBenchError``) stop the run.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from multiid_bench.errors import MBenchError, stops_run
from multiid_bench.runner.cache import FeatureCache, view_key
from multiid_bench.runner.face_views import (  # re-exported: callers import them from here
    AlignFn, Backend, DetectorLike, FaceBackend, FaceSet, ImageSpec, ViewResult, WorkCounters,
)
from multiid_bench.runner.face_views import face_dict as _face_dict

__all__ = ["AlignFn", "Backend", "FaceBackend", "FaceSet", "FeatureExtractor", "ImageSpec", "ViewResult", "WorkCounters"]

log = logging.getLogger(__name__)

class _Queue:
    """Crops of one face model waiting for a full batch, with the views they belong to (in order)."""

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []
        self.owners: list[tuple[ImageSpec, int]] = []
        self.n = 0  # crops not embedded yet
        self.ready: list[np.ndarray] = []  # embeddings of crops whose view is not complete yet

    def add(self, spec: ImageSpec, crops: np.ndarray) -> None:
        if len(crops):
            self.crops.append(crops)
        self.owners.append((spec, int(len(crops))))
        self.n += int(len(crops))


class FeatureExtractor:
    """Batched, cached, overlapped face detection and embedding over image views (see the module docstring)."""

    def __init__(
        self, backends: Sequence[FaceBackend], cache: FeatureCache, *, batch_size: int = 32,
        detect_batch: int = 8, counters: WorkCounters | None = None, memo_size: int = 4096, overlap: bool = True,
    ) -> None:
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"face model names must be unique in a profile, got {names}")
        self.backends = list(backends)
        self.cache = cache
        self.batch_size = batch_size
        self.detect_batch = detect_batch
        self.overlap = overlap
        self.work = counters or WorkCounters()
        self.stage_seconds: dict[str, float] = {}
        self._sha: dict[tuple[str, int, int], str] = {}
        self._memo: dict[tuple[str, str], Any] = {}
        self._memo_size = memo_size
        self._lock = threading.Lock()  # counters, timings and the memo are shared with the worker thread
        self._pool: ThreadPoolExecutor | None = None
        self.last_arrays: dict[str, np.ndarray] = {}
        for b in self.backends:
            cache.describe("emb", b.model_key, b.describe())

    def close(self) -> None:
        """Stop the worker thread (a later :meth:`run` starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ---- bookkeeping shared by both threads ---------------------------------------------------
    def _bump(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            self.work.bump(counter, key, n)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t0

    def _recall(self, key: tuple[str, str]) -> Any:
        with self._lock:
            return self._memo.get(key)

    def _remember(self, key: tuple[str, str], value: Any) -> None:
        with self._lock:
            if key not in self._memo and len(self._memo) >= self._memo_size:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = value

    # ---- hashing ------------------------------------------------------------------------------
    def sha256(self, path: str) -> str:
        """File sha256, hashed once per run (keyed by path, size and mtime)."""
        from multiid_bench.images import image_sha256

        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if key not in self._sha:
            with self._timed("hash"):
                self._sha[key] = image_sha256(path)
            self.work.images_hashed += 1
        return self._sha[key]

    # ---- main entry ---------------------------------------------------------------------------
    def run(self, specs: Sequence[ImageSpec]) -> dict[ImageSpec, ViewResult]:
        """Faces and embeddings for every spec (deduplicated); errors are per view, never raised."""
        results: dict[ImageSpec, ViewResult] = {}
        views: dict[ImageSpec, str] = {}
        for spec in dict.fromkeys(specs):
            try:
                sha = self.sha256(spec.path)
            except FileNotFoundError:
                results[spec] = ViewResult(error=f"image file {spec.path} does not exist")
                continue
            except (OSError, MBenchError) as e:
                results[spec] = ViewResult(error=str(e))
                continue
            results[spec] = ViewResult(sha256=sha)
            views[spec] = view_key(sha, spec.pad_ratio) + (f"-jpeg75x{spec.jpeg}" if spec.jpeg else "")
        arrays: dict[ImageSpec, np.ndarray] = {}
        misses = self._detection_lookup(views, results)
        groups = self._groups(list(views), misses)
        queues = {b.name: _Queue() for b in self.backends}
        if self.overlap and len(groups) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mbench-detect")
            pending: Future[dict[str, list[tuple[ImageSpec, np.ndarray]]]] = self._pool.submit(
                self._prepare, groups[0], misses, views, results, arrays)
            for g in range(len(groups)):
                prepared = pending.result()  # re-raises a stopping error of the worker here
                if g + 1 < len(groups):
                    pending = self._pool.submit(self._prepare, groups[g + 1], misses, views, results, arrays)
                self._embed_prepared(prepared, queues, views, results, final=False)
        else:
            for group in groups:
                self._embed_prepared(self._prepare(group, misses, views, results, arrays), queues, views, results,
                                     final=False)
        self._embed_prepared({}, queues, views, results, final=True)
        # Unpadded pixels decoded here, for the image scorers of the same chunk (decode once). Only the file's
        # own pixels: a JPEG round trip of the same path (paper_pixels="official") is for the face stage alone.
        self.last_arrays = {s.path: a for s, a in arrays.items() if s.pad_ratio == 1.0 and not s.jpeg}
        return results

    def _detector_groups(self) -> dict[str, list[FaceBackend]]:
        groups: dict[str, list[FaceBackend]] = {}
        for b in self.backends:
            groups.setdefault(b.det_key, []).append(b)
        return groups

    def _detection_lookup(self, views: Mapping[ImageSpec, str], results: dict[ImageSpec, ViewResult]) -> dict[str, set[ImageSpec]]:
        """Cached detections onto the results; returns, per detector key, the views still to detect."""
        misses: dict[str, set[ImageSpec]] = {}
        for det_key, group in self._detector_groups().items():
            det = group[0].detector
            todo = misses.setdefault(det_key, set())
            for spec, view in views.items():
                memo = self._recall((det_key, view))
                faces = memo if memo is not None else self.cache.get_faces(det_key, view)
                if faces is not None:
                    results[spec].by_detector[det_key] = faces
                    self._bump("cache_hits", f"det:{det.id}")
                    self._remember((det_key, view), faces)
                else:
                    todo.add(spec)
            if todo:
                self._bump("cache_misses", f"det:{det.id}", len(todo))
        return misses

    def _groups(self, order: list[ImageSpec], misses: Mapping[str, set[ImageSpec]]) -> list[list[ImageSpec]]:
        """Consecutive views, each group closing when a detector has ``detect_batch`` misses in it."""
        groups: list[list[ImageSpec]] = [[]]
        count = {k: 0 for k in misses}
        for spec in order:
            if any(count[k] + (spec in m) > self.detect_batch for k, m in misses.items()):
                groups.append([])
                count = {k: 0 for k in misses}
            groups[-1].append(spec)
            for k, m in misses.items():
                count[k] += spec in m
        return [g for g in groups if g]

    def _array(self, spec: ImageSpec, results: dict[ImageSpec, ViewResult], arrays: dict[ImageSpec, np.ndarray]) -> np.ndarray | None:
        """Decode (once per file: every view of a path derives from the same pixels) and pad; a decode failure is
        recorded on the view."""
        if spec in arrays:
            return arrays[spec]
        if results[spec].error:
            return None
        try:
            arr = self._view_pixels(spec, results, arrays)
        except Exception as e:  # a poison pill (e.g. a side over JPEG's 65,500 px): this view fails, the run goes on
            if stops_run(e):
                raise
            results[spec].error = f"cannot prepare {spec.path}: {type(e).__name__}: {e}"
            log.warning("%s", results[spec].error)
            return None
        if arr is not None:
            arrays[spec] = arr
        return arr

    def _view_pixels(self, spec: ImageSpec, results: dict[ImageSpec, ViewResult],
                     arrays: dict[ImageSpec, np.ndarray]) -> np.ndarray | None:
        from multiid_bench.images import decode_image

        as_given = ImageSpec(spec.path, 1.0)  # the file's own pixels, also what the image scorers read
        with self._timed("decode"):
            arr = arrays.get(as_given)
            if arr is None:
                try:
                    arr = decode_image(spec.path).array
                except MBenchError as e:
                    results[spec].error = str(e)
                    return None
                with self._lock:
                    self.work.images_decoded += 1
                arrays[as_given] = arr
            if spec.jpeg:
                from multiid_bench.images import jpeg_round_trip

                arr = jpeg_round_trip(arr, spec.jpeg)
            if spec.pad_ratio == 1.0:
                pass
            else:  # the paper's reference padding (eval-protocol section 3.1), one implementation for all
                from multiid_bench.data.refcrop import pad_reference

                arr = pad_reference(np.asarray(arr), spec.pad_ratio)
        return arr

    # ---- worker side: decode, detect, align ---------------------------------------------------
    def _prepare(
        self, group: list[ImageSpec], misses: Mapping[str, set[ImageSpec]], views: Mapping[ImageSpec, str],
        results: dict[ImageSpec, ViewResult], arrays: dict[ImageSpec, np.ndarray],
    ) -> dict[str, list[tuple[ImageSpec, np.ndarray]]]:
        """Detect the group's misses, then align every view whose embeddings are not cached.

        Returns ``{backend name: [(view, aligned crops)]}`` in view order; views whose embeddings were
        cached get their :class:`FaceSet` here already.
        """
        for det_key, group_backends in self._detector_groups().items():
            det = group_backends[0].detector
            part = [s for s in group if s in misses[det_key] and self._array(s, results, arrays) is not None]
            if not part:
                continue
            with self._timed(f"detect:{det.id}"):
                found = self._detect_batch(det, part, arrays, results)
            for spec, faces in found.items():
                dicts = [_face_dict(f) for f in faces]
                results[spec].by_detector[det_key] = dicts
                self.cache.put_faces(det_key, views[spec], dicts)
                self._remember((det_key, views[spec]), dicts)
                self._bump("detector_images", det.id)
                self._bump("faces_detected", det.id, len(dicts))
        prepared: dict[str, list[tuple[ImageSpec, np.ndarray]]] = {}
        for b in self.backends:
            todo = prepared.setdefault(b.name, [])
            n_miss = 0
            for spec in group:
                res = results[spec]
                faces = res.by_detector.get(b.det_key)
                if res.error or faces is None:
                    continue
                view = views[spec]
                memo = self._recall((b.model_key, view))
                emb = memo if memo is not None else self.cache.get_embeddings(b.model_key, view, b.embedding_dim)
                if emb is not None and emb.shape[0] == len(faces):
                    res.by_model[b.name] = FaceSet(faces, emb)
                    self._bump("cache_hits", f"emb:{b.name}")
                    self._remember((b.model_key, view), emb)
                    continue
                n_miss += 1
                if not faces:
                    todo.append((spec, np.zeros((0, 1, 1, 3), np.uint8)))
                    continue
                arr = self._array(spec, results, arrays)
                if arr is None:
                    continue
                try:
                    with self._timed(f"align:{b.name}"):
                        todo.append((spec, np.asarray(b.align(arr, faces))))  # type: ignore[misc]
                except Exception as e:  # one view the aligner cannot handle fails alone
                    if stops_run(e):
                        raise
                    res.error = f"face alignment ({b.name}) failed on {spec.path}: {type(e).__name__}: {e}"
                    log.warning("%s", res.error)
            if n_miss:
                self._bump("cache_misses", f"emb:{b.name}", n_miss)
        return prepared

    def _detect_batch(
        self, det: DetectorLike, part: list[ImageSpec], arrays: Mapping[ImageSpec, np.ndarray],
        results: dict[ImageSpec, ViewResult],
    ) -> dict[ImageSpec, list[Any]]:
        try:
            out = det.detect([arrays[s] for s in part])
            return dict(zip(part, out))
        except MBenchError:
            raise
        except Exception as e:  # isolate the image that breaks the detector; the others go on
            if len(part) == 1:
                results[part[0]].error = f"face detector {det.id} failed on {part[0].path}: {type(e).__name__}: {e}"
                log.warning("%s", results[part[0]].error)
                return {}
            merged: dict[ImageSpec, list[Any]] = {}
            for s in part:
                merged.update(self._detect_batch(det, [s], arrays, results))
            return merged

    # ---- this thread: embed -------------------------------------------------------------------
    def _embed_prepared(
        self, prepared: Mapping[str, list[tuple[ImageSpec, np.ndarray]]], queues: dict[str, _Queue],
        views: Mapping[ImageSpec, str], results: dict[ImageSpec, ViewResult], *, final: bool,
    ) -> None:
        """Queue the prepared crops; embed whole batches (everything left when ``final``)."""
        for b in self.backends:
            q = queues[b.name]
            for spec, crops in prepared.get(b.name, ()):
                q.add(spec, crops)
            take = q.n if final else (q.n // self.batch_size) * self.batch_size
            if take:
                stack = np.concatenate(q.crops, axis=0)
                q.ready.append(self._embed_crops(b, stack[:take]))
                rest = stack[take:]
                q.crops, q.n = ([rest] if len(rest) else []), int(len(rest))
            # owners whose crops are all embedded are completed now (a view may straddle two batches)
            n_ready = sum(len(e) for e in q.ready)
            done, used = 0, 0
            while done < len(q.owners) and used + q.owners[done][1] <= n_ready:
                used += q.owners[done][1]
                done += 1
            if done == 0:
                continue
            ready = np.concatenate(q.ready, axis=0) if q.ready else np.zeros((0, b.embedding_dim), np.float32)
            emb_all, left = ready[:used], ready[used:]
            q.ready = [left] if len(left) else []
            owners, q.owners = q.owners[:done], q.owners[done:]
            offset = 0
            for spec, k in owners:
                emb = emb_all[offset : offset + k]
                offset += k
                if not np.all(np.isfinite(emb)):
                    results[spec].error = f"face model {b.name} returned NaN/inf embeddings for {spec.path}"
                    continue
                faces = results[spec].by_detector[b.det_key]
                results[spec].by_model[b.name] = FaceSet(faces, emb)
                self.cache.put_embeddings(b.model_key, views[spec], emb)
                self._remember((b.model_key, views[spec]), emb)
                self._bump("images_embedded", b.name)

    def _embed_crops(self, b: FaceBackend, crops: np.ndarray) -> np.ndarray:
        """Crops through the model in batches of ``batch_size``; ``(N, D)`` float32."""
        if not len(crops):
            return np.zeros((0, b.embedding_dim), dtype=np.float32)
        out = []
        with self._timed(f"embed:{b.name}"):
            for start in range(0, crops.shape[0], self.batch_size):
                batch = crops[start : start + self.batch_size]
                out.append(np.asarray(b.model.embed(batch), dtype=np.float32))
                self._bump("embed_batches", b.name)
                self._bump("forward_passes", b.name, int(batch.shape[0]))
        return np.concatenate(out, axis=0)
