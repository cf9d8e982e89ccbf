"""The jobs database: SQLite under ``jobs.data_dir`` (one server, or replicas sharing a local
volume) or PostgreSQL at ``jobs.database_url`` (a fleet). One connection under a lock; the store's
SQL is written once, with ``?`` placeholders, and runs on both; what differs is here (types, the
way a write transaction starts, ``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_NAME = "jobs.sqlite3"


class Database:
    """``tx()`` is one write transaction; ``read()`` one statement outside any."""

    skip_locked = ""  # appended to a SELECT whose rows a transaction takes
    integrity_error: type[Exception] = sqlite3.IntegrityError
    _db: Any

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            data_dir / DB_NAME, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a 202 means the job survives a power cut

    def schema(self, statements: Sequence[str]) -> None:
        with self.tx() as run:
            for sql in statements:
                run(sql.replace("DOUBLE PRECISION", "REAL").replace("BYTEA", "BLOB"), ())

    @contextmanager
    def tx(self) -> Iterator[Callable[[str, Sequence[Any]], Any]]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # no other writer between its reads and its writes
            try:
                yield self._db.execute
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, tuple(args)).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Postgres(Database):
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        import psycopg  # only a fleet needs it

        self.integrity_error = psycopg.IntegrityError
        self._url = url
        self._db = self._connect()
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(self._url, autocommit=True, row_factory=dict_row)

    def schema(self, statements: Sequence[str]) -> None:
        with self.tx() as run:
            run("SELECT pg_advisory_xact_lock(7310)", ())  # replicas starting together
            for sql in statements:
                run(sql, ())

    @contextmanager
    def tx(self) -> Iterator[Callable[[str, Sequence[Any]], Any]]:
        with self._lock:
            self._reconnect()
            with self._db.transaction():
                yield self._run

    def _reconnect(self) -> None:
        """A connection the server lost (a restart, a failover) is replaced; the call that found
        it broken failed, and the worker's next tick retries."""
        if self._db.broken or self._db.closed:
            self._db = self._connect()

    def _run(self, sql: str, args: Sequence[Any]) -> Any:
        return self._db.execute(sql.replace("?", "%s"), tuple(args))

    def read(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        with self._lock:
            self._reconnect()
            return list(self._run(sql, args).fetchall())


def connect(database_url: str | None, data_dir: Path) -> Database:
    return Database(data_dir) if database_url is None else Postgres(database_url)
