"""The jobs table: create, read, list, claim (a lease and a fencing token), heartbeat, finish; and a
job's audio as parts in the database (a fleet's replicas share nothing else).

Every call is one short transaction on ``app.jobs.database`` (SQLite or PostgreSQL), run on a
worker thread by the callers. A claim takes the oldest queued job, or a running one whose lease
expired (its server died), with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so replicas never wait on
each other. Every write of a running job is fenced by its ``attempt`` (incremented on each claim):
a server that lost its claim (it stalled past the lease, another took the job) writes nothing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from app.jobs.database import DB_NAME, Database
from app.jobs.schema import ADDED_COLUMNS, SCHEMA

_PART_BYTES = 1 << 20


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
    callback_url: str | None = None
    idem_key: str | None = None
    idem_hash: str | None = None
    done_s: float = 0.0
    total_s: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    result: str | None = None
    result_type: str | None = None
    results: str | None = None  # result_formats: a JSON object of format -> body (null until done)
    cancel_requested: int = 0
    attempt: int = 0
    lease_until: float | None = None
    deliveries: str = "[]"
    event_id: str | None = None
    webhook_next_at: float | None = None
    webhook_attempts: int = 0


_COLUMNS = [f.name for f in fields(JobRow)]


def _row(columns: dict[str, Any]) -> JobRow:
    """A job from its row: only the columns this version knows (a newer replica may add some)."""
    return JobRow(**{c: columns[c] for c in _COLUMNS if c in columns})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    owned: bool  # this claim is still the job's (not taken over, not deleted)
    cancel: bool  # a cancel was asked for


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.schema(SCHEMA, ADDED_COLUMNS)

    @staticmethod
    def exists(data_dir: Path) -> bool:
        return (data_dir / DB_NAME).is_file()

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, *args: Any) -> list[JobRow]:
        return [_row(r) for r in self._db.read(sql, args)]

    def insert(self, row: JobRow) -> JobRow:
        """Insert a new job; with an idempotency key already used by its owner, the existing job."""
        marks = ", ".join("?" for _ in _COLUMNS)
        try:
            with self._db.tx() as run:
                run(
                    f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})",
                    [getattr(row, c) for c in _COLUMNS],
                )
        except self._db.integrity_error:
            existing = self.by_idempotency_key(row.owner, row.idem_key or "")
            if existing is None:
                raise
            return existing
        return row

    def get(self, job_id: str) -> JobRow | None:
        return next(iter(self._rows("SELECT * FROM jobs WHERE id = ?", job_id)), None)

    def by_idempotency_key(self, owner: str, key: str) -> JobRow | None:
        return next(iter(self._rows("SELECT * FROM jobs WHERE owner = ? AND idem_key = ?", owner, key)), None)

    def count(self, status: str) -> int:
        return int(self._db.read("SELECT COUNT(*) AS n FROM jobs WHERE status = ?", (status,))[0]["n"])

    def stats(self, now: float) -> tuple[dict[str, int], float]:
        """Jobs by status, and the age of the oldest queued one (0: none)."""
        counts = self._db.read("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status", ())
        oldest = self._db.read("SELECT MIN(created_at) AS t FROM jobs WHERE status = 'queued'", ())
        first = oldest[0]["t"] if oldest else None
        return {r["status"]: int(r["n"]) for r in counts}, 0.0 if first is None else now - first

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
        rows = self._rows(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", *args, limit + 1)
        return rows[:limit], len(rows) > limit

    def claim(self, now: float, lease_s: float) -> JobRow | None:
        """Take the oldest queued job (or a running one whose claim expired: its server died)."""
        with self._db.tx() as run:
            # A job asked to stop while its server was gone is not run again.
            run(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, webhook_next_at = ? "
                "WHERE status = 'running' AND lease_until < ? AND cancel_requested = 1",
                (now, now, now),
            )
            row = run(
                "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < ?) "
                "ORDER BY created_at, id LIMIT 1" + self._db.skip_locked,
                (now,),
            ).fetchone()
            if row is None:
                return None
            run(
                "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_until = ?, "
                "started_at = COALESCE(started_at, ?) WHERE id = ?",
                (now + lease_s, now, row["id"]),
            )
        return self.get(row["id"])

    def heartbeat(self, job: JobRow, lease_until: float, done_s: float, total_s: float | None) -> Heartbeat:
        """Renew the claim and record progress, if the claim is still this one."""
        with self._db.tx() as run:
            updated = run(
                "UPDATE jobs SET lease_until = ?, done_s = ?, total_s = ? "
                "WHERE id = ? AND attempt = ? AND status = 'running'",
                (lease_until, done_s, total_s, job.id, job.attempt),
            ).rowcount
            row = run("SELECT cancel_requested FROM jobs WHERE id = ?", (job.id,)).fetchone()
        return Heartbeat(owned=updated == 1, cancel=bool(row and row["cancel_requested"]))

    def release(self, job: JobRow) -> None:
        """Give a claimed job back to the queue (this server is stopping)."""
        with self._db.tx() as run:
            run(
                "UPDATE jobs SET status = 'queued', lease_until = NULL WHERE id = ? AND attempt = ? "
                "AND status = 'running'",
                (job.id, job.attempt),
            )

    def finish(self, job: JobRow, now: float, retention_s: float, **values: Any) -> bool:
        """End a claimed job (status, result or error...) and drop its audio; False if the claim
        was no longer this one."""
        values |= {"finished_at": now, "expires_at": now + retention_s}
        values.setdefault("webhook_next_at", now)
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._db.tx() as run:
            done = run(
                f"UPDATE jobs SET {sets} WHERE id = ? AND attempt = ? AND status = 'running'",
                (*values.values(), job.id, job.attempt),
            ).rowcount
            if done:
                run("DELETE FROM job_audio WHERE job_id = ?", (job.id,))
        return bool(done == 1)

    def cancel(self, job_id: str, now: float, retention_s: float) -> JobRow | None:
        """A queued job ends now; a running one is asked to stop (its worker ends it)."""
        with self._db.tx() as run:
            ended = run(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, expires_at = ?, "
                "webhook_next_at = ?, cancel_requested = 1 WHERE id = ? AND status = 'queued'",
                (now, now + retention_s, now, job_id),
            ).rowcount
            if ended:
                run("DELETE FROM job_audio WHERE job_id = ?", (job_id,))
            run("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,))
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        with self._db.tx() as run:
            run("DELETE FROM jobs WHERE id = ?", (job_id,))
            run("DELETE FROM job_audio WHERE job_id = ?", (job_id,))

    def expired(self, now: float) -> list[JobRow]:
        return self._rows("SELECT * FROM jobs WHERE expires_at < ?", now)

    def claim_webhooks(self, now: float, hold_s: float, any_job: bool) -> list[JobRow]:
        """Jobs whose webhook is due, held for ``hold_s`` (so one attempt at a time is made);
        ``any_job``: a server-wide webhook_url is set, else only jobs with a callback_url count."""
        where = "webhook_next_at <= ?" + ("" if any_job else " AND callback_url IS NOT NULL")
        with self._db.tx() as run:
            sql = f"SELECT * FROM jobs WHERE {where} ORDER BY webhook_next_at LIMIT 16" + self._db.skip_locked
            rows = [_row(dict(r)) for r in run(sql, (now,)).fetchall()]
            for row in rows:
                run("UPDATE jobs SET webhook_next_at = ? WHERE id = ?", (now + hold_s, row.id))
        return rows

    def record_delivery(
        self, job_id: str, delivery: dict[str, Any], event_id: str, next_at: float | None
    ) -> None:
        """Append an attempt to the job's deliveries; ``next_at``: when to try again (None: done)."""
        with self._db.tx() as run:
            row = run("SELECT deliveries FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            run(
                "UPDATE jobs SET deliveries = ?, event_id = ?, webhook_next_at = ?, "
                "webhook_attempts = webhook_attempts + 1 WHERE id = ?",
                (json.dumps([*json.loads(row["deliveries"]), delivery]), event_id, next_at, job_id),
            )

    def put_audio(self, job_id: str, source: BinaryIO) -> None:
        """Store a job's audio (from its start) in the database, a part at a time."""
        source.seek(0)
        with self._db.tx() as run:
            for part in range(1 << 31):
                data = source.read(_PART_BYTES)
                if not data:
                    break
                run("INSERT INTO job_audio (job_id, part, data) VALUES (?, ?, ?)", (job_id, part, data))

    def has_audio(self, job_id: str) -> bool:
        return bool(self._db.read("SELECT 1 AS one FROM job_audio WHERE job_id = ? AND part = 0", (job_id,)))

    def audio_parts(self, job_id: str) -> Iterator[bytes]:
        """The job's audio, a part at a time (one part in memory)."""
        for part in range(1 << 31):
            rows = self._db.read("SELECT data FROM job_audio WHERE job_id = ? AND part = ?", (job_id, part))
            if not rows:
                return
            yield bytes(rows[0]["data"])
