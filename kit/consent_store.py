"""Where a :class:`~kit.consent_state.ConsentStateView` keeps its subjects: one SQLite file
per process (the standard library's ``sqlite3``), so that a restart resumes from the
offsets it had reached instead of re-reading the whole ``consent.state`` topic, and the
state of tens of millions of subjects lives on disk, not in the process's memory.

- One file per process. A directory (``*_CONSENT_STATE_DIR``) holds numbered slots,
  ``<name>.<n>.sqlite3``, each guarded by an exclusive ``flock`` on ``<name>.<n>.lock``
  held while the store is open: a process takes the first free slot, so two processes
  (the gateway's uvicorn workers, two apps started from one directory) never share a
  file, and a restarted process takes the slot its predecessor left (the kernel drops
  the lock of a process that died, even by ``kill -9``). Without a directory the store is
  in memory and every start reads the topic from its beginning.
- One transaction per fetched batch holds the subjects' new states (or their removal, for
  a tombstone) together with each partition's next offset and the last record read
  (offset and timestamp), so the file never holds a state without the offset that
  produced it, whatever moment the process dies at.
- :meth:`ConsentStore.reset` empties the store (the file is deleted and made again) when
  the view finds it no longer matches the topic: another cluster, a topic deleted or made
  again, records gone that it had not read (see :class:`~kit.consent_state.ConsentStateView`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

__all__ = ["SCHEMA_VERSION", "SEPARATOR", "ConsentStore", "Position", "Row"]

#: Bumped when the file's layout changes; a file of another version is rebuilt.
SCHEMA_VERSION: Final = 3
#: SQLite's page cache per store (KiB); the operating system caches the rest of the file.
CACHE_KIB: Final = 16 * 1024
#: Slots tried before giving up (more processes than this on one directory is a mistake).
MAX_SLOTS: Final = 64

_SCHEMA: Final = """
-- What the consent checks ask, small enough for the pages they read to stay cached: the
-- set of consent keys granted (an id of grant_sets) and the policy sequence agreed to.
CREATE TABLE IF NOT EXISTS subjects (
    subject TEXT PRIMARY KEY,
    grants INTEGER NOT NULL,
    policy_sequence INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grant_sets (
    id INTEGER PRIMARY KEY,
    keys TEXT NOT NULL UNIQUE
);
-- The whole state, for state_of (not on the checks' path).
CREATE TABLE IF NOT EXISTS states (
    subject TEXT PRIMARY KEY,
    state TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    last_timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


_CONSENT: Final = "SELECT grants, policy_sequence FROM subjects WHERE subject = ?"
#: Separates the consent keys of the ``granted`` column (never part of a key).
SEPARATOR: Final = "\n"


_TABLES: Final = ("subjects", "grant_sets", "states", "positions", "meta")
#: A subject's row: the consent keys granted (joined by :data:`SEPARATOR`), the policy
#: sequence agreed to, and the whole state event ``data`` as JSON.
Row = tuple[str, int | None, str]


@dataclass(frozen=True)
class Position:
    """How far a partition was read: the next offset, and the last record read (its offset
    and timestamp, to recognise the same topic on resuming)."""

    next_offset: int
    last_offset: int
    last_timestamp: int


class ConsentStore:
    """A view's subjects and offsets: a locked SQLite file of its own, or memory."""

    def __init__(
        self, connection: sqlite3.Connection, *, path: Path | None, lock: IO[bytes] | None
    ):
        self._db = connection
        self.path = path
        self._lock = lock
        # The few distinct sets of keys granted, by id (and the ids by their keys).
        self._grant_sets: dict[int, frozenset[str]] = {}
        self._grant_ids: dict[str, int] = {}
        self._load_grant_sets()

    def _load_grant_sets(self) -> None:
        rows = self._db.execute("SELECT id, keys FROM grant_sets").fetchall()
        self._grant_ids = {str(keys): int(id_) for id_, keys in rows}
        self._grant_sets = {
            id_: frozenset(keys.split(SEPARATOR)) if keys else frozenset()
            for keys, id_ in self._grant_ids.items()
        }

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def in_memory(cls) -> ConsentStore:
        return cls(_connect(":memory:"), path=None, lock=None)

    @classmethod
    def open(cls, directory: Path, name: str) -> ConsentStore:
        """The first slot of ``name`` in ``directory`` no other process holds, locked."""
        directory.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        for slot in range(MAX_SLOTS):
            lock = (directory / f"{stem}.{slot}.lock").open("ab")
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            path = directory / f"{stem}.{slot}.sqlite3"
            try:
                return cls(_connect(str(path)), path=path, lock=lock)
            except sqlite3.DatabaseError:  # not a database (or another layout): start anew
                _remove(path)
                return cls(_connect(str(path)), path=path, lock=lock)
        raise RuntimeError(
            f"all {MAX_SLOTS} consent-state slots of {name!r} in {directory} are taken"
        )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    @property
    def closed(self) -> bool:
        return self.path is not None and self._lock is None

    # -- reading ------------------------------------------------------------------------
    def get(self, subject: str) -> Mapping[str, Any] | None:
        """The subject's state event ``data``, or None when the store has none."""
        row = self._db.execute("SELECT state FROM states WHERE subject = ?", (subject,)).fetchone()
        if row is None:
            return None
        data: Mapping[str, Any] = json.loads(row[0])
        return data

    def row(self, subject: str) -> Row | None:
        """The subject's whole row (to copy it)."""
        found = self._db.execute(
            "SELECT grant_sets.keys, policy_sequence, state FROM subjects "
            "JOIN grant_sets ON grant_sets.id = subjects.grants "
            "JOIN states USING (subject) WHERE subject = ?",
            (subject,),
        ).fetchone()
        return None if found is None else (str(found[0]), found[1], str(found[2]))

    def consent(self, subject: str) -> tuple[frozenset[str], int | None] | None:
        """The consent keys the subject currently grants and the policy sequence they
        agreed to (the checks' hot path: one small row), or None when the store has no
        state for them."""
        row = self._db.execute(_CONSENT, (subject,)).fetchone()
        return None if row is None else (self._grant_sets[row[0]], row[1])

    def subjects(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for subject, state in self._db.execute("SELECT subject, state FROM states"):
            yield subject, json.loads(state)

    def count(self) -> int:
        """How many subjects the store holds (a full scan: not for a hot path)."""
        return int(self._db.execute("SELECT count(*) FROM subjects").fetchone()[0])

    def positions(self) -> dict[int, Position]:
        rows = self._db.execute(
            "SELECT partition, next_offset, last_offset, last_timestamp FROM positions"
        )
        return {partition: Position(*rest) for partition, *rest in rows}

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- writing ------------------------------------------------------------------------
    def apply(
        self,
        changes: Mapping[str, Row | None],
        positions: Mapping[int, Position],
        *,
        synced_at_ms: int | None = None,
    ) -> None:
        """In one transaction: each subject's new row (None: forget the subject), each
        partition's position, and when the store was last known to be caught up."""
        new_sets: dict[str, int] = {}

        def grant_id(keys: str) -> int:
            found = self._grant_ids.get(keys) or new_sets.get(keys)
            if found is None:
                found = new_sets[keys] = len(self._grant_ids) + len(new_sets) + 1
            return found

        gone = [(subject,) for subject, row in changes.items() if row is None]
        kept = [(subject, *row) for subject, row in changes.items() if row is not None]
        with self._db:
            self._db.executemany("DELETE FROM subjects WHERE subject = ?", gone)
            self._db.executemany("DELETE FROM states WHERE subject = ?", gone)
            self._db.executemany(
                "INSERT INTO subjects (subject, grants, policy_sequence) VALUES (?, ?, ?) "
                "ON CONFLICT (subject) DO UPDATE SET grants = excluded.grants, "
                "policy_sequence = excluded.policy_sequence",
                [(subject, grant_id(keys), sequence) for subject, keys, sequence, _ in kept],
            )
            self._db.executemany(
                "INSERT INTO grant_sets (id, keys) VALUES (?, ?)",
                [(id_, keys) for keys, id_ in new_sets.items()],
            )
            self._db.executemany(
                "INSERT INTO states (subject, state) VALUES (?, ?) "
                "ON CONFLICT (subject) DO UPDATE SET state = excluded.state",
                [(subject, state) for subject, _, _, state in kept],
            )
            self._db.executemany(
                "INSERT INTO positions (partition, next_offset, last_offset, last_timestamp) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (partition) DO UPDATE SET "
                "next_offset = excluded.next_offset, last_offset = excluded.last_offset, "
                "last_timestamp = excluded.last_timestamp",
                [
                    (partition, p.next_offset, p.last_offset, p.last_timestamp)
                    for partition, p in positions.items()
                ],
            )
            if synced_at_ms is not None:
                self._set(synced_at=str(synced_at_ms))
        for keys, id_ in new_sets.items():  # committed: the ids are the file's now
            self._grant_ids[keys] = id_
            self._grant_sets[id_] = frozenset(keys.split(SEPARATOR)) if keys else frozenset()

    def set_meta(self, **values: str) -> None:
        with self._db:
            self._set(**values)

    def _set(self, **values: str) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def reset(self, **meta: str) -> None:
        """Forget every subject and position; keep ``meta`` (and the schema version)."""
        if self.path is None:
            with self._db:
                self._db.executescript(
                    "".join(f"DROP TABLE {table};" for table in _TABLES) + _SCHEMA
                )
        else:  # deleting millions of rows one by one takes far longer than a new file
            self._db.close()
            _remove(self.path)
            self._db = _connect(str(self.path))
        self._load_grant_sets()
        self.set_meta(schema=str(SCHEMA_VERSION), **meta)


def _connect(target: str) -> sqlite3.Connection:
    # Python's default: a write begins a transaction, ``with connection:`` commits it.
    connection = sqlite3.connect(target, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    # A state committed without fsync may be lost by a power cut, never by a crash of the
    # process; the offset is lost with it (same transaction), so the records are read again.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    connection.executescript(_SCHEMA)
    version = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if version is None:
        empty = connection.execute("SELECT count(*) FROM positions").fetchone()[0] == 0
        if not empty:
            raise sqlite3.DatabaseError("a consent store without a schema version")
        with connection:
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
    elif version[0] != str(SCHEMA_VERSION):
        raise sqlite3.DatabaseError(f"consent store schema {version[0]}, not {SCHEMA_VERSION}")
    return connection


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
