"""``mbench report``: one self-contained HTML page for one run.

Everything is inline (CSS, a small sorting script, images as base64 JPEG thumbnails, the plot as a
base64 PNG), so the page can be mailed, attached to a CI run or opened from a laptop without the run
directory. Sections: run facts; per-protocol metric tables (value ± CI, n, statistic); the leaderboard
view with the paper's rows for context; the trade-off plot; a per-case table and gallery (generated |
GT | references with detected boxes drawn, per-case metrics, failure reasons), sortable by any metric.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Sequence

from multiid_bench.leaderboard.cases import CaseView, case_view
from multiid_bench.leaderboard.store import RunResult, combined_frame, load_cases, load_results
from multiid_bench.leaderboard.tables import MIN_CI_N
from multiid_bench.metrics.cards import CARDS, get_card, undefined_for_subset
from multiid_bench.runner.summary import counts_line

__all__ = ["build_report", "check_report_target"]

log = logging.getLogger(__name__)
_DET_COLOURS = ["#00e5ff", "#ff3d00", "#76ff03", "#d500f9", "#ffea00"]
_E = html.escape


def _thumb(path: Path | None, faces: dict[str, list[dict[str, Any]]], gt_boxes: Sequence[Sequence[float]],
           size: int, detectors: list[str], pad_ratio: float = 1.0) -> tuple[str | None, str]:
    """(data URI or None, caption). Boxes: one colour per detector; dataset GT boxes dashed yellow.

    A reference the runner black-padded before detection is shown padded the same way, so that the
    recorded boxes (in padded coordinates) land on the face.
    """
    if path is None:
        return None, "not recorded"
    try:
        from PIL import ImageDraw

        from multiid_bench.images import load_image

        img = load_image(path)
    except Exception as e:  # a broken image must not break the whole report: show why instead
        return None, f"cannot read {path.name}: {e}"
    if pad_ratio != 1.0:
        from multiid_bench.data.refcrop import pad_reference

        img = pad_reference(img, pad_ratio)
    w, h = img.size
    scale = size / max(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))))
    draw = ImageDraw.Draw(img)
    lw = max(3, size // 75)
    for det, fs in faces.items():
        colour = _DET_COLOURS[detectors.index(det) % len(_DET_COLOURS)] if det in detectors else "#ffffff"
        for f in fs:
            x1, y1, x2, y2 = (float(v) * scale for v in f["box"])
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=lw)
    for b in gt_boxes:
        x1, y1, x2, y2 = (float(v) * scale for v in b)
        for i in range(int(x1), int(x2), 8):  # dashed: GT boxes from the dataset, not detections
            draw.line([(i, y1), (min(i + 4, x2), y1)], fill="#ffd600", width=lw)
            draw.line([(i, y2), (min(i + 4, x2), y2)], fill="#ffd600", width=lw)
        for j in range(int(y1), int(y2), 8):
            draw.line([(x1, j), (x1, min(j + 4, y2))], fill="#ffd600", width=lw)
            draw.line([(x2, j), (x2, min(j + 4, y2))], fill="#ffd600", width=lw)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, subsampling=0)  # 4:4:4 keeps thin box lines in colour
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), f"{path.name} ({w}×{h})"


def ref_caption(case: CaseView, j: int) -> str:
    """``ref 2 · <identity>``: who the reference shows, not its (content-hash) file name. Issue 29."""
    label = case.ref_labels[j] if j < len(case.ref_labels) else ""
    return f"ref {j + 1} · {label}" if label else f"ref {j + 1}"


def _fmt(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _metric_header(key: str) -> str:
    try:
        card = get_card(key)
    except KeyError:
        return key
    fm = key.partition(".")[2]
    return f"{card.name}{' [' + fm + ']' if fm else ''} {card.arrow}"


def _metric_order(keys: set[str]) -> list[str]:
    order = list(CARDS)
    return sorted(keys, key=lambda k: (order.index(k.split(".")[0]) if k.split(".")[0] in order else 99, k))


def _metrics_tables(run: RunResult) -> str:
    out = []
    for protocol, subsets in run.data["metrics"].items():
        names = list(subsets)
        keys = _metric_order({k for s in subsets.values() for k in s})
        out.append(f"<h3>{_E(protocol)} protocol{' (headline)' if protocol == run.protocol else ''}</h3>")
        out.append('<table class="mbench"><thead><tr><th>metric</th>' +
                   "".join(f"<th>{_E(s)}</th>" for s in names) + "</tr></thead><tbody>")
        for k in keys:
            cells = []
            for s in names:
                m = subsets[s].get(k)
                if m is None:
                    cells.append("<td></td>")
                    continue
                if undefined_for_subset(k.split(".")[0], s):  # issue 29: Blending needs two persons
                    cells.append('<td title="undefined for one person (the official code writes 0.0)">N/A</td>')
                    continue
                ci = m.get("ci95")
                if ci and int(m["n"]) < MIN_CI_N:  # too few cases for an honest interval: say so instead
                    text = _fmt(m.get("value")) + f" (no CI: n < {MIN_CI_N})"
                else:
                    text = _fmt(m.get("value")) + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
                cells.append(f'<td title="{_E(str(m.get("statistic", "")))}">{_E(text)} <small>n={m["n"]}</small></td>')
            out.append(f'<tr><td class="model">{_E(_metric_header(k))}</td>{"".join(cells)}</tr>')
        out.append("</tbody></table>")
    return "\n".join(out)


def _judged_view_subset(data: Any, headline: Any) -> str | None:
    """The subset a judged run's report shows (its single-character task type, the paper's Table 1b, when
    judged; else its first judged task type), or ``None`` for a run without a VLM judge."""
    from multiid_bench.leaderboard.comparability import run_judge

    if run_judge(data) is None:
        return None
    judged = [s for s in headline if s != "all" and "overall" in (headline.get(s) or {})]
    return "single_character" if "single_character" in judged else (sorted(judged) or [None])[0]


def _plot_and_leaderboard(run: RunResult, include_paper: bool) -> str:
    from multiid_bench.errors import ConfigError
    from multiid_bench.leaderboard.plots import plot_tradeoff, tradeoff_points
    from multiid_bench.leaderboard.render import render_html_fragment
    from multiid_bench.leaderboard.tables import build_leaderboard

    headline = run.data["metrics"].get(run.protocol) or next(iter(run.data["metrics"].values()), {})
    judged = _judged_view_subset(run.data, headline)
    subset = judged or next((s for s in ("p1", "p2", "p3", "all") if s in headline), None)
    if subset is None:
        return "<p>No metrics in this run.</p>"
    df = combined_frame([run], include_paper=include_paper)
    protocol = run.protocol if run.protocol in run.data["metrics"] else next(iter(run.data["metrics"]))
    if judged:  # OmniContext: PF/SC/Overall against the paper's Table 1b, the judge in each row's provenance
        table = build_leaderboard(df, subset=subset, protocol=protocol)
        return render_html_fragment(table) + ("<p>No trade-off plot: the paper's Sim(GT) vs copy-paste trade-off is "
                                              "MultiID-Bench's; an OmniContext run has no GT.</p>")
    # ranks, the fit and the Pareto front only among comparable rows: a run not comparable with the paper's
    # table is greyed there, with the reason in a banner (multiid_bench.leaderboard.comparability)
    parts = [render_html_fragment(build_leaderboard(df, subset=subset, protocol=protocol))]
    try:
        from multiid_bench.leaderboard.paper import model_kind

        # an oracle run (ground-truth / copy-reference) is a "limit": show it (and the paper's limits) anyway
        pts = tradeoff_points(df, subset=subset, protocol=protocol, include_limits=model_kind(run.model) == "limit")
        with tempfile.TemporaryDirectory() as tmp:
            (png,) = plot_tradeoff(pts, Path(tmp) / "tradeoff", title=f"{run.model} · subset {subset} · {protocol} protocol",
                                   formats=("png",))
            data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f'<h3>Trade-off (subset {subset})</h3><img class="plot" alt="trade-off plot" src="data:image/png;base64,{data}">')
    except ConfigError as e:
        parts.append(f"<p>No trade-off plot: {_E(str(e))}</p>")
    return "\n".join(parts)


def _gallery(cases: list[CaseView], thumb: int) -> tuple[str, str, list[str]]:
    keys = _metric_order({k for c in cases for k, v in c.metrics.items() if v is not None})
    detectors = sorted({d for c in cases for v in c.faces.values() for d in v})
    head = "".join(f'<th data-key="{_E(k)}">{_E(_metric_header(k))}</th>' for k in keys)
    rows, cards = [], []
    for c in cases:
        mjson = _E(json.dumps({k: c.metrics.get(k) for k in keys}))
        cells = "".join(f"<td>{_fmt(c.metrics.get(k))}</td>" for k in keys)
        rows.append(f'<tr data-id="{_E(c.id)}" data-metrics="{mjson}"><td class="model"><a href="#case-{_E(c.id)}">'
                    f'{_E(c.id)}</a></td><td>{_E(c.subset)}</td><td class="st-{_E(c.status)}">{_E(c.status)}</td>'
                    f'{cells}<td class="prov">{_E(c.reason)}</td></tr>')
        figs = []
        views = [("generated", c.generated, c.faces.get("generated", {}), [], 1.0),
                 ("GT", c.gt, c.faces.get("gt", {}), c.gt_boxes, 1.0)]
        pads = c.ref_pads + [1.0] * (len(c.refs) - len(c.ref_pads))
        views += [(ref_caption(c, j), p, c.faces.get(f"ref_{j}", {}), [], pads[j]) for j, p in enumerate(c.refs)]
        for name, path, faces, boxes, pad in views:
            uri, caption = _thumb(path, faces, boxes, thumb, detectors, pad)
            if " · " in name and path is not None:  # a named reference: its identity replaces the file name
                caption = caption.removeprefix(f"{path.name} ")
            if pad != 1.0:
                caption += f", shown padded ×{pad:g} as detected"
            img = f'<img alt="{_E(name)}" src="{uri}">' if uri else f'<div class="missing">{_E(caption)}</div>'
            nf = ", ".join(f"{d}: {len(fs)}" for d, fs in faces.items()) or "no detections recorded"
            figs.append(f"<figure>{img}<figcaption><b>{_E(name)}</b> · {_E(caption)}<br>faces {_E(nf)}</figcaption></figure>")
        metrics = "".join(f"<tr><td>{_E(_metric_header(k))}</td><td>{_fmt(c.metrics.get(k))}</td></tr>" for k in keys)
        reason = f'<p class="reason">reason: {_E(c.reason)}</p>' if c.reason else ""
        cards.append(f'<div class="card st-{_E(c.status)}" id="case-{_E(c.id)}" data-id="{_E(c.id)}" data-metrics="{mjson}">'
                     f'<h4>{_E(c.id)} <span class="badge">{_E(c.subset)} · {_E(c.status)}</span></h4>'
                     f'<p class="prompt">{_E(c.prompt)}</p>{reason}<div class="imgs">{"".join(figs)}</div>'
                     f'<table class="mini">{metrics}</table></div>')
    table = (f'<table class="mbench" id="cases"><thead><tr><th data-key="id">case</th><th>subset</th><th>status</th>'
             f'{head}<th>reason</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    legend = " ".join(f'<span style="color:{_DET_COLOURS[i % len(_DET_COLOURS)]}">■ {_E(d)}</span>'
                      for i, d in enumerate(detectors)) + ' <span style="color:#c9a800">▫ dataset GT boxes (dashed)</span>'
    return table, f'<p class="legend">Boxes: {legend}</p><div id="gallery">{"".join(cards)}</div>', keys


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:18px;color:#222}
h1{font-size:20px} h2{font-size:17px;border-bottom:2px solid #1f4e79;padding-bottom:3px;margin-top:26px}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px} dl.facts dt{font-weight:bold}
.warn{background:#fde0e0;border:1px solid #b00020;padding:6px 10px;color:#7a0014}
img.plot{max-width:900px;width:100%;border:1px solid #ccc}
#cases th{cursor:pointer} #cases th.sorted-asc::after{content:" ▲"} #cases th.sorted-desc::after{content:" ▼"}
.card{border:1px solid #bbb;border-radius:6px;padding:8px 12px;margin:10px 0;background:#fafafa}
.card.st-failed{border-color:#b00020;background:#fff5f5}
.card h4{margin:2px 0} .badge{font-weight:normal;font-size:12px;color:#555}
.imgs{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0;max-width:260px}
figure img{display:block;border:1px solid #999} figcaption{font-size:11px;color:#444}
.missing{width:180px;height:120px;display:flex;align-items:center;justify-content:center;background:#eee;
 font-size:11px;color:#a00;text-align:center;padding:4px}
.reason{color:#b00020;font-weight:bold;margin:2px 0} .prompt{font-style:italic;margin:2px 0;color:#333}
table.mini{font-size:12px;margin-top:4px} table.mini td{padding:1px 8px}
td.st-failed{color:#b00020;font-weight:bold} td.st-ok{color:#1b5e20}
table.mbench td.prov{white-space:normal;min-width:14em;max-width:26em}
"""

_JS = """
(function(){
  var table=document.getElementById('cases'), gallery=document.getElementById('gallery');
  var select=document.getElementById('sortkey'), dirBtn=document.getElementById('sortdir');
  function val(el,key){ if(key==='id') return el.getAttribute('data-id');
    var v=JSON.parse(el.getAttribute('data-metrics'))[key]; return (v===null||v===undefined)?null:v; }
  function cmp(key,dir){ return function(a,b){ var x=val(a,key), y=val(b,key);
    if(x===null&&y===null) return 0; if(x===null) return 1; if(y===null) return -1;
    var r = (typeof x==='string') ? x.localeCompare(y) : x-y; return dir==='desc'?-r:r; }; }
  function sortAll(key,dir){
    [table.tBodies[0], gallery].forEach(function(box){ if(!box) return;
      Array.prototype.slice.call(box.children).sort(cmp(key,dir)).forEach(function(el){box.appendChild(el);}); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
      th.classList.remove('sorted-asc','sorted-desc');
      if(th.getAttribute('data-key')===key) th.classList.add('sorted-'+dir); });
    select.value=key; dirBtn.textContent=dir; document.body.setAttribute('data-sorted',key+':'+dir); }
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){ var key=th.getAttribute('data-key');
    if(!key) return; th.addEventListener('click',function(){
      var d=(document.body.getAttribute('data-sorted')===key+':desc')?'asc':'desc'; sortAll(key,d); }); });
  select.addEventListener('change',function(){ sortAll(select.value, dirBtn.textContent); });
  dirBtn.addEventListener('click',function(){ sortAll(select.value, dirBtn.textContent==='desc'?'asc':'desc'); });
  var m=/sort=([^:&]+):(asc|desc)/.exec(decodeURIComponent(location.hash));
  if(m) sortAll(m[1],m[2]); else document.body.setAttribute('data-sorted','');
  document.body.setAttribute('data-ready','1');
})();
"""


def check_report_target(run_dir: str | Path, out: str | Path) -> None:
    """Refuse (exit 2, before any work) to write the report over a run's own files or any existing file that is
    not an HTML page: ``--out RUN/results.json`` would silently replace the results with HTML."""
    from multiid_bench.errors import ConfigError
    from multiid_bench.runner.run_folder import is_run_file

    target, folder = Path(out), Path(run_dir)
    folder = folder.parent if folder.is_file() else folder
    if target.exists() and target.is_dir():
        raise ConfigError(f"--out {target} is a folder; give the HTML file to write, e.g. {target / 'report.html'}")
    if target.resolve().parent == folder.resolve() and is_run_file(target.name):
        raise ConfigError(f"--out {target} is one of the run's own files; refusing to write the report over it. "
                          f"Use e.g. --out {folder / 'report.html'}")
    if target.exists() and target.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {target} exists and is not an HTML file; refusing to overwrite it. "
                          "Pass a new file name ending in .html")


def build_report(run_dir: str | Path, out: str | Path, *, include_paper: bool = True, thumb: int = 224,
                 max_cases: int | None = None) -> Path:
    """Write the HTML report of ``run_dir`` to ``out`` and return its path.

    Args:
        run_dir: a run directory (``results.json`` + ``cases.jsonl``) or its ``results.json``.
        out: the HTML file to write (parent folders are created).
        include_paper: show the paper's matching table and points next to the run, for context.
        thumb: longest side of the embedded thumbnails, in pixels.
        max_cases: show only the first N cases (in file order) in the gallery; ``None`` for all.
    """
    check_report_target(run_dir, out)
    run = load_results(run_dir)
    from multiid_bench.leaderboard.render import HTML_STYLE
    from multiid_bench.leaderboard.store import CASES_NAME

    rows = load_cases(run) if run.has_cases else []
    cases = [case_view(r, run.run_dir, run.protocol) for r in rows]
    shown = cases if max_cases is None else cases[:max_cases]
    d = run.data
    facts = {
        "model": d["model"], "bench": f"{d['bench']['id']} (manifest sha256 {d['bench']['manifest_sha256']}, "
        f"{d['bench']['n_cases']} cases)", "headline protocol": d["protocol"], "profile": run.profile_name or "—",
        "counts": counts_line(run.counts),
        "mbench": d.get("mbench_version", "—"), "created": d.get("created", "—"),
        "weights": ", ".join(f"{k}={str(v)[:12]}" for k, v in (d.get("weights") or {}).items()) or "—",
        "results file": str(run.path),
    }
    warn = "" if run.reportable else ('<p class="warn">This run used --limit (or another partial setting): its numbers '
                                       "are NOT reportable.</p>")
    note = "" if run.has_cases else f'<p class="warn">No {CASES_NAME} next to the results: no gallery.</p>'
    if max_cases is not None and len(cases) > max_cases:
        note += f"<p>Gallery shows the first {max_cases} of {len(cases)} cases (--max-cases).</p>"
    table, gallery, keys = _gallery(shown, thumb)
    options = "".join(f'<option value="{_E(k)}">{_E(_metric_header(k))}</option>' for k in ["id", *keys])
    body = f"""<h1>MultiID-Bench report · {_E(d['model'])}</h1>{warn}
<dl class="facts">{''.join(f'<dt>{_E(k)}</dt><dd>{_E(str(v))}</dd>' for k, v in facts.items())}</dl>
<h2 id="summary">Summary</h2>{_metrics_tables(run)}
<h2 id="leaderboard">Leaderboard view and trade-off</h2>{_plot_and_leaderboard(run, include_paper)}
<h2 id="per-case">Per-case metrics ({len(shown)} cases)</h2>{note}
<p>Sort by <select id="sortkey">{options}</select> <button id="sortdir" type="button">desc</button>
(click a column header too; a link may carry <code>#sort=KEY:desc</code>)</p>{table}
<h2 id="gallery-title">Gallery: generated | GT | references</h2>{gallery}"""
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mbench report · {_E(d['model'])}</title>"
            f"<style>{HTML_STYLE}{_CSS}</style></head><body>{body}<script>{_JS}</script></body></html>\n")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    log.info("report for %s written to %s (%d cases)", run.path, out_path, len(shown))
    return out_path


# --- issue 29: public names of the helpers the two-run report (report_pair.py) shares with this page ---
thumbnail = _thumb
format_value = _fmt
metric_header = _metric_header
metric_order = _metric_order
REPORT_CSS = _CSS
# --- end issue 29 ---
