"""Language routing, detection and /v1/audio/translations on fake engines: an English-only tiny.en
whose multilingual_model is a multilingual "base" (see app/models/selection.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import EMBEDDED_MULTILINGUAL, ModelSpec
from app.errors import InvalidRequest
from app.models.selection import Route, plan_route
from app.transcription.languages import WHISPER_LANGUAGES
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
    english, multilingual = FakeEngine(), FakeEngine(english_only=False, hears=hears, sure=sure)
    return make_client(english, others={"base": multilingual}, models=ROUTED), english, multilingual


def post(client: TestClient, path: str, **fields: str) -> Any:
    files = {"file": ("a.wav", speech_wav(), "audio/wav")}
    return client.post(path, data={"model": "whisper-1", **fields}, files=files)


def transcribe(client: TestClient, **fields: str) -> dict[str, Any]:
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


@pytest.mark.parametrize(("hears", "decoded_by"), [("pt", "base"), ("en", "tiny.en")])
@pytest.mark.parametrize("language", [None, "auto"])
def test_no_language_is_detected_once_then_routed(
    make_client: MakeClient, hears: str, decoded_by: str, language: str | None
) -> None:
    client, english, multilingual = routed(make_client, hears=hears)
    body = transcribe(client, **({"language": language} if language else {}))
    assert multilingual.detections == 1
    decoder = multilingual if decoded_by == "base" else english
    other = english if decoded_by == "base" else multilingual
    assert decoder.calls > 0 and other.calls == 0
    assert {o.language for o in decoder.options} == {hears}  # windows never wait to detect again
    assert body["language"] == {"pt": "pt-BR", "en": "en-US"}[hears]


@pytest.mark.parametrize(("sure", "decoded_by"), [(0.79, "tiny.en"), (0.81, "base")])
def test_an_unsure_detection_stays_on_the_english_model(
    make_client: MakeClient, sure: float, decoded_by: str
) -> None:
    """Whisper names Nynorsk for white noise at 50-75%, and base then invents Nynorsk words: a
    detection below language_detection_min_probability (0.8) is not trusted."""
    client, english, multilingual = routed(make_client, hears="nn", sure=sure)
    body = transcribe(client)
    assert multilingual.detections == 1
    assert (english.calls > 0) == (decoded_by == "tiny.en") and (multilingual.calls > 0) == (
        decoded_by == "base"
    )
    assert body["language"] == ("en-US" if decoded_by == "tiny.en" else "nn-NO")


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
