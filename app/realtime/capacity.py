"""The limits all live sessions share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LiveCapacity:
    """What all sessions share: the session count, and the partial decodes running at once (the
    rest of the model's workers stay free for final decodes, so completed events keep up)."""

    max_sessions: int
    max_partials: int
    sessions: int = 0
    partials: int = 0
