"""The jobs database: SQLite under ``jobs.data_dir`` (one server, or replicas sharing a local
volume) or PostgreSQL at ``jobs.database_url`` (a fleet). SQLite: one connection under a lock;
PostgreSQL: a pool of ``jobs.database_pool_size`` connections. The store's
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

    def schema(self, statements: Sequence[str], added: Sequence[tuple[str, str, str]] = ()) -> None:
        """Create what is missing: ``statements``, then the ``added`` (table, column, type)."""
        with self.tx() as run:
            for sql in statements:
                run(sql.replace("DOUBLE PRECISION", "REAL").replace("BYTEA", "BLOB"), ())
            for table, column, kind in added:
                if column not in {r["name"] for r in run(f"PRAGMA table_info({table})", ()).fetchall()}:
                    run(f"ALTER TABLE {table} ADD COLUMN {column} {kind}", ())

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
    """A pool of at most ``pool_size`` connections: a long transaction (a large upload's parts)
    holds one, and the queue's other calls on this server take others meanwhile."""

    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        import psycopg  # only a fleet needs it
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.integrity_error = psycopg.IntegrityError
        # A connection the server lost (a restart, a failover) is checked out and replaced; the
        # call that found it broken failed, and the worker's next tick retries.
        self._pool: Any = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            check=ConnectionPool.check_connection,
            open=False,
        )
        self._pool.open(wait=True, timeout=30)

    def schema(self, statements: Sequence[str], added: Sequence[tuple[str, str, str]] = ()) -> None:
        with self.tx() as run:
            run("SELECT pg_advisory_xact_lock(7310)", ())  # replicas starting together
            for sql in statements:
                run(sql, ())
            for table, column, kind in added:
                run(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}", ())

    @contextmanager
    def tx(self) -> Iterator[Callable[[str, Sequence[Any]], Any]]:
        with self._pool.connection() as db, db.transaction():
            yield lambda sql, args: db.execute(sql.replace("?", "%s"), tuple(args))

    def read(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        with self._pool.connection() as db:
            return list(db.execute(sql.replace("?", "%s"), tuple(args)).fetchall())

    def close(self) -> None:
        self._pool.close()


def connect(database_url: str | None, data_dir: Path, pool_size: int = 4) -> Database:
    return Database(data_dir) if database_url is None else Postgres(database_url, pool_size)
