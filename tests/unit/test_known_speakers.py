"""Known speakers on the fake engine: the fields in each encoding, every bad input as a 400 naming
its field (before any decoding of the upload or diarization), the speaker label function, and
speaker labels in srt / vtt cues."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import pytest
import srt
import webvtt
from fastapi.testclient import TestClient

from app.config import SubtitleSettings
from app.transcription.form import MAX_JSON_CHARS, fold_form_fields
from app.transcription.params import parse_params
from app.transcription.render import speaker_label
from app.transcription.subtitles import subtitles
from tests.support.audiogen import speechlike, wav_bytes
from tests.unit.test_subtitles import segment, timed

URL = "/v1/audio/transcriptions"


def data_url(audio: bytes, media_type: str = "audio/wav") -> str:
    return f"data:{media_type};base64,{base64.b64encode(audio).decode()}"


def reference(seconds: float = 3.0, seed: int = 1) -> str:
    return data_url(wav_bytes(speechlike(seconds, seed)))


def post(client: TestClient, fields: list[tuple[str, str]]) -> Any:
    """A multipart request with repeated fields, as openai-python sends lists."""
    audio = wav_bytes(speechlike(4.0))
    files: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = [
        ("file", ("a.wav", audio, "audio/wav")),
        ("model", (None, "whisper-1", None)),
        *((k, (None, v, None)) for k, v in fields),
    ]
    return client.post(URL, files=files)


def known(names: list[str], refs: list[str]) -> list[tuple[str, str]]:
    return [("known_speaker_names[]", n) for n in names] + [("known_speaker_references[]", r) for r in refs]


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        (known(["Agent"], [data_url(b"hello, this is not audio at all" * 10)]), "not audio"),
        (known(["Agent"], [data_url(wav_bytes(speechlike(1.5)))]), "too short"),
        (known(["Agent"], [data_url(wav_bytes(speechlike(10.5)))]), "too long"),
        (known(["Agent", "Customer"], [reference()]), "one reference per name"),
        (known(["Agent"], [reference(), reference(seed=2)]), "one reference per name"),
        (known([f"n{i}" for i in range(9)], [reference(2.5, i) for i in range(9)]), "at most 8"),
        (known(["  "], [reference()]), "at least 1 character"),
        (known(["Agent", "Agent"], [reference(), reference(seed=2)]), "different"),
        (known(["Line\nbreak"], [reference()]), "printable"),
        (known(["Agent"], ["data:audio/wav;base64,@@not base64@@"]), "base64"),
        (known(["Agent"], [data_url(wav_bytes(speechlike(3.0)), "text/plain")]), "must be audio"),
        (known(["Agent"], ["https://example.com/agent.wav"]), "data URL"),
        (known(["Agent"], ["data:audio/wav,UklGRg=="]), "base64 data URL"),
    ],
)
def test_bad_known_speakers_are_a_400_naming_the_field(
    client: TestClient, fields: list[tuple[str, str]], mentions: str
) -> None:
    r = post(client, fields)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == "invalid_request"
    assert mentions in body["error"] and "known_speaker" in body["error"]


def test_a_reference_part_over_its_limit_is_refused_while_it_streams(client: TestClient) -> None:
    huge = "data:audio/wav;base64," + "A" * (9 << 20)
    r = post(client, known(["Agent"], [huge]))
    assert r.status_code == 400 and "known_speaker_references" in r.json()["error"]
    r = post(client, [("prompt", "x" * (65 << 10))])  # other text fields keep their 64 KB
    assert r.status_code == 400 and "'prompt'" in r.json()["error"]


def test_the_fields_come_as_brackets_plain_json_lists_or_in_extra_body() -> None:
    refs = [reference(), reference(seed=2)]
    brackets = fold_form_fields([("model", "m"), *known(["Agent", "Customer"], refs)])
    json_lists = {
        "model": "m",
        "known_speaker_names": json.dumps(["Agent", "Customer"]),
        "known_speaker_references": json.dumps(refs),
    }
    extra = {
        "model": "m",
        "extra_body": json.dumps(
            {"known_speaker_names": ["Agent", "Customer"]} | {"known_speaker_references": refs}
        ),
    }
    for fields in (brackets, json_lists, extra):
        params = parse_params(fields)
        assert params.known_speaker_names == ["Agent", "Customer"]
        assert params.known_speaker_references == refs
        assert params.wants_speakers  # known speakers imply diarization
    one = parse_params({"model": "m", "known_speaker_names": "Agent", "known_speaker_references": refs[0]})
    assert one.known_speaker_names == ["Agent"] and one.known_speaker_references == refs[:1]


def test_extra_body_may_carry_long_strings_but_not_a_large_structure() -> None:
    long_strings = json.dumps({"known_speaker_names": ["A"], "known_speaker_references": [reference(9.0)]})
    assert len(long_strings) > MAX_JSON_CHARS
    assert parse_params({"model": "m", "extra_body": long_strings}).known_speaker_names == ["A"]
    many_objects = json.dumps({"include": [{} for _ in range(MAX_JSON_CHARS)]})
    with pytest.raises(Exception, match="outside its strings"):
        parse_params({"model": "m", "extra_body": many_objects})


def test_speaker_label_names_known_speakers_and_letters_the_rest() -> None:
    assert [speaker_label(k) for k in (0, 1, 26)] == ["A", "B", "AA"]
    names = (None, "Agent", None, "Customer", None)
    assert [speaker_label(k, names) for k in range(6)] == ["A", "Agent", "B", "Customer", "C", "D"]
    # a name that is itself a letter is never given to another speaker too
    lettered = [None, "A", None, "C"]
    assert [speaker_label(k, lettered) for k in range(5)] == ["B", "A", "D", "C", "E"]


def test_cues_name_their_speakers_in_vtt_voice_spans_and_srt_prefixes() -> None:
    first, second = timed("good morning how can I help", 0.0), timed("my card was declined today", 5.0)
    segments = [segment(first), segment(second)]
    labels = ["Agent <1> & co", "A"]
    vtt = subtitles(segments, SubtitleSettings(), vtt=True, speakers=labels)
    captions = webvtt.from_string(vtt).captions
    assert [html.unescape(c.voice or "") for c in captions] == ["Agent <1> & co", "A"]
    assert "<v Agent &lt;1&gt; &amp; co>good morning" in vtt
    parsed = list(srt.parse(subtitles(segments, SubtitleSettings(), vtt=False, speakers=labels)))
    assert [p.content.split("] ", 1)[0] for p in parsed] == ["[Agent <1> & co", "[A"]
    plain = subtitles(segments, SubtitleSettings(), vtt=True)
    assert "<v" not in plain and "[" not in plain
