"""Worker scripts run in a model family's own environment (see ``adapters/_worker.py``).

They import only the standard library, Pillow and the upstream code; never import them from the toolkit.
"""
