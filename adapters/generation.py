"""Compatibility names for ``mbench generate``'s folder; the loop itself lives in the runner.

The generation loop (one resume rule, records appended) is :mod:`multiid_bench.runner.sources`, shared by
``mbench evaluate`` and ``mbench generate``; file names are :mod:`multiid_bench.runner.run_folder`'s.
"""
from __future__ import annotations

from multiid_bench.runner.run_folder import GENERATE_FILE as CONFIG_FILE
from multiid_bench.runner.run_folder import IMAGES_DIR, image_path
from multiid_bench.runner.run_folder import generations_file as records_file
from multiid_bench.runner.run_folder import read_generations as read_records
from multiid_bench.runner.sources import GenerateSummary, generate_bench

__all__ = ["CONFIG_FILE", "IMAGES_DIR", "GenerateSummary", "generate_bench", "image_path",
           "read_records", "records_file"]

