"""multiid_bench.adapters (filled in by its issue)."""
