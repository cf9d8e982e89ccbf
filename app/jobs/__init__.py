"""Transcription jobs: submissions that outlive their connection (``/v1/audio/jobs``).

A submission is checked like a synchronous request, its audio stored whole under ``jobs.data_dir``
and its row queued in the store (SQLite); the worker claims queued jobs (a lease, renewed while a
job runs, and a fencing token so only the current claim writes), runs each through the
``TranscriptionService`` and keeps the rendered body; webhooks announce the end, signed per
Standard Webhooks and retried with backoff. A server killed mid-job loses nothing: the claim
expires and the job runs again.
"""
