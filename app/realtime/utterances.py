"""What a live session decodes: each utterance's decode state, and the options of previews and
final decodes."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import Future
from dataclasses import dataclass

from app.audio.pcm import SAMPLE_RATE, Samples
from app.config import Settings
from app.engine import DEFAULT_TEMPERATURES, DecodeOptions, DecodeResult
from app.realtime.partials import Partials
from app.realtime.protocol import SessionConfig
from app.transcription.keywords import keyword_prompt
from app.transcription.windows import join_prompt

# The first preview waits for this much of the utterance: its prefix padding (300 ms) and ~0.3 s of
# speech (the segmenter announces an utterance after 250 ms of it).
FIRST_PREVIEW_SAMPLES = SAMPLE_RATE * 6 // 10


@dataclass(frozen=True, slots=True)
class Early:
    """A final decode started before the utterance closed, of its first ``samples``."""

    samples: int
    options: DecodeOptions
    task: asyncio.Task[DecodeResult]


@dataclass(eq=False, slots=True)
class Utterance:
    item_id: str
    partials: Partials = dataclasses.field(default_factory=Partials)
    decoded_samples: int = 0  # audio length of the last partial decode submitted
    decoding: bool = False  # a partial decode is running
    pending: Future[DecodeResult] | None = None  # that decode, dropped if still queued at the commit
    early: Early | None = None
    closed: bool = False

    def drop_early(self) -> None:
        if self.early is not None:
            self.early.task.cancel()
            self.early = None


@dataclass(frozen=True, slots=True)
class Final:
    utterance: Utterance
    audio: Samples


def decode_options(
    settings: Settings, config: SessionConfig, language: str | None, context: str, *, final: bool
) -> DecodeOptions:
    """A preview's options (greedy, text only: see ``app.engine.preview``) or a final decode's (the
    HTTP path's: beam search, temperature fallback); both prompted with the session's recent text."""
    prompt = join_prompt(config.prompt, context)
    hotwords = keyword_prompt(config.keywords)
    if not final:
        return DecodeOptions(
            language=language,
            beam_size=1,
            prompt=prompt,
            temperature=(0.0,),
            hotwords=hotwords,
            preview=True,
            short_window=True,
        )
    return DecodeOptions(
        language=language,
        beam_size=settings.beam_size,
        prompt=prompt,
        hotwords=hotwords,
        temperature=DEFAULT_TEMPERATURES,
        logprobs=config.logprobs,
        short_window=True,
    )
