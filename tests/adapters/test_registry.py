"""The adapter registry: lazy entries, aliases, did-you-mean, base-class checks, entry points, freezing."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from multiid_bench.adapters import ADAPTERS, Adapter, get_adapter, list_adapters
from multiid_bench.adapters.registry import Registry
from multiid_bench.errors import ConfigError, MissingDependencyError

HEAVY = ("torch", "diffusers", "transformers", "cv2", "insightface", "open_clip", "onnxruntime", "matplotlib")


def test_builtin_table_names_every_model():
    names = set(list_adapters())
    assert {"ground-truth", "copy-reference", "dummy", "folder", "withanyone", "dreamo", "omnigen", "omnigen2",
            "flux-kontext", "qwen-image-edit", "gpt4o", "uno", "uso", "umo", "umo-omnigen2", "uniportrait",
            "id-patch", "infiniteyou", "pulid-flux", "instantid"} <= names
    assert ADAPTERS.target("ground-truth") == "multiid_bench.adapters.oracles:GroundTruthAdapter"
    assert ADAPTERS.target("copy-reference") == "multiid_bench.adapters.oracles:CopyReferenceAdapter"


def test_did_you_mean_and_aliases():
    with pytest.raises(ConfigError, match=r"Unknown adapter 'omnigen3'\. Did you mean: omnigen, omnigen2"):
        get_adapter("omnigen3")
    with pytest.raises(ConfigError, match=r"Did you mean: dummy\?"):
        get_adapter("dumy")
    with pytest.raises(ConfigError, match=r"Available: copy-reference, dreamo, dummy"):
        get_adapter("zzzzzz")
    assert ADAPTERS.canonical("kontext") == "flux-kontext"
    assert type(get_adapter("infu")).name == "infiniteyou"


def test_listing_and_capabilities_import_no_heavy_module():
    code = (
        "import sys, json\n"
        "from multiid_bench.adapters import list_adapters, adapter_class\n"
        "from multiid_bench.adapters.inventory import describe_adapters\n"
        "names = list_adapters()\n"
        "caps = {n: adapter_class(n).capabilities.to_dict() for n in names}\n"
        "describe_adapters(check_weights=True)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_lazy_entries_import_on_first_get():
    reg: Registry[type] = Registry("widget", entry_point_group=None)
    reg.register("decoder", "json.decoder:JSONDecoder", aliases=("dec",))
    assert not reg.is_loaded("decoder") and reg.origin("dec") == "json.decoder:JSONDecoder"
    cls = reg.get("dec")
    assert cls.__name__ == "JSONDecoder" and reg.is_loaded("decoder") and ":" in reg.origin("decoder")


def test_base_class_checked_at_register_and_load():
    reg: Registry[type[Adapter]] = Registry("adapter", base_cls=Adapter, entry_point_group=None)
    with pytest.raises(ConfigError, match="not a subclass"):
        reg.register("bad", dict)
    reg.register("lazy-bad", "collections:OrderedDict")
    with pytest.raises(ConfigError, match="not a subclass of multiid_bench.adapters.base.Adapter"):
        reg.get("lazy-bad")
    reg.register("missing-mod", "no_such_pkg_xyz.mod:Cls")
    with pytest.raises(MissingDependencyError, match="no_such_pkg_xyz"):
        reg.get("missing-mod")
    reg.register("missing-attr", "multiid_bench.adapters.dummy:NoSuchAdapter")
    with pytest.raises(ConfigError, match="has no attribute 'NoSuchAdapter'"):
        reg.get("missing-attr")


def test_duplicates_and_freeze():
    reg: Registry[type] = Registry("widget", entry_point_group=None)
    reg.register("a", "json:JSONDecoder", aliases=("x",))
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("x", "json:JSONEncoder")
    reg.freeze()
    assert reg.frozen
    with pytest.raises(ConfigError, match="frozen"):
        reg.register("b", "json:JSONEncoder")

    fresh: Registry[type] = Registry("widget", entry_point_group=None)

    @fresh.register("deco")
    class Thing:
        pass

    assert fresh.get("deco") is Thing


def test_entry_point_group(monkeypatch):
    seen_groups = []

    def fake_entry_points(group=None):
        seen_groups.append(group)
        return [SimpleNamespace(name="third-party", value="multiid_bench.adapters.dummy:DummyAdapter"),
                SimpleNamespace(name="dummy", value="somewhere:Else")]  # a taken name is ignored, not overridden

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    reg: Registry[type[Adapter]] = Registry("adapter", base_cls=Adapter, entry_point_group="multiid_bench.adapters")
    reg.register("dummy", "multiid_bench.adapters.dummy:DummyAdapter")
    assert reg.names() == ["dummy", "third-party"]
    assert seen_groups == ["multiid_bench.adapters"]
    assert reg.get("third-party").name == "dummy" and reg.target("dummy") == "multiid_bench.adapters.dummy:DummyAdapter"
