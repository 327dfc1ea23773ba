"""``mbench study invite``: raters join through links that carry a random token.

The token (``secrets.token_urlsafe``, 192 bits) is printed once; the database keeps only its sha256, so a
copy of ``study.sqlite`` does not let anyone act as a rater. Each new rater gets a seed (from the study's
seed and the rater id) from which the order of the results in every trial is drawn; that order is written
into ``presentations`` at once, so it is recorded, not recomputed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from multiid_bench.errors import ConfigError
from multiid_bench.study import db

__all__ = ["Invitation", "hash_token", "invite_raters", "invitation_url"]


@dataclass(frozen=True)
class Invitation:
    rater_id: int
    name: str
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invitation_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/r/{token}"


def invite_raters(study: str | Path, count: int, *, names: Sequence[str] = ()) -> list[Invitation]:
    """Add ``count`` raters (named ``names`` or ``rater-<id>``) with their recorded result orders."""
    import numpy as np

    if count < 1:
        raise ConfigError("--raters must be at least 1")
    if names and len(names) != count:
        raise ConfigError(f"{len(names)} --name given for {count} raters; give one name per rater or none")
    con = db.connect(study)
    try:
        seed = int(db.get_meta(con, "seed"))
        trials = [r["id"] for r in con.execute("SELECT id FROM trials ORDER BY position")]
        run_ids = [r["id"] for r in con.execute("SELECT id FROM runs ORDER BY id")]
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        out = []
        con.execute("BEGIN IMMEDIATE")
        next_id = int(con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM raters").fetchone()[0])
        for i in range(count):
            rater_id = next_id + i
            token = secrets.token_urlsafe(24)
            order_seed = int(np.random.SeedSequence([seed, rater_id]).generate_state(1)[0])
            name = names[i] if names else f"rater-{rater_id}"
            con.execute("INSERT INTO raters (id, name, token_sha256, order_seed, created) VALUES (?, ?, ?, ?, ?)",
                        (rater_id, name, hash_token(token), order_seed, now))
            rng = np.random.default_rng(order_seed)
            rows = []
            for trial_id in trials:
                for slot, run_index in enumerate(rng.permutation(len(run_ids)).tolist()):
                    rows.append((rater_id, trial_id, slot, run_ids[run_index]))
            con.executemany("INSERT INTO presentations (rater_id, trial_id, slot, run_id) VALUES (?, ?, ?, ?)", rows)
            out.append(Invitation(rater_id=rater_id, name=name, token=token))
        con.execute("COMMIT")
        return out
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
