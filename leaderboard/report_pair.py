"""``mbench report RUN_A RUN_B [...]``: runs side by side on one self-contained HTML page.

Why: an aggregate says *that* two models differ; a reader needs to see *where* ("where does my model
copy-paste more than UNO?"). The page has the paired comparison of every later run against the first
(what ``mbench compare`` computes: deltas, paired bootstrap 95% CIs over the shared cases, tolerance
status) and one gallery row per case with every run's generated image next to the GT and references,
sortable by any metric of any run or by the per-case difference ``run − first run`` of any metric.

Comparables only: the runs must pass the comparability rule of ``compare`` (same bench, protocol,
profile, metric versions, case set); otherwise :class:`NotComparableError` (exit 2) unless
``allow_mixed``, which says so at the top of the page.
"""
from __future__ import annotations

import html
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.cases import CaseView, case_view
from multiid_bench.leaderboard.compare import Comparison, compare_runs
from multiid_bench.leaderboard.report import (REPORT_CSS, format_value, metric_header, metric_order, ref_caption,
                                              thumbnail)
from multiid_bench.leaderboard.store import RunResult, load_cases, load_results

__all__ = ["build_pair_report", "diff_key", "run_key_of"]

log = logging.getLogger(__name__)
_E = html.escape
#: One colour per run (the first is the reference), used for its column header and image frame.
RUN_COLOURS = ["#1f4e79", "#b35900", "#2e7d32", "#6a1b9a", "#00838f"]


def run_key_of(key: str, i: int) -> str:
    """The sort key of metric ``key`` of run ``i`` (``sim_gt.arcface@1``)."""
    return f"{key}@{i}"


def diff_key(key: str, i: int) -> str:
    """The sort key of the per-case difference run ``i`` − run 0 (``Δsim_gt.arcface@1``)."""
    return f"Δ{key}@{i}"


def _labels(runs: Sequence[RunResult]) -> list[str]:
    labels = [r.model for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.model} ({r.run_dir.name})" for r in runs]
    return [f"{chr(65 + i)}: {lab}" if i < 26 else lab for i, lab in enumerate(labels)]


def _comparison_table(comp: Comparison, label: str, rows_on_both: bool) -> str:
    out = [f'<table class="mbench"><caption>{_E(label)} (paired over the shared cases)</caption><thead><tr>'
           "<th>protocol · subset</th><th>metric</th><th>first</th><th>this</th><th>Δ this − first</th>"
           "<th>paired Δ, 95% CI</th><th>tolerance</th><th>status</th></tr></thead><tbody>"]
    for d in comp.deltas:
        ci = d.paired.text() if d.paired is not None else (
            "— (no per-case values)" if rows_on_both else "— (a run has no per-case rows)")
        cls = ' class="changed"' if d.failed else ""
        delta = "—" if d.delta is None else f"{d.delta:+.4f}"
        out.append(f"<tr{cls}><td class=\"model\">{_E(d.protocol)} · {_E(d.subset)}</td>"
                   f'<td class="model">{_E(metric_header(d.key))}</td><td>{format_value(d.old)}</td>'
                   f"<td>{format_value(d.new)}</td><td>{delta}</td><td>{_E(ci)}</td><td>{d.tolerance:.4g}</td>"
                   f"<td>{_E(d.status)}{' (past tolerance)' if d.failed else ''}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _sort_values(views: list[CaseView | None], keys: list[str]) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    base = views[0]
    for i, v in enumerate(views):
        for k in keys:
            x = v.metrics.get(k) if v is not None else None
            values[run_key_of(k, i)] = x
            if i > 0:
                b = base.metrics.get(k) if base is not None else None
                values[diff_key(k, i)] = None if x is None or b is None else x - b
    return values


def _figure(name: str, colour: str | None, path: Path | None, faces: dict[str, Any], boxes: Sequence[Sequence[float]],
            thumb: int, detectors: list[str], pad: float = 1.0, extra: str = "") -> str:
    uri, caption = thumbnail(path, faces, boxes, thumb, detectors, pad)
    if " · " in name and path is not None:  # a named reference (report.ref_caption): no file name
        caption = caption.removeprefix(f"{path.name} ")
    style = f' style="border:3px solid {colour}"' if colour else ""
    img = f'<img alt="{_E(name)}" src="{uri}"{style}>' if uri else f'<div class="missing">{_E(caption)}</div>'
    return f"<figure>{img}<figcaption><b>{_E(name)}</b>{extra}<br>{_E(caption)}</figcaption></figure>"


def _gallery(ids: list[str], per_run: list[dict[str, CaseView]], labels: list[str], thumb: int) -> tuple[str, list[str]]:
    keys = metric_order({k for views in per_run for c in views.values() for k, v in c.metrics.items() if v is not None})
    detectors = sorted({d for views in per_run for c in views.values() for v in c.faces.values() for d in v})
    cards = []
    for cid in ids:
        views = [runs.get(cid) for runs in per_run]
        first = next(v for v in views if v is not None)
        sort_values = _sort_values(views, keys)
        data = _E(json.dumps({**sort_values, "id": cid}))
        figs = []
        for i, (v, lab) in enumerate(zip(views, labels)):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            if v is None:
                figs.append(f'<figure><div class="missing">{_E(lab)}: no row for this case</div></figure>')
                continue
            status = "" if v.status == "ok" else f' · <span class="reason">{_E(v.status)}: {_E(v.reason)}</span>'
            figs.append(_figure(lab, colour, v.generated, v.faces.get("generated", {}), [], thumb, detectors,
                                extra=status))
        figs.append(_figure("GT", None, first.gt, first.faces.get("gt", {}), first.gt_boxes, thumb, detectors))
        pads = first.ref_pads + [1.0] * (len(first.refs) - len(first.ref_pads))
        figs += [_figure(ref_caption(first, j), None, p, first.faces.get(f"ref_{j}", {}), [], thumb, detectors, pads[j])
                 for j, p in enumerate(first.refs)]
        head = "".join(f'<th style="color:#fff;background:{RUN_COLOURS[i % len(RUN_COLOURS)]}">{_E(lab)}</th>'
                       for i, lab in enumerate(labels)) + "".join(f"<th>Δ {_E(lab[:1])}−A</th>" for lab in labels[1:])
        rows = []
        for k in keys:
            vals = [format_value(v.metrics.get(k)) if v is not None else "—" for v in views]
            diffs = [_signed(sort_values.get(diff_key(k, i))) for i in range(1, len(views))]
            rows.append(f"<tr><td>{_E(metric_header(k))}</td>" + "".join(f"<td>{x}</td>" for x in vals + diffs) + "</tr>")
        cards.append(f'<div class="card st-{_E(first.status)}" id="case-{_E(cid)}" data-id="{_E(cid)}" data-metrics="{data}">'
                     f'<h4>{_E(cid)} <span class="badge">{_E(first.subset)}</span></h4>'
                     f'<p class="prompt">{_E(first.prompt)}</p><div class="imgs">{"".join(figs)}</div>'
                     f'<table class="mini"><tr><th>metric</th>{head}</tr>{"".join(rows)}</table></div>')
    return f'<div id="gallery">{"".join(cards)}</div>', keys


def _signed(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.4f}"


_PAIR_CSS = """
.imgs figure img{max-width:240px}
table.mbench tr.changed td{background:#fde0e0}
table.mini th{background:#eee;padding:1px 8px;font-weight:normal}
"""

_PAIR_JS = """
(function(){
  var gallery=document.getElementById('gallery'), select=document.getElementById('sortkey'),
      dirBtn=document.getElementById('sortdir');
  function val(el,key){ if(key==='id') return el.getAttribute('data-id');
    var v=JSON.parse(el.getAttribute('data-metrics'))[key]; return (v===null||v===undefined)?null:v; }
  function cmp(key,dir){ return function(a,b){ var x=val(a,key), y=val(b,key);
    if(x===null&&y===null) return 0; if(x===null) return 1; if(y===null) return -1;
    var r=(typeof x==='string')?x.localeCompare(y):x-y; return dir==='desc'?-r:r; }; }
  function sortAll(key,dir){
    Array.prototype.slice.call(gallery.children).sort(cmp(key,dir)).forEach(function(el){gallery.appendChild(el);});
    select.value=key; dirBtn.textContent=dir; document.body.setAttribute('data-sorted',key+':'+dir); }
  select.addEventListener('change',function(){ sortAll(select.value, dirBtn.textContent); });
  dirBtn.addEventListener('click',function(){ sortAll(select.value, dirBtn.textContent==='desc'?'asc':'desc'); });
  var m=/sort=([^&]+):(asc|desc)$/.exec(decodeURIComponent(location.hash));
  if(m) sortAll(m[1],m[2]); else document.body.setAttribute('data-sorted','');
  document.body.setAttribute('data-ready','1');
})();
"""


def build_pair_report(run_dirs: Sequence[str | Path | RunResult], out: str | Path, *, protocol: str | None = None,
                      allow_mixed: bool = False, thumb: int = 224, max_cases: int | None = None,
                      n_resamples: int = 2000) -> Path:
    """Write the side-by-side page of two or more runs (the first is the reference) and return its path.

    Args:
        run_dirs: run folders (or their ``results.json``); at least two.
        out: the HTML file to write.
        protocol: the protocol compared and shown per case (both must hold it); ``None``: every protocol
            in the comparison and the first run's headline protocol per case (headlines must match).
        allow_mixed: compare runs that are not comparable (a warning on the page says why).
        thumb: longest side of the thumbnails; max_cases: gallery of the first N cases (first run's order).
        n_resamples: of the paired bootstrap.

    Raises:
        ConfigError: fewer than two runs. NotComparableError: the runs may not be compared.
    """
    if len(run_dirs) < 2:
        raise ConfigError("a side-by-side report needs at least two runs: mbench report RUN_A RUN_B --out cmp.html")
    runs = [r if isinstance(r, RunResult) else load_results(r) for r in run_dirs]
    labels = _labels(runs)
    comps = [compare_runs(runs[0], r, allow_mixed=allow_mixed, protocol=protocol, n_resamples=n_resamples)
             for r in runs[1:]]
    case_protocol = protocol or runs[0].protocol
    per_run: list[dict[str, CaseView]] = []
    ids: list[str] = []
    for r in runs:
        rows = load_cases(r) if r.has_cases else []
        views = {c.id: c for c in (case_view(row, r.run_dir, case_protocol) for row in rows)}
        per_run.append(views)
        ids += [cid for cid in views if cid not in ids]
    shown = ids if max_cases is None else ids[:max_cases]
    gallery, keys = _gallery(shown, per_run, labels, thumb)
    options = [("id", "case id")]
    for k in keys:
        options += [(diff_key(k, i), f"Δ {metric_header(k)}: {labels[i][:1]} − A") for i in range(1, len(runs))]
    for k in keys:
        options += [(run_key_of(k, i), f"{metric_header(k)} of {lab}") for i, lab in enumerate(labels)]
    warnings = [w for c in comps for w in c.warnings]
    missing = [f"{lab}: no per-case rows" for lab, r in zip(labels, runs) if not r.has_cases]
    facts = "".join(
        f'<tr><td class="model" style="color:{RUN_COLOURS[i % len(RUN_COLOURS)]}"><b>{_E(lab)}</b></td>'
        f"<td>{_E(r.protocol)}</td><td>{_E(r.profile_name or '—')}</td>"
        f"<td>{_E(str(r.bench['id']))}@{_E(str(r.bench['manifest_sha256'])[:8])}</td>"
        f"<td>{r.counts['evaluated']}/{r.counts['expected']}</td><td class=\"prov\">{_E(str(r.path))}</td></tr>"
        for i, (lab, r) in enumerate(zip(labels, runs)))
    body = f"""<h1>MultiID-Bench side by side · {' vs '.join(_E(lab) for lab in labels)}</h1>
{''.join(f'<p class="warn">{_E(w)}</p>' for w in warnings + missing)}
<table class="mbench"><thead><tr><th>run</th><th>headline protocol</th><th>profile</th><th>bench</th>
<th>evaluated</th><th>results file</th></tr></thead><tbody>{facts}</tbody></table>
<h2 id="comparison">Paired comparison against {_E(labels[0])}</h2>
<p>Δ = this run − the first run; the paired 95% CI resamples the shared cases (<code>mbench compare</code>).</p>
{''.join(_comparison_table(c, lab, runs[0].has_cases and r.has_cases) for c, lab, r in zip(comps, labels[1:], runs[1:]))}
<h2 id="gallery-title">Per case ({len(shown)} of {len(ids)} cases, {_E(case_protocol)} protocol)</h2>
<p>Sort by <select id="sortkey">{''.join(f'<option value="{_E(k)}">{_E(t)}</option>' for k, t in options)}</select>
<button id="sortdir" type="button">desc</button> (a link may carry <code>#sort=KEY:desc</code>; missing values last)</p>
{gallery}"""
    from multiid_bench.leaderboard.render import HTML_STYLE

    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mbench side by side · "
            f"{_E(' vs '.join(labels))}</title><style>{HTML_STYLE}{REPORT_CSS}{_PAIR_CSS}</style></head>"
            f"<body>{body}<script>{_PAIR_JS}</script></body></html>\n")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    log.info("side-by-side report of %d runs written to %s (%d cases)", len(runs), out_path, len(shown))
    return out_path
