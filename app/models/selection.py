"""Which model decodes a request: the named one, or its multilingual partner.

An English-only model configured with ``multilingual_model`` (the default ``tiny.en`` -> ``base``)
keeps English (declared) on itself, at its speed; other languages and translations go to the
multilingual model; a request with no language is first run through the multilingual model's
language detection, then stays on the English model when it hears English, or when it is not sure:
Whisper names a language for noise, music and hum too ("nn" at 50-75% for white noise, where real
speech scores 90% and more), and the multilingual model then invents words in it.

Detection is nearly free for English: the English model decodes the request's first window first
(work it needs anyway), and where that decode is sure of itself (``heard_english``) the multilingual
model is never run; other speech makes the English-only model unsure of every token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.config import Settings
from app.engine import DecodeResult
from app.engine.quality import mean_logprob
from app.errors import InvalidRequest

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class Route:
    model_id: str
    language: str | None  # Whisper code; None: the model detects it (multilingual models only)
    # Detect the language on this (multilingual) model first: English stays on ``model_id``,
    # any other language goes to this model.
    detect_on: str | None = None
    among: tuple[str, ...] = ()  # detection chooses only among these (the request's ``languages``)

    def after_detection(self, language: str, probability: float = 1.0, min_probability: float = 0.0) -> Route:
        """Where the detected ``language`` goes: English, or a detection less likely than
        ``min_probability``, stays on the English model (the seed's default language)."""
        if self.detect_on is None:
            return Route(self.model_id, language)
        if language == "en" or probability < min_probability:
            return Route(self.model_id, "en")
        return Route(self.detect_on, language)


def plan_route(
    settings: Settings,
    model_id: str,
    english_only: bool,
    language: str | None,
    task: Task,
    requested: str | None,
    languages: tuple[str, ...] = (),
) -> Route:
    """The route for a request naming ``model_id`` (``requested`` is the client's language value,
    for messages; ``languages`` the ones it may be in); 400 when no configured model can serve it."""
    if language is None and len(languages) == 1:
        language, languages = languages[0], ()
    if language is not None:
        languages = ()
    if not english_only:
        return Route(model_id, language, among=languages)
    multilingual = settings.models[model_id].multilingual_model
    if task == "translate" or language not in (None, "en") or (languages and "en" not in languages):
        if multilingual is None:
            what = "translate" if task == "translate" else f"transcribe {requested or ', '.join(languages)!r}"
            raise InvalidRequest(
                f"model {model_id!r} is English-only and cannot {what}; it supports: en (en-US, en-GB, ...)."
                " Use a multilingual model, or configure one as this model's multilingual_model",
                field="model" if task == "translate" else "language",
            )
        return Route(multilingual, language, among=languages)
    if language is None and multilingual is not None:
        return Route(model_id, None, detect_on=multilingual, among=languages)
    return Route(model_id, "en")  # nothing to detect: the upload's windows need not wait for the first


def heard_english(head: DecodeResult, min_logprob: float) -> bool:
    """Whether an English-only model's decode of a window is sure enough to be English speech: its
    tokens' mean log-probability at least ``min_logprob`` (speech in another language, noise and
    music score lower; 0 never passes), and no pass failed Whisper's checks (a repetition loop can
    score high)."""
    mean = mean_logprob(head.segments)
    return mean is not None and min_logprob < 0 and mean >= min_logprob and not head.fell_back
