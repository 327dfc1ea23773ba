"""Re-export of the one ONNX -> IResNet converter, :mod:`multiid_bench.faces.onnx_iresnet`.

The loss-side ArcFace (antelopev2 ``glintr100.onnx``) and the evaluation's ArcFace models are converted by
the same code; this module keeps the reference model's import path working.
"""
from __future__ import annotations

from multiid_bench.faces.onnx_iresnet import NotAnIResNetGraph, iresnet_from_onnx, max_abs_diff_vs_onnxruntime

__all__ = ["NotAnIResNetGraph", "iresnet_from_onnx", "max_abs_diff_vs_onnxruntime"]
