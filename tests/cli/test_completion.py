"""Shell completion (README "Shell completion"): click's recipe works for mbench, lazily, and completes --model."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MBENCH = Path(sys.executable).parent / "mbench"


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword), "_MBENCH_COMPLETE": "bash_complete",
           "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([str(MBENCH)], env=env, capture_output=True, text=True, timeout=120)
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]


@pytest.mark.skipif(not MBENCH.exists(), reason="the mbench console script is not installed next to this python")
def test_bash_completion_of_commands_options_and_model_names() -> None:
    env = {**os.environ, "_MBENCH_COMPLETE": "bash_source"}
    script = subprocess.run([str(MBENCH)], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "_mbench_completion()" in script and "complete -o nosort -F _mbench_completion mbench" in script
    assert "evaluate" in _complete("mbench ev", 1)
    assert {"--profile", "--protocol"} <= set(_complete("mbench evaluate --pro", 2))
    assert _complete("mbench evaluate --model with", 3) == ["withanyone"]
    assert "copy-reference" in _complete("mbench generate --model co", 3)
