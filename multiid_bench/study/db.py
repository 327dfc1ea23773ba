"""The study database: one SQLite file ``study.sqlite`` in the study folder, in WAL mode.

Why SQLite: a study is small (a few thousand answers), must survive a killed server (each submitted trial
is one committed transaction; WAL with ``synchronous=FULL``), and must accept ten raters at once (WAL lets
readers run beside the one writer; writers wait on ``busy_timeout`` instead of failing). One connection per
request keeps threads apart.

Tables: ``meta`` (key -> JSON: schema version, seed, criteria, instructions, sampling, excluded cases),
``runs`` (the methods, their folders and comparability keys), ``trials`` (one case each) and ``results``
(each run's image for each trial), ``media`` (every file the page may show, content-addressed),
``raters`` (token sha256 only), ``presentations`` (the recorded result order per rater and trial),
``ratings`` (stars) and ``submissions`` (when a rater saved a trial).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from multiid_bench.errors import BadInputError, MissingDataError

__all__ = ["DB_NAME", "MEDIA_DIR", "SCHEMA_VERSION", "connect", "create_schema", "db_path", "get_meta", "set_meta"]

DB_NAME = "study.sqlite"
MEDIA_DIR = "media"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE, model TEXT NOT NULL, run_dir TEXT NOT NULL,
    comparability TEXT NOT NULL, results_sha256 TEXT NOT NULL);
CREATE TABLE media (name TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('gt', 'ref', 'result')),
    source TEXT NOT NULL);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY, position INTEGER NOT NULL UNIQUE, case_id TEXT NOT NULL UNIQUE, subset TEXT NOT NULL,
    prompt TEXT NOT NULL, gt_media TEXT REFERENCES media(name), ref_media TEXT NOT NULL);
CREATE TABLE results (
    trial_id INTEGER NOT NULL REFERENCES trials(id), run_id INTEGER NOT NULL REFERENCES runs(id),
    media TEXT NOT NULL REFERENCES media(name), PRIMARY KEY (trial_id, run_id));
CREATE TABLE raters (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE, order_seed INTEGER NOT NULL,
    created TEXT NOT NULL);
CREATE TABLE presentations (
    rater_id INTEGER NOT NULL REFERENCES raters(id), trial_id INTEGER NOT NULL REFERENCES trials(id),
    slot INTEGER NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id),
    PRIMARY KEY (rater_id, trial_id, slot), UNIQUE (rater_id, trial_id, run_id));
CREATE TABLE ratings (
    rater_id INTEGER NOT NULL REFERENCES raters(id), trial_id INTEGER NOT NULL REFERENCES trials(id),
    run_id INTEGER NOT NULL REFERENCES runs(id), criterion TEXT NOT NULL,
    stars INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    PRIMARY KEY (rater_id, trial_id, run_id, criterion));
CREATE TABLE submissions (
    rater_id INTEGER NOT NULL REFERENCES raters(id), trial_id INTEGER NOT NULL REFERENCES trials(id),
    submitted TEXT NOT NULL, elapsed_ms INTEGER, PRIMARY KEY (rater_id, trial_id));
"""


def db_path(study: str | Path) -> Path:
    """``STUDY`` (a folder) or the database file itself -> the database file."""
    p = Path(study)
    return p / DB_NAME if p.is_dir() or p.suffix != ".sqlite" else p


def connect(study: str | Path, *, must_exist: bool = True) -> sqlite3.Connection:
    """A connection with WAL, full fsync on commit, foreign keys and a 30 s wait for a busy writer.

    ``isolation_level=None``: transactions are explicit (``BEGIN IMMEDIATE`` ... ``COMMIT``), so one
    submitted trial is exactly one transaction.
    """
    path = db_path(study)
    if must_exist and not path.is_file():
        raise MissingDataError(f"no study database at {path}: create the study with 'mbench study create RUN... "
                               f"--out {path.parent}'")
    con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA busy_timeout=30000")
    if must_exist:
        version = get_meta(con, "schema_version", None)
        if version != SCHEMA_VERSION:
            con.close()
            raise BadInputError(f"{path}: study schema version {version!r}, this mbench reads {SCHEMA_VERSION}; "
                                "re-create the study with this version")
    return con


def create_schema(con: sqlite3.Connection) -> None:
    """Create the tables inside the caller's transaction (``executescript`` would commit it first)."""
    for statement in filter(str.strip, _SCHEMA.split(";")):
        con.execute(statement)
    set_meta(con, "schema_version", SCHEMA_VERSION)


def set_meta(con: sqlite3.Connection, key: str, value: Any) -> None:
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))


def get_meta(con: sqlite3.Connection, key: str, default: Any = ...) -> Any:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.DatabaseError as e:
        if default is not ...:
            return default
        raise BadInputError(f"not a study database ({e})") from e
    if row is None:
        if default is ...:
            raise BadInputError(f"study database has no {key!r} entry; re-create the study")
        return default
    return json.loads(row["value"])
