"""``mbench ls models|metrics|profiles|face-models|weights``: what the toolkit knows, without loading any model.

``ls models`` imports adapter modules (which import no torch or diffusers) for their capability flags and
looks weights up in the caches only.
"""
from __future__ import annotations

import json
from typing import Any

import click

from multiid_bench.cli._common import print_table as _table

__all__ = ["ls"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def ls() -> None:
    """List models, metrics, face profiles, face models (with plug-ins) or weights."""


@ls.command("models")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")
@click.option("--long/--no-long", default=False, show_default=True, help="Add native size, upstream revision, licence.")
@click.option("--check-weights/--no-check-weights", default=True, show_default=True,
              help="Look each adapter's weights up in the local caches (no network).")
def models(as_json: bool, long: bool, check_weights: bool) -> None:
    """Adapters with their capability flags, extras, support status, weight presence (and licence)."""
    from multiid_bench.adapters.base import STEPS_SETTING_NAMES
    from multiid_bench.adapters.inventory import describe_adapters

    infos = describe_adapters(check_weights=check_weights)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    header = ["name", "via", "ids", "size", "GT inputs", "seed", "extra", "status", "weights"]
    if long:
        header += ["steps", "preset", "upstream", "licence"]
    rows = []
    for i in infos:
        c = i.capabilities
        if i.error:
            rows.append([i.name, "[red]error[/]", i.error] + ["-"] * (len(header) - 3))
            continue
        ids = str(c["max_ids"])
        if c.get("defaults", {}).get("multi_id") == "single-only":
            ids = f"1 ({c['defaults'].get('preset') or 'multi_id'} preset)"  # multi-person cases: not applicable
        row = [i.name + (f" ({', '.join(i.aliases)})" if i.aliases else ""), c["integration"], ids,
               default_size(c), ",".join(c["gt_derived_inputs"]) or "-", "yes" if c["seed_supported"] else "no",
               c["pip_extra"] or "-", c["support_status"], i.weights]
        if long:
            d = c.get("defaults", {})
            steps = next((d[k] if d[k] is not None else "auto" for k in STEPS_SETTING_NAMES if k in d), "-")
            row += [str(steps), d.get("preset") or "-",
                    f"{c['upstream_repo'] or '-'}@{c['upstream_revision'] or '-'}", c["licence"]]
        rows.append(row)
    _table("adapters (mbench generate --model NAME)", header, rows)


def default_size(caps: dict[str, Any]) -> str:
    """The output size an adapter uses by default (its default settings, preset applied), e.g. ``768x768``.

    Settings win over the declared native size, which is what the adapter really requests; ``width=None``
    means a size derived per case (InstantID: the reference's aspect ratio).
    """
    d = caps.get("defaults", {})
    if "width" in d or "height" in d:
        if d.get("width") is None and d.get("height") is None:
            return "per case"
        return f"{d.get('width') or caps['native_res'][0]}x{d.get('height') or caps['native_res'][1]}"
    return "x".join(str(v) for v in caps.get("native_res", ())) or "-"


@ls.command("metrics")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")
def metrics(as_json: bool) -> None:
    """Metric cards: id, version, direction, scale and inputs; then per-case metric plug-ins (not imported)."""
    from multiid_bench.metrics.cards import CARDS
    from multiid_bench.metrics.plugins import installed_metrics

    plugins = installed_metrics()
    if as_json:
        data = {k: c.to_dict() for k, c in CARDS.items()}
        data.update({k: {"id": k, "plugin": p.identity, "entry_point": p.target} for k, p in plugins.items()})
        click.echo(json.dumps(data, indent=2))
        return
    rows = [[c.id, c.name, c.version, c.arrow, c.scale, ", ".join(c.inputs)] for c in CARDS.values()]
    rows += [[k, f"plug-in {p.identity}", "-", "-", "-", p.target] for k, p in plugins.items()]
    _table("metrics", ["id", "name", "version", "better", "scale", "inputs"], rows)


@ls.command("profiles")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")
def profiles(as_json: bool) -> None:
    """Face-pipeline profiles (paper, offline): model, detector, template, input convention per entry."""
    try:
        from multiid_bench.faces import get_profile
        from multiid_bench.faces.profiles import PROFILES
    except ImportError as e:
        raise click.ClickException(f"face profiles are not available in this install ({e})") from None
    data: dict[str, Any] = {name: get_profile(name).to_dict() for name in PROFILES}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = []
    for name, prof in data.items():
        for e in prof.get("entries", []):
            rows.append([name, str(e.get("model")), str(e.get("detector")), str(e.get("template")),
                         str(e.get("input_convention")), str(e.get("ref_policy"))])
    _table("face profiles", ["profile", "model", "detector", "template", "input", "refs"], rows)


@ls.command("face-models")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")
def face_models(as_json: bool) -> None:
    """Face models: the built-in ones and plug-ins (entry-point group multiid_bench.face_models; not imported)."""
    from multiid_bench.faces.models import FACE_MODELS
    from multiid_bench.faces.plugins import installed_face_models

    rows = [[name, "built-in", spec.template, str(spec.crop_size), str(spec.embedding_dim), spec.weight_id]
            for name, spec in FACE_MODELS.items()]
    plugins = installed_face_models()
    rows += [[name, "plug-in", "-", "-", "-", f"{p.identity} ({p.target})"] for name, p in plugins.items()]
    if as_json:
        click.echo(json.dumps({r[0]: {"kind": r[1], "source": r[5]} for r in rows}, indent=2))
        return
    _table("face models (a plug-in joins a run as --profile offline+NAME)",
           ["name", "kind", "template", "crop", "dim", "weights / package"], rows)


@ls.command("weights")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache root to look in.")
def weights(as_json: bool, cache_dir: str | None) -> None:
    """Weights in the manifests and their local state (ok, unverified, missing, corrupt)."""
    from multiid_bench.weights import get_store

    store = get_store(cache_dir)
    data = []
    for wid, entry in sorted(store.entries.items()):
        states = store.status(wid)
        data.append({"id": wid, "licence": entry.licence, "used_by": list(entry.used_by),
                     "files": [{"name": s.name, "state": s.state, "path": str(s.path)} for s in states]})
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [[d["id"], ", ".join(f"{f['name']}: {f['state']}" for f in d["files"]), ", ".join(d["used_by"]),
             d["licence"]] for d in data]
    _table("weights (mbench weights download ID)", ["id", "files", "used by", "licence"], rows)
