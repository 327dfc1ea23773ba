"""Committed assets of the demo bench: ``demo_manifest.json`` (sources, face boxes, regions, prompts).

A package only so that the JSON ships in wheels; the photos themselves come from installed packages.
"""
