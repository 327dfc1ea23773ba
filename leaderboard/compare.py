"""``mbench compare OLD NEW``: per-metric deltas against a tolerance table, for CI regression checks.

Outcome (the CLI maps it to the exit code): 0 every shared metric within tolerance; 1 a metric moved past
its tolerance or disappeared; 2 the two runs cannot be compared (different bench manifest, headline
protocol, metric card versions, profile or case set), raised as :class:`NotComparableError` before any
number is compared.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from multiid_bench.errors import ConfigError, NotComparableError
from multiid_bench.leaderboard.data import DATA_DIR
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
    comp = {"bench_manifest": True, "protocol": True, "metric_versions": True, "profile": True, "case_set": True}
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


def check_comparable(old: RunResult, new: RunResult, tol: Tolerances) -> list[str]:
    """Reasons the two runs cannot be compared (empty when they can)."""
    reasons = []
    c = tol.comparability
    if old.data["schema_version"] != new.data["schema_version"]:
        reasons.append(f"schema_version {old.data['schema_version']} vs {new.data['schema_version']}")
    if c["bench_manifest"] and old.bench["manifest_sha256"] != new.bench["manifest_sha256"]:
        reasons.append(f"bench manifest differs: {old.bench['id']}@{old.bench['manifest_sha256'][:12]} vs "
                       f"{new.bench['id']}@{new.bench['manifest_sha256'][:12]}")
    if c["protocol"] and old.protocol != new.protocol:
        reasons.append(f"headline protocol {old.protocol!r} vs {new.protocol!r}")
    if c["profile"] and old.profile_name != new.profile_name:
        reasons.append(f"profile {old.profile_name!r} vs {new.profile_name!r}")
    if c["case_set"]:
        if old.counts["expected"] != new.counts["expected"]:
            reasons.append(f"expected case count {old.counts['expected']} vs {new.counts['expected']}")
        if old.reportable != new.reportable:
            reasons.append("one run is a --limit (non-reportable) run and the other is not")
    if c["metric_versions"]:
        mo, mn = old.metric_versions, new.metric_versions
        if mo is not None and mn is not None:
            for mid in sorted(set(mo) & set(mn)):
                if mo[mid] != mn[mid]:
                    reasons.append(f"metric {mid} version {mo[mid]} vs {mn[mid]}")
    return reasons


def _entry(run: RunResult, protocol: str, subset: str, key: str) -> tuple[float | None, int | None]:
    m = run.data["metrics"].get(protocol, {}).get(subset, {}).get(key)
    if m is None:
        return None, None
    v = m.get("value")
    return (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)), int(m["n"])


def compare_runs(old: RunResult, new: RunResult, tolerances: Tolerances | None = None) -> Comparison:
    """Compare every (protocol, subset, metric key) of the two runs.

    Raises:
        NotComparableError: the runs differ in bench manifest, protocol, metric versions, profile or case set.
    """
    tol = tolerances or load_tolerances()
    reasons = check_comparable(old, new, tol)
    if reasons:
        raise NotComparableError(
            f"{old.path} and {new.path} cannot be compared:\n  - " + "\n  - ".join(reasons) +
            "\nRe-run both with the same bench, protocol, profile and mbench metric versions "
            f"(or relax [comparability] in a tolerance file; default {DEFAULT_TOLERANCES})."
        )
    comp = Comparison(old=str(old.path), new=str(new.path), tolerances=tol.source)
    if old.metric_versions is None or new.metric_versions is None:
        comp.warnings.append("a run does not record metric_versions: metric card versions could not be checked")
    keys = set()
    for run in (old, new):
        for protocol, subsets in run.data["metrics"].items():
            for subset, metrics in subsets.items():
                keys.update((protocol, subset, k) for k in metrics)
    for protocol, subset, key in sorted(keys):
        if key.split(".")[0] not in CARDS:
            comp.warnings.append(f"{protocol}/{subset}/{key}: no metric card, not compared")
            continue
        card = get_card(key)
        (vo, no), (vn, nn) = _entry(old, protocol, subset, key), _entry(new, protocol, subset, key)
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
        comp.deltas.append(Delta(protocol, subset, key, vo, vn, no, nn, limit, status, failed))
    return comp


def comparison_table(comp: Comparison, *, only_changed: bool = False) -> Any:
    """A rich table of the deltas (failed rows red)."""
    from rich.table import Table

    t = Table(title=f"mbench compare\nold: {comp.old}\nnew: {comp.new}\ntolerances: {comp.tolerances}")
    for name, just in (("protocol", "left"), ("subset", "left"), ("metric", "left"), ("old", "right"),
                       ("new", "right"), ("Δ", "right"), ("tol", "right"), ("n old→new", "right"), ("status", "left")):
        t.add_column(name, justify=just)  # type: ignore[arg-type]
    for d in comp.deltas:
        if only_changed and d.status == "ok":
            continue
        card = get_card(d.key)
        style = "bold red" if d.failed else ("green" if d.status in ("ok", "better") else "yellow")
        f = (lambda v: "—" if v is None else f"{v:.4f}")
        delta = "—" if d.delta is None else f"{d.delta:+.4f}"
        t.add_row(d.protocol, d.subset, f"{d.key} {card.arrow}", f(d.old), f(d.new), delta, f"{d.tolerance:.4g}",
                  f"{d.n_old if d.n_old is not None else '—'}→{d.n_new if d.n_new is not None else '—'}",
                  f"[{style}]{d.status}{' FAIL' if d.failed else ''}[/]")
    return t
