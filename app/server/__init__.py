"""HTTP plumbing under the routes: access log and metrics, admission, connections, drain, logs,
upload limits.

Imports only ``app.config`` and ``app.errors``: it knows nothing of audio or transcription.
"""
