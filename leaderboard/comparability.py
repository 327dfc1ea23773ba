"""Which rows may be ranked against each other: comparability is a property of a row.

A number means something only next to numbers made the same way. Every row of a leaderboard, every point
of the trade-off plot and both runs of ``mbench compare`` carry a :class:`RowKey`: the bench (and its
manifest hash), the subset, the protocol, the face profile and its face models, the metric card versions
and whether the run is reportable. :func:`differences` is the one rule that says why two keys differ;
:func:`comparable_set` applies it to a whole view: ranks, best marks, the fitted curve and the Pareto front
are computed only among rows that are mutually comparable. Rows outside that set are shown greyed with a
one-line reason and never ranked; ``--allow-mixed`` ranks them anyway and says so.

Why the paper rows anchor the view: the paper's table is the reference a reader compares against, so a
measured run that is not comparable with it (the demo bench, the offline dlib profile, the strict
protocol) must not be crowned above it. Without paper rows, the first reportable measured run anchors.

A field that one side does not state (``None``) is not checked: the paper states no manifest hash and no
metric card versions; Table 1b (OmniContext) states no face profile.

Judged rows (OmniContext PF/SC/Overall) also carry their **judge** (backend, model, size, revision, prompt
variant and version): two rows judged by different judges are not ranked together, and Table 1b's rows
(Qwen2.5-VL, size unstated, the face-identity SC prompt) only next to a measured run with a matching judge.
The judge rule lives in :func:`multiid_bench.judge.identity.judge_differences`; :func:`_judge_part` is its
only caller here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping, Sequence

from multiid_bench.leaderboard.paper import normalise_subset

if TYPE_CHECKING:
    import pandas as pd

    from multiid_bench.judge.identity import JudgeIdentity

__all__ = [
    "FIELDS",
    "RowKey",
    "Verdict",
    "comparable_set",
    "differences",
    "frame_key",
    "paper_key",
    "run_judge",
    "run_key",
]

#: The fields of a key, in the order reasons are listed. ``face_models`` goes with ``profile``.
FIELDS = ("bench", "subset", "protocol", "profile", "face_models", "metric_versions", "judge", "reportable")


@dataclass(frozen=True)
class RowKey:
    """How a row's numbers were made. ``None`` means "not stated" (not checked)."""

    label: str
    bench: str | None = None
    manifest_sha256: str | None = None
    subset: str | None = None
    protocol: str | None = None
    profile: str | None = None
    face_models: tuple[str, ...] | None = None
    metric_versions: tuple[tuple[str, str], ...] | None = None
    reportable: bool = True
    is_paper: bool = False
    judge: "JudgeIdentity | None" = None  # VLM-judged rows only (OmniContext); None = no judge / not stated
    #: the hash of the view's cases (``bench.subset_sha256[subset]``); when both keys state one, it replaces
    #: the manifest check: a ``--subset p2`` run and a full run have other manifests but the same p2 cases
    cases_sha256: str | None = None

    @property
    def bench_text(self) -> str:
        if self.bench is None:
            return "unstated bench"
        return f"{self.bench}@{self.manifest_sha256[:8]}" if self.manifest_sha256 else str(self.bench)


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def differences(a: RowKey, b: RowKey, *, ignore: Collection[str] = ()) -> list[str]:
    """Why ``a`` and ``b`` may not be ranked against each other (empty: they may).

    The single comparability rule of the leaderboard, the report, the trade-off plot and ``compare``.

    Args:
        a, b: the two keys.
        ignore: field names of :data:`FIELDS` not to check (``compare``'s ``[comparability]`` switches).

    Example:
        >>> differences(RowKey("A", bench="demo", profile="offline"), RowKey("B", bench="demo", profile="paper"))
        ['profile offline vs paper']
    """
    unknown = set(ignore) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown comparability field(s) {sorted(unknown)}; known: {FIELDS}")
    out: list[str] = []
    if "bench" not in ignore and a.bench is not None and b.bench is not None:
        same_id = _norm(a.bench) == _norm(b.bench)
        if a.cases_sha256 is not None and b.cases_sha256 is not None:  # issue 29: same cases of one source bench
            same_sha = a.cases_sha256 == b.cases_sha256
        else:
            same_sha = a.manifest_sha256 is None or b.manifest_sha256 is None or a.manifest_sha256 == b.manifest_sha256
        if not (same_id and same_sha):
            out.append(f"bench {a.bench_text} vs {b.bench_text}")
    if "subset" not in ignore and a.subset and b.subset and normalise_subset(a.subset) != normalise_subset(b.subset):
        out.append(f"subset {a.subset} vs {b.subset}")
    if "protocol" not in ignore and a.protocol and b.protocol and a.protocol != b.protocol:
        out.append(f"protocol {a.protocol} vs {b.protocol}")
    if "profile" not in ignore and a.profile is not None and b.profile is not None and a.profile != b.profile:
        out.append(f"profile {a.profile} vs {b.profile}")
    if "face_models" not in ignore and a.face_models and b.face_models \
            and sorted(a.face_models) != sorted(b.face_models):
        out.append(f"face models {', '.join(sorted(a.face_models))} vs {', '.join(sorted(b.face_models))}")
    if "metric_versions" not in ignore and a.metric_versions is not None and b.metric_versions is not None:
        va, vb = dict(a.metric_versions), dict(b.metric_versions)
        for mid in sorted(set(va) & set(vb)):
            if va[mid] != vb[mid]:
                out.append(f"metric {mid} version {va[mid]} vs {vb[mid]}")
    if "judge" not in ignore:
        out.extend(_judge_part(a, b))
    if "reportable" not in ignore and a.reportable != b.reportable:
        out.append("--limit run (not reportable) vs full run" if not a.reportable
                   else "full run vs --limit run (not reportable)")
    return out


def _judge_part(a: RowKey, b: RowKey) -> list[str]:
    """The judge component of the key (issue 24): see :func:`multiid_bench.judge.identity.judge_differences`."""
    if a.judge is None or b.judge is None:
        return []
    from multiid_bench.judge.identity import judge_differences

    return judge_differences(a.judge, b.judge)


@dataclass
class Verdict:
    """Per key (same order as given): may it be ranked, and if not, the one-line reason."""

    ranked: list[bool]
    reasons: list[str]
    anchor: RowKey | None = None
    warnings: list[str] = field(default_factory=list)

    def banners(self, labels: Sequence[str]) -> list[str]:
        """One line per row that is not ranked because it is not comparable (or, mixed, the warnings)."""
        out = [f"{lab}: not ranked, {why}" for lab, ok, why in zip(labels, self.ranked, self.reasons) if not ok and why]
        return list(dict.fromkeys(out)) + self.warnings


def comparable_set(keys: Sequence[RowKey], *, allow_mixed: bool = False) -> Verdict:
    """The rows that may be ranked together: the anchor and every row comparable with all rows kept so far.

    Paper rows are visited first (the paper's table is the reference), then the others in the given order;
    the first reportable row anchors. A row that differs from a kept row is not ranked, with the reason
    naming that row. Non-reportable (``--limit``) rows are never ranked, even with ``allow_mixed``.

    With ``allow_mixed`` every reportable row is ranked, and each difference becomes a warning.
    """
    order = sorted(range(len(keys)), key=lambda i: (not keys[i].is_paper, i))
    ranked = [False] * len(keys)
    reasons = [""] * len(keys)
    kept: list[RowKey] = []
    warnings: list[str] = []
    for i in order:
        k = keys[i]
        if not k.reportable:
            reasons[i] = "a --limit run (not reportable) is never ranked"
            continue
        clash = next(((other, d) for other in kept if (d := differences(k, other, ignore=("reportable",)))), None)
        if clash is None:
            ranked[i] = True
            if not any(x == k for x in kept):
                kept.append(k)
            continue
        other, diffs = clash
        why = f"not comparable with {other.label} ({'; '.join(diffs)})"
        if allow_mixed:
            ranked[i] = True
            warnings.append(f"--allow-mixed: {k.label} is ranked although {why}")  # not kept: one warning per row
        else:
            reasons[i] = why + "; --allow-mixed ranks it anyway"
    return Verdict(ranked=ranked, reasons=reasons, anchor=kept[0] if kept else None,
                   warnings=list(dict.fromkeys(warnings)))


# ---------------------------------------------------------------------------------------------- building keys

def _paper_comparability(table_id: str) -> dict[str, Any]:
    from multiid_bench.leaderboard.paper import paper_meta

    meta = paper_meta()
    base = dict(meta.get("comparability", {}))
    base.update(meta["tables"].get(table_id, {}).get("comparability", {}))
    return base


def paper_key(table_id: str) -> RowKey:
    """The key of the paper's Table ``table_id`` (from ``paper.json``: what the paper states, nothing more)."""
    from multiid_bench.leaderboard.paper import paper_meta

    info = paper_meta()["tables"][table_id]
    comp = _paper_comparability(table_id)
    fms = comp.get("face_models")
    return RowKey(
        label=f"the paper's Table {table_id}",
        bench=comp.get("bench"), manifest_sha256=None, subset=info.get("subset"), protocol=comp.get("protocol"),
        profile=comp.get("profile"), face_models=tuple(fms) if fms else None, metric_versions=None,
        reportable=True, is_paper=True, judge=_paper_judge(comp),
    )


def _paper_judge(comp: Mapping[str, Any]) -> "JudgeIdentity | None":
    """The judge a paper table states (``paper.json`` ``comparability.judge``: model family, prompt variant)."""
    stated = comp.get("judge")
    if not isinstance(stated, Mapping):
        return None
    from multiid_bench.judge.identity import JudgeIdentity

    return JudgeIdentity(model=str(stated["model"]), backend=stated.get("backend"), revision=stated.get("revision"),
                         prompt_variant=stated.get("prompt_variant"), prompt_version=stated.get("prompt_version"))


def _canonical_bench(bench_id: str, manifest: str | None) -> str:
    """A measured bench id, or the paper's bench name when the id/manifest is a known release of it."""
    from multiid_bench.leaderboard.paper import paper_meta

    meta = paper_meta()
    for comp in [meta.get("comparability", {})] + [t.get("comparability", {}) for t in meta["tables"].values()]:
        ids = {_norm(x) for x in comp.get("bench_ids", [])}
        if comp.get("bench") and (_norm(bench_id) in ids or (manifest and manifest in comp.get("manifest_sha256", []))):
            return str(comp["bench"])
    return bench_id


def _face_models(data: Mapping[str, Any]) -> tuple[str, ...] | None:
    fms = [_face_model_id(m) for m in data.get("face_models") or [] if isinstance(m, Mapping) and m.get("name")]
    prof = data.get("profile")
    if not fms and isinstance(prof, Mapping):
        fms = [str(e["model"]) for e in prof.get("entries") or [] if isinstance(e, Mapping) and e.get("model")]
    return tuple(sorted(set(fms))) or None


def _face_model_id(model: Mapping[str, Any]) -> str:
    """A face model's name; a plug-in's also carries its card version, which names its package and version
    (multiid_bench.faces.plugins, multiid_bench.metrics.plugins), so runs made with two versions of a plug-in never rank together."""
    version = str((model.get("card") or {}).get("version") or "")
    return f"{model['name']} {version}" if "(plugin " in version else str(model["name"])


def _profile(data: Mapping[str, Any]) -> str:
    prof = data.get("profile")
    name = prof.get("name") if isinstance(prof, Mapping) else prof
    return str(name) if name else "(not recorded)"


def _versions(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    mv = data.get("cards", data.get("metric_versions"))
    return tuple(sorted((str(k), str(v)) for k, v in mv.items())) if isinstance(mv, Mapping) else None


def run_key(data: Mapping[str, Any], *, label: str, subset: str | None = None, protocol: str | None = None) -> RowKey:
    """The key of a measured run (a parsed ``results.json``); ``protocol`` defaults to its headline protocol.

    For one subset, the hash compared is the run's hash of that subset's cases (``bench.subset_sha256``,
    written since issue 29) when it has one: a ``--subset p2`` run and a full run then compare on p2.
    """
    bench = data["bench"]
    sha = str(bench.get("manifest_sha256") or "") or None
    per_subset = bench.get("subset_sha256")  # issue 29: the hash of this subset's cases
    cases_sha = per_subset.get(subset) if subset is not None and isinstance(per_subset, Mapping) else None
    return RowKey(
        label=label, bench=_canonical_bench(str(bench["id"]), sha), manifest_sha256=sha, cases_sha256=cases_sha,
        subset=subset,
        protocol=protocol or str(data["protocol"]), profile=_profile(data), face_models=_face_models(data),
        metric_versions=_versions(data), reportable=bool(data.get("reportable", True)), judge=run_judge(data),
    )


def run_judge(data: Mapping[str, Any]) -> "JudgeIdentity | None":
    """The judge of a measured run (``results.json["judge"]``, else the ``judge``/``prompt_version`` of its
    judged metric entries), or ``None`` for a run without a judge."""
    from multiid_bench.judge.identity import judge_from_card

    record = data.get("judge")
    if isinstance(record, Mapping) and record.get("id"):
        return judge_from_card({"judge": record["id"], "prompt_variant": record.get("prompt_variant"),
                                "prompt_version": record.get("prompt_version")})
    for block in (data.get("metrics") or {}).values():
        for entry in (block or {}).values():
            judged = entry.get("overall") if isinstance(entry, Mapping) else None
            if isinstance(judged, Mapping) and judged.get("judge"):
                return judge_from_card(judged)
    return None


def _results_json(path: str) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    st = p.stat()  # keyed by mtime and size too: a run re-scored in place is read again
    return _read_json(str(p), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _read_json(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def frame_key(row: "pd.Series | Mapping[str, Any]", *, label: str) -> RowKey:
    """The key of one row of the tidy frame (``store.combined_frame``): a paper row or a measured row."""
    from multiid_bench.leaderboard.paper import PAPER

    if row["provenance"] == PAPER:
        return paper_key(str(row["table"]))
    data = _results_json(str(row["run_path"]))
    key = run_key(data, label=label, subset=str(row["subset"]), protocol=str(row["protocol"]))
    return key
