"""The worker protocol with a real subprocess running a stand-in upstream script (no model, no weights)."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from multiid_bench.adapters._common import load_refs
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities
from multiid_bench.adapters.pipeline import Request
from multiid_bench.errors import ConfigError, MissingDependencyError, MissingWeightsError

SCRIPT = textwrap.dedent('''
    import sys, time
    from PIL import Image
    from _serve import MissingWeights, serve

    def load(settings, device):
        if settings["fail_load"] == "import":
            import no_such_upstream_package_xyz  # noqa: F401
        if settings["fail_load"] == "weights":
            raise MissingWeights("checkpoint x.safetensors not found; run: huggingface-cli download org/x")
        print("upstream chatter on stdout must not break the protocol")
        return {"device": device}

    def generate(state, request, seed):
        print("more chatter", request["mode"])
        if request["mode"] == "error":
            raise ValueError("boom")
        if request["mode"] == "sleep":
            time.sleep(30)
        refs = request["ref_imgs"]
        return Image.new("RGB", (request["width"], request["height"]), (seed % 256, len(refs), refs[0].getpixel((0, 0))[0]))

    if __name__ == "__main__":
        serve(load, generate)
''')


@pytest.fixture
def adapter_cls(tmp_path: Path):
    script = tmp_path / "standin_worker.py"
    script.write_text(SCRIPT)

    class StandIn(WorkerAdapter):
        name = "standin"
        worker_script = str(script)  # absolute: joined onto WORKERS_DIR it stays itself
        capabilities = Capabilities(max_ids=4, native_res=(32, 24), licence="test", integration="worker",
                                    defaults={**WORKER_DEFAULTS, "mode": "ok", "fail_load": "", "width": 32,
                                              "height": 24})

        def build_request(self, case, seed):
            refs = tuple(load_refs(case))
            kwargs = {"ref_imgs": list(refs), "mode": self.settings["mode"], "width": 32, "height": 24}
            return Request(prompt=case.prompt, size=(32, 24), images=refs, reference_order=(0, 1), call_kwargs=kwargs)

    return StandIn


def test_round_trip_errors_and_timeout_restart(adapter_cls, make_case):
    case = make_case(2)
    adapter = adapter_cls(timeout_s=2.0)
    try:
        ok = adapter.generate(case, 300)
        assert ok.status == "ok" and ok.image.size == (32, 24)
        assert ok.image.getpixel((0, 0)) == (300 % 256, 2, 220)  # seed, number of refs, first ref's red
        assert ok.record.extra["worker"] == {"size": [32, 24]}
        first_pid = adapter.pipe._proc.pid

        adapter.settings["mode"] = "error"
        bad = adapter.generate(case, 1)
        assert bad.status == "failed" and "WorkerError: ValueError: boom" in bad.reason
        adapter.settings["mode"] = "ok"
        assert adapter.generate(case, 2).status == "ok" and adapter.pipe._proc.pid == first_pid  # same process

        adapter.settings["mode"] = "sleep"
        slow = adapter.generate(case, 3)
        assert slow.status == "failed" and "TimeoutError" in slow.reason and adapter.pipe._proc is None
        adapter.settings["mode"] = "ok"
        again = adapter.generate(case, 4)
        assert again.status == "ok" and adapter.pipe._proc.pid != first_pid  # restarted for the next case
        assert "upstream chatter" in adapter.pipe.log_path.read_text()
    finally:
        if adapter.pipe is not None:
            adapter.pipe.close()


def test_load_failures_map_to_exit_3_errors(adapter_cls, make_case):
    with pytest.raises(MissingDependencyError, match="no_such_upstream_package_xyz.*docs/adapters.md"):
        adapter_cls(fail_load="import").generate(make_case(1, case_id="p1_w"), 0)
    with pytest.raises(MissingWeightsError, match="huggingface-cli download org/x"):
        adapter_cls(fail_load="weights").load("cpu")
    with pytest.raises(ConfigError, match="does not exist"):
        adapter_cls(python="/no/such/python").load("cpu")
    with pytest.raises(ConfigError, match="not a directory"):
        adapter_cls(python=sys.executable, repo="/no/such/repo").load("cpu")


def test_every_worker_script_is_self_contained():
    """Worker scripts run in other environments: only the standard library and ``_serve`` at module level,
    ``load`` and ``generate`` defined, and every worker adapter points at an existing script."""
    import ast

    from multiid_bench.adapters import adapter_class, list_adapters
    from multiid_bench.adapters._worker import WORKERS_DIR

    scripts = {adapter_class(n).worker_script for n in list_adapters()
               if adapter_class(n).capabilities.integration == "worker"}
    assert scripts == {"uno_worker.py", "dreamo_worker.py", "omnigen2_worker.py", "uniportrait_worker.py",
                       "idpatch_worker.py", "infu_worker.py", "pulid_worker.py", "instantid_worker.py"}
    for name in scripts:
        tree = ast.parse((WORKERS_DIR / name).read_text())
        top = {a.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for a in node.names}
        top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
        assert top <= {"__future__", "_serve", "types"}, (name, top)
        funcs = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert {"load", "generate"} <= funcs, name
