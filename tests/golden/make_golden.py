"""Regenerate the golden numbers of ``test_golden_demo.py`` (run only after an intended metric change,
with a CHANGELOG line and a metric-card version bump).

    python tests/golden/make_golden.py

Runs ``mbench evaluate --model dummy --bench demo --profile offline`` and stores its results.json plus the
per-case identity scores of both protocols in ``tests/golden/demo_dummy_offline/``.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "demo_dummy_offline"
ARGS = ["evaluate", "--model", "dummy", "--bench", "demo", "--profile", "offline", "--protocol", "strict"]
FIELDS = ("sim_gt", "sim_ref", "copy_paste", "blend_gt", "blend_ref")


def per_case(run_dir: Path) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{case_id: {"paper"|"strict": {metric: value}}}`` for the dlib model, from the run's rows."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for line in (run_dir / "cases.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[row["case_id"]] = {p: {f: row["scores"][p]["dlib"].get(f) for f in FIELDS} for p in ("paper", "strict")}
    return dict(sorted(out.items()))


def main() -> None:
    from multiid_bench.cli.main import main as mbench

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        try:
            mbench([*ARGS, "--out", str(run)])
        except SystemExit as e:
            if e.code:
                sys.exit(e.code)
        HERE.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "results.json", HERE / "results.json")
        (HERE / "cases.json").write_text(json.dumps(per_case(run), indent=1) + "\n")
    print(f"wrote {HERE}")


if __name__ == "__main__":
    main()
