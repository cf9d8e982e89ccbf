"""The jobs tables, as both SQLite and PostgreSQL run them (SQLite reads ``DOUBLE PRECISION`` as
``REAL`` and ``BYTEA`` as a BLOB; ``app.jobs.database`` maps them)."""

# Columns added since the table was first made: a database made before gets them by ALTER TABLE.
ADDED_COLUMNS = (("jobs", "results", "TEXT"),)

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    expires_at DOUBLE PRECISION,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    response_format TEXT NOT NULL,
    params TEXT NOT NULL,
    filename TEXT,
    content_type TEXT,
    source_url TEXT,
    metadata TEXT NOT NULL,
    callback_url TEXT,
    idem_key TEXT,
    idem_hash TEXT,
    done_s DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_s DOUBLE PRECISION,
    error_code TEXT,
    error_message TEXT,
    result TEXT,
    result_type TEXT,
    results TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_until DOUBLE PRECISION,
    deliveries TEXT NOT NULL DEFAULT '[]',
    event_id TEXT,
    webhook_next_at DOUBLE PRECISION,
    webhook_attempts INTEGER NOT NULL DEFAULT 0
)
""",
    """
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at)
""",
    """
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at)
""",
    """
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idem_key)
""",
    """
CREATE TABLE IF NOT EXISTS job_audio (
    job_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, part)
)
""",
)
