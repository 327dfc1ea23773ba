"""Fixtures for the reference-model tests (tiny random components from refmodel_tiny)."""
from __future__ import annotations

import pytest
import torch
from refmodel_tiny import Components, tiny_components, tiny_transformer


@pytest.fixture
def transformer():
    return tiny_transformer()


@pytest.fixture
def components() -> Components:
    return tiny_components()


@pytest.fixture
def arcface() -> torch.Tensor:
    """Random raw-scale ArcFace embeddings (norm ~ 20, like insightface's un-normalised output)."""
    g = torch.Generator().manual_seed(7)
    return torch.randn(2, 512, generator=g)
