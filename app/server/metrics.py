"""Prometheus metrics: one registry per app (``create_app`` builds it), served at ``/metrics``.

Instrumented in few places: the access middleware (requests, durations, audio seconds, real-time
factor), the error handler (503 refusals), the service (time to first delta), the engine
factory (model loads) and the batcher's hook (windows, batch sizes). Gauges that describe the
current state (requests in progress, waiting, decoded audio held) are read when scraped.
The names follow Prometheus conventions: base units (seconds, bytes), ``_total`` on counters;
docs/metrics.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
_FIRST_DELTA_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Processing seconds per second of audio: 0.02 is 50x faster than real time.
_RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
_LOAD_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The app's metric objects in a registry of its own (so tests and several apps never share)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.requests = Counter(
            "asr_http_requests",
            "HTTP requests answered, by method, route template, model and status code.",
            ["method", "route", "model", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "asr_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its answer (streams included).",
            ["route"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "asr_refusals",
            "Requests refused with 503, by reason (capacity: the line is full; audio_budget: decoded "
            "audio in flight at audio_budget_mb; draining: shutting down).",
            ["reason"],
            registry=r,
        )
        self.audio = Counter(
            "asr_audio_seconds",
            "Seconds of audio transcribed (successful requests).",
            ["model"],
            registry=r,
        )
        self.first_delta = Histogram(
            "asr_time_to_first_delta_seconds",
            "Streams: time from the upload being read to the first transcript delta.",
            ["model"],
            buckets=_FIRST_DELTA_BUCKETS,
            registry=r,
        )
        self.real_time_factor = Histogram(
            "asr_real_time_factor",
            "Request duration divided by the audio's duration (lower is faster; 0.02 = 50x real time).",
            ["model"],
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.windows = Counter(
            "asr_windows_decoded", "Model windows (up to 30 s of audio) decoded.", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "asr_batch_size_windows",
            "Windows decoded together in one model call (on CPU each worker takes one at a time).",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.model_loads = Counter("asr_model_loads", "Models loaded.", ["model"], registry=r)
        self.model_load_duration = Histogram(
            "asr_model_load_duration_seconds",
            "Time to load a model (and warm it up on a GPU).",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "asr_requests_in_progress",
            "Transcriptions admitted and not finished (decoding or waiting): the autoscaling signal.",
            registry=r,
        )
        self.waiting = Gauge(
            "asr_requests_waiting", "Transcriptions admitted but waiting for a decoding slot.", registry=r
        )
        self.http_in_flight = Gauge(
            "asr_http_requests_in_flight",
            "HTTP requests being answered (uploads, streams; not health checks or scrapes).",
            registry=r,
        )
        self.decoded_audio = Gauge(
            "asr_decoded_audio_bytes", "Decoded audio samples held in memory by requests.", registry=r
        )
        self.draining = Gauge("asr_draining", "1 while the server drains before exiting.", registry=r)
        self.jobs = Gauge(
            "asr_jobs",
            "Transcription jobs in the queue's database, by status (with PostgreSQL: the fleet's).",
            ["status"],
            registry=r,
        )
        self.oldest_queued = Gauge(
            "asr_jobs_oldest_queued_age_seconds",
            "How long the oldest queued job has waited (0: none).",
            registry=r,
        )
        self.job_duration = Histogram(
            "asr_job_duration_seconds",
            "Time from a job's claim to its end on this server, by how it ended.",
            ["status"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.webhooks = Counter(
            "asr_webhook_deliveries",
            "Webhook attempts made by this server, by outcome (delivered, retrying, failed).",
            ["outcome"],
            registry=r,
        )

    def watch(
        self,
        *,
        in_progress: Callable[[], float],
        waiting: Callable[[], float],
        http_in_flight: Callable[[], float],
        decoded_audio_bytes: Callable[[], float],
        draining: Callable[[], float],
    ) -> None:
        """Read the state gauges from their owners at each scrape."""
        self.in_progress.set_function(in_progress)
        self.waiting.set_function(waiting)
        self.http_in_flight.set_function(http_in_flight)
        self.decoded_audio.set_function(decoded_audio_bytes)
        self.draining.set_function(draining)

    @contextmanager
    def loading(self, model_id: str) -> Iterator[None]:
        """Count a model load and its duration (only loads that succeed)."""
        started = time.perf_counter()
        yield
        self.model_loads.labels(model_id).inc()
        self.model_load_duration.labels(model_id).observe(time.perf_counter() - started)

    def batch_observer(self, model_id: str) -> Callable[[int], None]:
        """The hook a model's batcher calls with the size of each batch it runs."""
        windows = self.windows.labels(model_id)
        sizes = self.batch_size.labels(model_id)

        def observe(size: int) -> None:
            windows.inc(size)
            sizes.observe(size)

        return observe

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
