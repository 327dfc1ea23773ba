"""multiid_bench.leaderboard (filled in by its issue)."""
