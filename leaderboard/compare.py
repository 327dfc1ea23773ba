"""``mbench compare OLD NEW``: per-metric deltas against a tolerance table, for CI regression checks.

Outcome (the CLI maps it to the exit code): 0 every shared metric within tolerance; 1 a metric moved past
its tolerance or disappeared; 2 the two runs cannot be compared (different bench manifest, headline
protocol, metric card versions, profile or case set), raised as :class:`NotComparableError` before any
number is compared. The comparability rule is the leaderboard's (:func:`.comparability.differences`).

When both runs have their per-case rows, each delta also carries a paired bootstrap 95% CI of
``new - old`` over the cases both runs scored (:mod:`.paired`); with ``ci_gate`` a move past tolerance
fails only when that interval excludes 0 (a change the shared cases support, not noise).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from multiid_bench.errors import ConfigError, NotComparableError
from multiid_bench.leaderboard.comparability import differences, run_key
from multiid_bench.leaderboard.data import DATA_DIR
from multiid_bench.leaderboard.paired import PairedCI, case_values, paired_bootstrap_ci, run_rows
from multiid_bench.leaderboard.store import RunResult
from multiid_bench.metrics.cards import CARDS, get_card

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Comparison", "Delta", "Tolerances", "check_comparable", "compare_runs", "load_tolerances"]

DEFAULT_TOLERANCES = DATA_DIR / "tolerances.toml"
_DIRECTIONS = ("both", "worse")


@dataclass(frozen=True)
class Tolerance:
    abs: float
    rel: float
    direction: str

    def limit(self, old: float) -> float:
        return self.abs + self.rel * abs(old)


@dataclass(frozen=True)
class Tolerances:
    default: Tolerance
    per_metric: Mapping[str, Tolerance]
    comparability: Mapping[str, bool]
    source: str

    def for_key(self, key: str) -> Tolerance:
        """Most specific first: full key (``sim_gt.arcface``), then metric id (``sim_gt``), then default."""
        return self.per_metric.get(key) or self.per_metric.get(key.split(".")[0]) or self.default


def _tol(d: Mapping[str, Any], base: Tolerance | None, where: str) -> Tolerance:
    unknown = set(d) - {"abs", "rel", "direction"}
    if unknown:
        raise ConfigError(f"{where}: unknown tolerance field(s) {sorted(unknown)}; allowed: abs, rel, direction")
    try:
        a = float(d.get("abs", base.abs if base else 0.0))
        r = float(d.get("rel", base.rel if base else 0.0))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: abs and rel must be numbers ({e})") from e
    direction = str(d.get("direction", base.direction if base else "both"))
    if a < 0 or r < 0 or direction not in _DIRECTIONS:
        raise ConfigError(f"{where}: need abs >= 0, rel >= 0 and direction in {_DIRECTIONS}; got {a}, {r}, {direction!r}")
    return Tolerance(a, r, direction)


def load_tolerances(path: str | Path | None = None) -> Tolerances:
    """Read a tolerance TOML (the packaged default when ``path`` is None); unknown metric ids are refused."""
    p = Path(path) if path is not None else DEFAULT_TOLERANCES
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"tolerance file {p} not found; start from {DEFAULT_TOLERANCES}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"tolerance file {p} is not valid TOML: {e}") from e
    unknown = set(raw) - {"default", "metric", "comparability"}
    if unknown:
        raise ConfigError(f"{p}: unknown table(s) {sorted(unknown)}; allowed: [default], [metric.<id>], [comparability]")
    default = _tol(raw.get("default", {}), None, f"{p} [default]")
    per: dict[str, Tolerance] = {}
    for key, spec in raw.get("metric", {}).items():
        if key.split(".")[0] not in CARDS:
            get_card(key)  # raises KeyError with "did you mean"
        per[key] = _tol(spec, default, f"{p} [metric.{key}]")
    comp = {"bench_manifest": True, "protocol": True, "metric_versions": True, "profile": True, "case_set": True,
            "judge": True}
    for k, v in raw.get("comparability", {}).items():
        if k not in comp or not isinstance(v, bool):
            raise ConfigError(f"{p} [comparability]: {k!r} must be one of {sorted(comp)} with a true/false value")
        comp[k] = v
    return Tolerances(default, per, comp, str(p))


@dataclass(frozen=True)
class Delta:
    protocol: str
    subset: str
    key: str
    old: float | None
    new: float | None
    n_old: int | None
    n_new: int | None
    tolerance: float
    status: str  # ok | better | worse | changed | missing | new
    failed: bool
    paired: PairedCI | None = None  # paired bootstrap CI of new - old over the shared cases

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


@dataclass
class Comparison:
    old: str
    new: str
    tolerances: str
    deltas: list[Delta] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Delta]:
        return [d for d in self.deltas if d.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


#: ``[comparability]`` switches of a tolerance file -> the fields of :data:`.comparability.FIELDS` they cover
_SWITCHES = {"bench_manifest": ("bench",), "protocol": ("protocol",), "profile": ("profile", "face_models"),
             "metric_versions": ("metric_versions",), "case_set": ("reportable",), "judge": ("judge",)}


def check_comparable(old: RunResult, new: RunResult, tol: Tolerances, protocol: str | None = None) -> list[str]:
    """Reasons the two runs cannot be compared (empty when they can): the leaderboard's rule on the two
    runs' keys (headline protocol, or ``protocol`` when one is chosen), plus the schema version and the
    expected case count."""
    reasons = []
    c = tol.comparability
    if old.data["schema_version"] != new.data["schema_version"]:
        reasons.append(f"schema_version {old.data['schema_version']} vs {new.data['schema_version']}")
    ignore = [f for switch, fields in _SWITCHES.items() if not c[switch] for f in fields]
    ko = run_key(old.data, label=f"OLD {old.path}", protocol=protocol)
    kn = run_key(new.data, label=f"NEW {new.path}", protocol=protocol)
    for r in differences(ko, kn, ignore=ignore):
        reasons.append(("headline " + r) if r.startswith("protocol ") else r)
    if c["case_set"] and old.counts["expected"] != new.counts["expected"]:
        reasons.append(f"expected case count {old.counts['expected']} vs {new.counts['expected']}")
    return reasons


def _entry(run: RunResult, protocol: str, subset: str, key: str) -> tuple[float | None, int | None]:
    m = run.data["metrics"].get(protocol, {}).get(subset, {}).get(key)
    if m is None:
        return None, None
    v = m.get("value")
    return (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)), int(m["n"])


def compare_runs(old: RunResult, new: RunResult, tolerances: Tolerances | None = None, *, paired: bool = True,
                 ci_gate: bool = False, allow_mixed: bool = False, n_resamples: int = 2000,
                 seed: int = 0, protocol: str | None = None) -> Comparison:
    """Compare every (protocol, subset, metric key) of the two runs.

    Args:
        old, new: the two runs (``new - old`` is the delta).
        tolerances: the tolerance table (the packaged default when ``None``).
        paired: compute the paired bootstrap CI of each delta over the shared cases (needs both runs' rows).
        ci_gate: a move past tolerance fails only when its paired CI excludes 0; a metric without a CI
            (no per-case values, fewer than 10 shared cases) is judged by the tolerance alone.
        allow_mixed: compare runs that are not comparable, with a warning per reason.
        n_resamples, seed: of the bootstrap.
        protocol: compare only this protocol's numbers (every results.json holds both), so two runs with
            different headline protocols compare; ``None``: every protocol, and the headlines must match.

    Raises:
        NotComparableError: the runs differ in bench manifest, protocol, metric versions, profile, judge or case set.
    """
    tol = tolerances or load_tolerances()
    if protocol is not None and protocol not in ("paper", "strict"):
        raise ConfigError(f"--protocol must be paper or strict; got {protocol!r}")
    reasons = check_comparable(old, new, tol, protocol)
    if reasons and not allow_mixed:
        raise NotComparableError(
            f"{old.path} and {new.path} cannot be compared:\n  - " + "\n  - ".join(reasons) +
            "\nRe-run both with the same bench, protocol, profile, mbench metric versions and judge "
            f"(or relax [comparability] in a tolerance file; default {DEFAULT_TOLERANCES}; or --allow-mixed)."
        )
    comp = Comparison(old=str(old.path), new=str(new.path), tolerances=tol.source)
    comp.warnings += [f"--allow-mixed: compared although {r}" for r in reasons]
    rows_old, rows_new = (run_rows(old), run_rows(new)) if paired else (None, None)
    if paired and (rows_old is None or rows_new is None):
        comp.warnings.append("no paired CI: a run has no per-case rows (cases.jsonl)")
    if ci_gate and (rows_old is None or rows_new is None):
        comp.warnings.append("--ci-gate: without per-case rows every metric is judged by its tolerance alone")
    if old.metric_versions is None or new.metric_versions is None:
        comp.warnings.append("a run does not record metric_versions: metric card versions could not be checked")
    keys = set()
    for run in (old, new):
        for proto, subsets in run.data["metrics"].items():
            if protocol is None or proto == protocol:
                for subset, metrics in subsets.items():
                    keys.update((proto, subset, k) for k in metrics)
    for proto, subset, key in sorted(keys):
        if key.split(".")[0] not in CARDS:
            comp.warnings.append(f"{proto}/{subset}/{key}: no metric card, not compared")
            continue
        card = get_card(key)
        (vo, no), (vn, nn) = _entry(old, proto, subset, key), _entry(new, proto, subset, key)
        t = tol.for_key(key)
        limit = t.limit(vo) if vo is not None else t.abs
        if vo is None and vn is None:
            continue
        if vo is None:
            status, failed = "new", False
        elif vn is None:
            status, failed = "missing", True
        elif abs(vn - vo) <= limit:
            status, failed = "ok", False
        else:
            better = (vn > vo) == card.higher_is_better
            status = "better" if better else "worse"
            failed = t.direction == "both" or not better
        ci = None
        if rows_old is not None and rows_new is not None and vo is not None and vn is not None:
            a = case_values(rows_new, new.run_dir, proto, subset, key)
            b = case_values(rows_old, old.run_dir, proto, subset, key)
            shared = sorted(set(a) & set(b))
            if shared:
                ci = paired_bootstrap_ci([a[c] for c in shared], [b[c] for c in shared],
                                         n_resamples=n_resamples, seed=seed)
        if ci_gate and failed and ci is not None and not math.isnan(ci.lo) and not ci.excludes_zero:
            failed, status = False, status + " (CI includes 0)"
        comp.deltas.append(Delta(proto, subset, key, vo, vn, no, nn, limit, status, failed, ci))
    return comp


def comparison_table(comp: Comparison, *, only_changed: bool = False, width: int | None = None) -> Any:
    """A rich table of the deltas (failed rows red), one section per protocol/subset.

    With ``width`` (the console's) it fits without breaking a metric key or a number: the ``n`` column is
    dropped first, then each column is fixed at its longest word so that cells wrap only at spaces.
    """
    from rich import box
    from rich.cells import cell_len
    from rich.markup import escape
    from rich.table import Table

    show_ci = any(d.paired is not None for d in comp.deltas)
    shown = [d for d in comp.deltas if not (only_changed and d.status == "ok")]

    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.4f}"

    def rows(with_n: bool) -> tuple[list[str], list[list[str]], list[str | None]]:
        head = ["metric", "old", "new", "Δ new−old", "tol", *(["n old→new"] if with_n else []), "status",
                *(["paired Δ, 95% CI"] if show_ci else [])]
        body: list[list[str]] = []
        styles: list[str | None] = []
        where = None
        for d in shown:
            if (d.protocol, d.subset) != where:
                where = (d.protocol, d.subset)
                body.append([f"{d.protocol} protocol · {d.subset}"] + [""] * (len(head) - 1))
                styles.append("bold")
            card = get_card(d.key)
            colour = "bold red" if d.failed else ("green" if d.status in ("ok", "better") else "yellow")
            n = [f"{d.n_old if d.n_old is not None else '—'}→{d.n_new if d.n_new is not None else '—'}"] if with_n else []
            ci = [d.paired.text() if d.paired is not None else "—"] if show_ci else []
            body.append([f"{d.key} {card.arrow}", f(d.old), f(d.new), "—" if d.delta is None else f"{d.delta:+.4f}",
                         f"{d.tolerance:.4g}", *n, f"[{colour}]{escape(d.status)}{' FAIL' if d.failed else ''}[/]", *ci])
            styles.append(None)
        return head, body, styles

    def build(with_n: bool, fixed: bool) -> Any:
        head, body, styles = rows(with_n)
        t = Table(title="mbench compare (new − old)", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  title_justify="left")
        for i, name in enumerate(head):
            t.add_column(name, justify="left" if i == 0 or name == "status" else "right", no_wrap=i == 0)
        for cells, style in zip(body, styles):
            t.add_row(*cells, style=style)
        if fixed:
            for i, col in enumerate(t.columns[1:], 1):
                texts = [head[i]] + [Text_plain(c[i]) for c in body]
                col.min_width = col.max_width = max(cell_len(w) for x in texts for w in x.split() or [""])
        return t

    def Text_plain(markup: str) -> str:
        from rich.text import Text

        return Text.from_markup(markup).plain

    t = build(True, False)
    if width is None or _width(t) <= width:
        return t
    t = build(False, False)
    if _width(t) <= width:
        return t
    t = build(False, True)
    if _width(t) > width:
        t.padding = (0, 0)  # the box's column separator still keeps one space between columns
    return t


def _width(t: Any) -> int:
    import io

    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=100_000, file=io.StringIO())
    return Measurement.get(console, console.options, t).maximum
