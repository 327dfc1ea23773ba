"""Package list for the four mapped folders (pyproject's package-dir does the mapping).

setuptools' automatic discovery cannot follow a package-dir remap into sub-packages, so the
sub-packages of each mapped root are listed here instead of by hand.
"""
from setuptools import find_packages, setup

ROOTS = {
    "multiid_bench": "multiid_bench",
    "multiid_bench.adapters": "adapters",
    "multiid_bench.leaderboard": "leaderboard",
    "multiid_bench.reference_model": "reference_model",
}

packages: list[str] = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(packages=packages)
