"""multiid_bench.reference_model (filled in by its issue)."""
