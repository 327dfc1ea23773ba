"""The common ``steps`` setting: every registered diffusion adapter applies it under its own step name.

``-S steps=28`` (README, ``mbench evaluate --help``) must mean the same for every method, whatever upstream
calls the number of denoising steps; the adapter's own name is what reaches the pipeline and the record.
"""
from __future__ import annotations

import logging

import pytest

from multiid_bench.adapters import adapter_class, get_adapter, list_adapters
from multiid_bench.adapters.base import STEPS_SETTING_NAMES
from multiid_bench.errors import ConfigError

DIFFUSION = ("diffusers", "upstream", "worker")  # integrations that run a diffusion model
DIFFUSION_ADAPTERS = [n for n in list_adapters() if adapter_class(n).capabilities.integration in DIFFUSION]


def test_there_are_diffusion_adapters_to_check() -> None:
    assert {"withanyone", "omnigen", "flux-kontext", "qwen-image-edit", "uno", "pulid-flux"} <= set(DIFFUSION_ADAPTERS)


@pytest.mark.parametrize("name", DIFFUSION_ADAPTERS)
def test_steps_reaches_the_pipeline_under_the_adapters_own_name(name, make_case, fake_pipe, caplog) -> None:
    own = adapter_class(name).steps_setting()
    assert own in STEPS_SETTING_NAMES, f"{name}: no denoising-steps setting among {STEPS_SETTING_NAMES}"
    pipe = fake_pipe(output="worker" if adapter_class(name).capabilities.integration == "worker" else "diffusers")
    with caplog.at_level(logging.WARNING, logger="multiid_bench.adapters.base"):
        adapter = get_adapter(name, pipe=pipe, steps=7)
    assert f"steps=7 applied as its own setting {own}=7" in caplog.text  # said on the console
    assert adapter.settings[own] == 7 and "steps" not in adapter.settings
    result = adapter.generate(make_case(1), 1234)
    assert result.status == "ok", result.reason
    assert result.record.settings[own] == 7 and "steps" not in result.record.settings  # recorded as such
    sent = {k: v for k, v in pipe.calls[-1].items() if k in STEPS_SETTING_NAMES}
    assert list(sent.values()) == [7], f"{name} sent {sent}"


@pytest.mark.parametrize("name", DIFFUSION_ADAPTERS)
def test_steps_and_own_name_are_one_setting(name) -> None:
    cls = adapter_class(name)
    own = cls.steps_setting()
    assert cls.canonical_settings({"steps": 28}) == cls.canonical_settings({own: 28}) == {own: 28}
    assert cls.canonical_settings({"steps": 28, own: 28}) == {own: 28}
    with pytest.raises(ConfigError, match="disagree"):
        cls(**{"steps": 28, own: 30})


@pytest.mark.parametrize("name", ["dummy", "copy-reference", "ground-truth", "gpt4o"])
def test_steps_is_refused_where_there_are_no_denoising_steps(name) -> None:
    with pytest.raises(ConfigError, match="no denoising steps"):
        get_adapter(name, steps=28)


def test_help_and_readme_examples_mean_the_adapters_own_steps() -> None:
    """``mbench evaluate --help`` shows ``-S steps=28`` for flux-kontext; the README passes ``{"steps": 28}`` to uno."""
    from multiid_bench.cli._common import parse_settings
    from multiid_bench.cli.evaluate import _EVALUATE_EXAMPLES

    assert "--model flux-kontext -S steps=28" in _EVALUATE_EXAMPLES
    parsed = parse_settings(("steps=28",))
    assert adapter_class("flux-kontext").canonical_settings(parsed) == {"num_inference_steps": 28}
    assert adapter_class("uno").canonical_settings({"steps": 28}) == {"num_steps": 28}
