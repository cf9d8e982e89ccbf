"""The jobs table: create, read, list, claim (a lease and a fencing token), heartbeat, finish.

SQLite under ``jobs.data_dir`` by default (WAL, one connection shared under a lock; every call is a
short transaction, run on a worker thread by the callers). The SQL keeps to what PostgreSQL also
runs (plain types, ``?`` placeholders mapped per driver), so a PostgreSQL store is this class with
another connection and ``FOR UPDATE SKIP LOCKED`` in ``claim``.

Every write of a running job is fenced by its ``attempt`` (incremented on each claim): a server that
lost its claim (it stalled past the lease, another took the job) writes nothing.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    response_format TEXT NOT NULL,
    params TEXT NOT NULL,
    filename TEXT,
    content_type TEXT,
    source_url TEXT,
    audio_path TEXT,
    metadata TEXT NOT NULL,
    callback_url TEXT,
    idem_key TEXT,
    idem_hash TEXT,
    done_s REAL NOT NULL DEFAULT 0,
    total_s REAL,
    error_code TEXT,
    error_message TEXT,
    result TEXT,
    result_type TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    deliveries TEXT NOT NULL DEFAULT '[]',
    event_id TEXT,
    webhook_next_at REAL,
    webhook_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idem_key);
"""
DB_NAME = "jobs.sqlite3"


@dataclass(slots=True)
class JobRow:
    id: str
    owner: str
    status: str
    created_at: float
    task: str
    model: str
    response_format: str
    params: str  # the validated TranscriptionParams as JSON
    metadata: str
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    filename: str | None = None
    content_type: str | None = None
    source_url: str | None = None
    audio_path: str | None = None
    callback_url: str | None = None
    idem_key: str | None = None
    idem_hash: str | None = None
    done_s: float = 0.0
    total_s: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    result: str | None = None
    result_type: str | None = None
    cancel_requested: int = 0
    attempt: int = 0
    lease_until: float | None = None
    deliveries: str = "[]"
    event_id: str | None = None
    webhook_next_at: float | None = None
    webhook_attempts: int = 0


_COLUMNS = [f.name for f in fields(JobRow)]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    owned: bool  # this claim is still the job's (not taken over, not deleted)
    cancel: bool  # a cancel was asked for


class JobStore:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a 202 means the job survives a power cut
            self._db.executescript(_SCHEMA)

    @staticmethod
    def exists(data_dir: Path) -> bool:
        return (data_dir / DB_NAME).is_file()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: no other writer between its read and its write)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> JobRow | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return None if row is None else JobRow(**dict(row))

    def insert(self, row: JobRow) -> JobRow:
        """Insert a new job; with an idempotency key already used by its owner, the existing job."""
        values = tuple(getattr(row, c) for c in _COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        try:
            with self._tx() as db:
                db.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})", values)
        except sqlite3.IntegrityError:
            existing = self.by_idempotency_key(row.owner, row.idem_key or "")
            if existing is None:
                raise
            return existing
        return row

    def get(self, job_id: str) -> JobRow | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def by_idempotency_key(self, owner: str, key: str) -> JobRow | None:
        return self._one("SELECT * FROM jobs WHERE owner = ? AND idem_key = ?", (owner, key))

    def count(self, status: str) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]
            )

    def page(
        self, owner: str, status: str | None, limit: int, after: JobRow | None
    ) -> tuple[list[JobRow], bool]:
        """Newest first; ``after``: the rows older than that one. Also says whether more follow."""
        sql = "SELECT * FROM jobs WHERE owner = ?"
        args: list[Any] = [owner]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if after is not None:
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            args += [after.created_at, after.created_at, after.id]
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._lock:
            rows = [JobRow(**dict(r)) for r in self._db.execute(sql, (*args, limit + 1)).fetchall()]
        return rows[:limit], len(rows) > limit

    def claim(self, now: float, lease_s: float) -> JobRow | None:
        """Take the oldest queued job (or a running one whose claim expired: its server died)."""
        with self._tx() as db:
            # A job asked to stop while its server was gone is not run again.
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, webhook_next_at = ? "
                "WHERE status = 'running' AND lease_until < ? AND cancel_requested = 1",
                (now, now, now),
            )
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < ?) "
                "ORDER BY created_at, id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_until = ?, "
                "started_at = COALESCE(started_at, ?) WHERE id = ?",
                (now + lease_s, now, row["id"]),
            )
        return self.get(row["id"])

    def heartbeat(self, job: JobRow, lease_until: float, done_s: float, total_s: float | None) -> Heartbeat:
        """Renew the claim and record progress, if the claim is still this one."""
        with self._tx() as db:
            updated = db.execute(
                "UPDATE jobs SET lease_until = ?, done_s = ?, total_s = ? "
                "WHERE id = ? AND attempt = ? AND status = 'running'",
                (lease_until, done_s, total_s, job.id, job.attempt),
            ).rowcount
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job.id,)).fetchone()
        return Heartbeat(owned=updated == 1, cancel=bool(row and row[0]))

    def release(self, job: JobRow) -> None:
        """Give a claimed job back to the queue (this server is stopping)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', lease_until = NULL WHERE id = ? AND attempt = ? "
                "AND status = 'running'",
                (job.id, job.attempt),
            )

    def finish(self, job: JobRow, now: float, retention_s: float, **values: Any) -> bool:
        """End a claimed job (status, result or error...); False if the claim was no longer this one."""
        values |= {"finished_at": now, "expires_at": now + retention_s, "audio_path": None}
        values.setdefault("webhook_next_at", now)
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            return (
                db.execute(
                    f"UPDATE jobs SET {sets} WHERE id = ? AND attempt = ? AND status = 'running'",
                    (*values.values(), job.id, job.attempt),
                ).rowcount
                == 1
            )

    def cancel(self, job_id: str, now: float, retention_s: float) -> JobRow | None:
        """A queued job ends now; a running one is asked to stop (its worker ends it)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, expires_at = ?, "
                "webhook_next_at = ?, cancel_requested = 1 WHERE id = ? AND status = 'queued'",
                (now, now + retention_s, now, job_id),
            )
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,))
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def expired(self, now: float) -> list[JobRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE expires_at < ?", (now,)).fetchall()
        return [JobRow(**dict(r)) for r in rows]

    def claim_webhooks(self, now: float, hold_s: float, any_job: bool) -> list[JobRow]:
        """Jobs whose webhook is due, held for ``hold_s`` (so one attempt at a time is made);
        ``any_job``: a server-wide webhook_url is set, else only jobs with a callback_url count."""
        where = "webhook_next_at <= ?" + ("" if any_job else " AND callback_url IS NOT NULL")
        with self._tx() as db:
            rows = db.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY webhook_next_at LIMIT 16", (now,)
            ).fetchall()
            for row in rows:
                db.execute("UPDATE jobs SET webhook_next_at = ? WHERE id = ?", (now + hold_s, row["id"]))
        return [JobRow(**dict(r)) for r in rows]

    def record_delivery(
        self, job_id: str, delivery: dict[str, Any], event_id: str, next_at: float | None
    ) -> None:
        """Append an attempt to the job's deliveries; ``next_at``: when to try again (None: done)."""
        with self._tx() as db:
            row = db.execute("SELECT deliveries FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            deliveries = [*json.loads(row[0]), delivery]
            db.execute(
                "UPDATE jobs SET deliveries = ?, event_id = ?, webhook_next_at = ?, "
                "webhook_attempts = webhook_attempts + 1 WHERE id = ?",
                (json.dumps(deliveries), event_id, next_at, job_id),
            )
