"""Language routing, detection and /v1/audio/translations on fake engines: an English-only tiny.en
whose multilingual_model is a multilingual "base" (see app/models/selection.py)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import EMBEDDED_MULTILINGUAL, ModelSpec
from app.engine import DEFAULT_TEMPERATURES, DecodeOptions, DecodeResult
from app.errors import InvalidRequest
from app.models.selection import Route, plan_route
from app.transcription.languages import WHISPER_LANGUAGES
from tests.support.audiogen import Samples
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient
from tests.unit.test_api import assert_error, speech_wav

ROUTED = {
    "tiny.en": ModelSpec(aliases=("Azure/AI-Transcription", "whisper-1"), multilingual_model="base"),
    "base": ModelSpec(path=EMBEDDED_MULTILINGUAL, aliases=("whisper-base",)),
}


def routed(
    make_client: MakeClient, hears: str, sure: float = 0.9
) -> tuple[TestClient, FakeEngine, FakeEngine]:
    # tiny.en is sure of itself on English speech only (see heard_english).
    english = FakeEngine(avg_logprob=-0.1 if hears == "en" else -1.0)
    multilingual = FakeEngine(english_only=False, hears=hears, sure=sure)
    return make_client(english, others={"base": multilingual}, models=ROUTED), english, multilingual


def post(client: TestClient, path: str, **fields: Any) -> Any:
    files = {"file": ("a.wav", speech_wav(), "audio/wav")}
    return client.post(path, data={"model": "whisper-1", **fields}, files=files)


def transcribe(client: TestClient, **fields: Any) -> dict[str, Any]:
    r = post(client, "/v1/audio/transcriptions", response_format="verbose_json", **fields)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.parametrize("language", ["de-DE", "de", "DE_at"])
def test_a_declared_language_goes_to_the_multilingual_model(make_client: MakeClient, language: str) -> None:
    client, english, multilingual = routed(make_client, hears="fr")
    body = transcribe(client, language=language)
    assert english.calls == 0 and multilingual.calls > 0 and multilingual.detections == 0
    assert {o.language for o in multilingual.options} == {"de"}
    assert body["language"] == ("de-AT" if language == "DE_at" else "de-DE")
    assert body["text"]


@pytest.mark.parametrize("language", ["en-US", "en"])
def test_declared_english_stays_on_the_english_model(make_client: MakeClient, language: str) -> None:
    """The AI Refinery SDK sends en-US unless told otherwise: no detection, today's speed."""
    client, english, multilingual = routed(make_client, hears="de")
    body = transcribe(client, language=language)
    assert english.calls > 0 and multilingual.calls == 0 and multilingual.detections == 0
    assert body["language"] == "en-US"


@pytest.mark.parametrize("language", [None, "auto"])
def test_no_language_english_is_decided_by_the_english_model(
    make_client: MakeClient, language: str | None
) -> None:
    """The English model's sure decode of the first window settles it: the multilingual model never runs,
    and that decode is the first window's result (not decoded twice)."""
    client, english, multilingual = routed(make_client, hears="en")
    body = transcribe(client, **({"language": language} if language else {}))
    assert multilingual.detections == 0 and multilingual.calls == 0
    assert english.calls == 1 and {o.language for o in english.options} == {"en"}
    assert body["language"] == "en-US" and body["text"]


@pytest.mark.parametrize("language", [None, "auto"])
def test_no_language_other_speech_is_detected_once_then_routed(
    make_client: MakeClient, language: str | None
) -> None:
    client, english, multilingual = routed(make_client, hears="pt")
    body = transcribe(client, **({"language": language} if language else {}))
    assert english.calls == 1  # the first window, unsure: detection decides
    assert multilingual.detections == 1 and multilingual.calls > 0
    assert {o.language for o in multilingual.options} == {"pt"}  # windows never wait to detect again
    assert body["language"] == "pt-BR"


class TwoWorkerEnglish(FakeEngine):
    """Two workers; its first window does not finish until another window has started, so the window
    that decides the language cannot be decoded alone (it waits at most ``GATE_S`` for company).
    ``cold_falls_back``: its temperature-0 decodes report that Whisper's checks failed."""

    GATE_S = 10.0

    def __init__(self, cold_falls_back: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parallel_windows = 2
        self.cold_falls_back = cold_falls_back
        self.company = threading.Event()
        self.head_had_company: bool | None = None

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        if self.head_had_company is None:
            self.head_had_company = False  # (claimed at once: one head)
            self.head_had_company = self.company.wait(self.GATE_S)
        else:
            self.company.set()
        result = super().transcribe(samples, options)
        return dataclasses.replace(result, fell_back=self.cold_falls_back and options.temperature == COLD)


COLD, HOT = (0.0,), DEFAULT_TEMPERATURES
# Speech bursts a window each, each window its own lane.
MANY_WINDOWS = {"window_s": 2.0, "lane_windows": 1, "max_batch_size": 4}


@pytest.mark.parametrize(("hears", "cold_falls_back"), [("en", False), ("pt", False), ("en", True)])
def test_other_lanes_start_in_english_while_the_first_window_decides(
    make_client: MakeClient, hears: str, cold_falls_back: bool
) -> None:
    """As with ``language=en``, both workers start at once: the second lane's first window decodes beside
    the one that settles the language, and is kept if that is English (each window decoded once, the same
    text), dropped if not. Both are decoded at temperature 0 only, giving up after an unsure first pass, so
    other speech costs one pass each; decoded again as asked where that fell short on English."""
    english = TwoWorkerEnglish(cold_falls_back, avg_logprob=-0.1 if hears == "en" else -1.0)
    multilingual = FakeEngine(english_only=False, hears=hears)
    client = make_client(english, others={"base": multilingual}, models=ROUTED, **MANY_WINDOWS)
    body = transcribe(client)
    declared = FakeEngine(avg_logprob=-0.1, hears=hears)  # each window decoded once, in one language
    declared_client = make_client(declared, **MANY_WINDOWS)
    assert transcribe(declared_client, language="en")["text"]
    windows = declared.calls
    assert english.head_had_company and windows >= 3
    cold = [o for o in english.options if o.temperature == COLD]
    assert len(cold) == 2 and all(o.temperature != COLD for o in declared.options)
    if hears == "pt":
        assert english.calls == 2 and multilingual.calls == windows and body["language"] == "pt-BR"
        return
    assert english.calls == windows + 2 * cold_falls_back
    # a first window that fell short is not sure: the multilingual model's detection says English
    assert multilingual.calls == 0 and multilingual.detections == cold_falls_back
    assert body["text"] == transcribe(declared_client, language="en")["text"]
    # what each window's kept decode was asked, as with language=en
    hot = [o for o in english.options if o.temperature != COLD]
    as_asked = [dataclasses.replace(o, temperature=HOT, give_up_below=None) for o in cold]
    kept = hot + ([] if cold_falls_back else as_asked)
    assert sorted(map(repr, kept)) == sorted(map(repr, declared.options[:windows]))


def test_a_detection_threshold_of_zero_always_detects(make_client: MakeClient) -> None:
    english, multilingual = FakeEngine(), FakeEngine(english_only=False, hears="en")
    client = make_client(
        english, others={"base": multilingual}, models=ROUTED, language_detection_english_min_logprob=0.0
    )
    assert transcribe(client)["language"] == "en-US"
    assert multilingual.detections == 1 and multilingual.calls == 0
    assert english.calls == 1  # the decode detection made before is not thrown away


@pytest.mark.parametrize(("sure", "decoded_by"), [(0.79, "tiny.en"), (0.81, "base")])
def test_an_unsure_detection_stays_on_the_english_model(
    make_client: MakeClient, sure: float, decoded_by: str
) -> None:
    """Whisper names Nynorsk for white noise at 50-75%, and base then invents Nynorsk words: a
    detection below language_detection_min_probability (0.8) is not trusted."""
    client, english, multilingual = routed(make_client, hears="nn", sure=sure)
    body = transcribe(client)
    assert multilingual.detections == 1 and english.calls == 1
    assert (multilingual.calls > 0) == (decoded_by == "base")
    assert body["language"] == ("en-US" if decoded_by == "tiny.en" else "nn-NO")


@pytest.mark.parametrize(
    ("languages", "hears", "among", "decoded_in"),
    [
        (["de", "fr"], "fr", ("de", "fr"), "fr"),  # no English among them: straight to base, restricted
        (["de-DE", "fr"], "pt", ("de", "fr"), "de"),  # what it hears is not allowed: the likeliest allowed
        (["en", "es"], "es", ("en", "es"), "es"),  # English may be it: tiny.en first, then base
        (["es"], "pt", None, "es"),  # one language: as ``language``, no detection
    ],
)
def test_languages_restrict_detection(
    make_client: MakeClient, languages: list[str], hears: str, among: tuple[str, ...] | None, decoded_in: str
) -> None:
    client, _, multilingual = routed(make_client, hears=hears)
    body = transcribe(client, **{"languages[]": languages})
    assert multilingual.detected_among == ([] if among is None else [among])
    assert {o.language for o in multilingual.options} == {decoded_in}
    assert body["language"].startswith(decoded_in)


def test_languages_are_checked(make_client: MakeClient) -> None:
    client, _, _ = routed(make_client, hears="de")
    unknown = {"languages[]": ["de", "xx"]}
    assert_error(post(client, "/v1/audio/transcriptions", **unknown), 400, "languages")
    alone = make_client(FakeEngine())  # tiny.en without a multilingual model cannot do German
    assert_error(
        post(alone, "/v1/audio/transcriptions", **{"languages[]": ["de", "fr"]}), 400, "English-only"
    )


def test_stream_and_words_in_a_routed_language(make_client: MakeClient) -> None:
    client, _, multilingual = routed(make_client, hears="es")
    r = post(client, "/v1/audio/transcriptions", language="es", stream="true")
    assert r.status_code == 200 and '"transcript.text.done"' in r.text
    words = transcribe(client, language="es-MX", **{"timestamp_granularities[]": "word"})
    assert words["language"] == "es-MX" and words["words"] and words["confidence"] is not None
    assert {o.language for o in multilingual.options} == {"es"}


def test_the_multilingual_model_detects_itself(make_client: MakeClient) -> None:
    client, english, multilingual = routed(make_client, hears="fr")
    body = transcribe(client, model="whisper-base")
    assert english.calls == 0 and multilingual.detections == 0  # the windows detect on the model
    assert multilingual.options[0].language is None and body["language"] == "fr-FR"


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "verbose_json", "vtt"])
def test_translations_run_the_translate_task(make_client: MakeClient, response_format: str) -> None:
    client, english, multilingual = routed(make_client, hears="de")
    r = post(client, "/v1/audio/translations", response_format=response_format, prompt="Hello.")
    assert r.status_code == 200, r.text
    assert english.calls == 0 and {o.task for o in multilingual.options} == {"translate"}
    assert multilingual.options[0].prompt == "Hello."
    if response_format == "verbose_json":
        body = r.json()
        assert (body["task"], body["language"], body["source_language"]) == ("translate", "en-US", "de-DE")
        assert body["text"]
    elif response_format == "vtt":
        assert r.text.startswith("WEBVTT")


def test_transcriptions_keep_the_transcribe_task(make_client: MakeClient) -> None:
    client, _, multilingual = routed(make_client, hears="de")
    transcribe(client, language="de")
    assert {o.task for o in multilingual.options} == {"transcribe"}


def test_a_model_that_cannot_translate_gets_400(client: TestClient) -> None:
    """tiny.en alone (no multilingual_model): English-only, it cannot translate."""
    assert_error(post(client, "/v1/audio/translations"), 400, "cannot translate")
    assert_error(post(client, "/v1/audio/translations", model="nope"), 404, "does not exist")


def test_models_list_their_languages(make_client: MakeClient) -> None:
    client, _, _ = routed(make_client, hears="de")
    cards = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert cards["tiny.en"]["languages"] == ["en"] and cards["tiny.en"]["multilingual_model"] == "base"
    assert set(cards["base"]["languages"]) == WHISPER_LANGUAGES and {"de", "fr", "es", "pt"} <= set(
        cards["base"]["languages"]
    )
    assert cards["tiny.en"]["translates"] and cards["base"]["translates"]
    assert client.get("/v1/models/whisper-base").json()["alias_of"] == "base"


def test_plan_route_without_a_multilingual_partner() -> None:
    from app.config import Settings

    settings = Settings(models={"tiny.en": ModelSpec()})
    assert plan_route(settings, "tiny.en", True, None, "transcribe", None) == Route("tiny.en", "en")
    with pytest.raises(InvalidRequest, match="cannot transcribe 'fr-FR'"):
        plan_route(settings, "tiny.en", True, "fr", "transcribe", "fr-FR")
    with pytest.raises(ValueError, match="not a configured model"):
        Settings(models={"tiny.en": ModelSpec(multilingual_model="base")})
