"""Known speakers on the real server (real model, real speaker encoder): a two-speaker conversation
joined from eval clips, with references cut from other clips of the same readers, comes back with
each reader's name on their speech in diarized_json, verbose_json, srt, vtt and a stream; a reader
without a reference keeps a letter; references in other formats decode."""

from __future__ import annotations

import base64
import html
import io
from functools import cache
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import srt
import webvtt
from fastapi.testclient import TestClient

from app.audio.pcm import to_int16
from tests.support.audiogen import speechlike, tone, wav_bytes
from tests.support.harness import LiveServer, sse_events
from tests.support.known_sets import KnownCase, known_case

URL = "/v1/audio/transcriptions"
# Two readers (LibriSpeech 1998 and 2033), every one with a reference, no absent reader's.
SEED = 4
AGREEMENT = 0.9  # of the speech in each answer under the right name (words near a turn change may not)


@cache
def case() -> KnownCase:
    found = known_case(SEED, 2, turns=4)
    assert len(found.names) == 2 and not found.unreferenced
    return found


def data_url(samples: np.ndarray) -> str:
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def post(server: LiveServer, names: list[str], refs: list[str], **fields: str) -> httpx.Response:
    """openai-python's encoding: repeated bracket fields."""
    audio = wav_bytes(case().recording.samples)
    form = [("model", "whisper-1"), *fields.items()]
    form += [("known_speaker_names[]", n) for n in names] + [("known_speaker_references[]", r) for r in refs]
    return httpx.post(
        server.base_url + URL,
        files=[("file", ("call.wav", audio, "audio/wav")), *((k, (None, v)) for k, v in form)],
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=600,
    )


def everyone(server: LiveServer, **fields: str) -> httpx.Response:
    c = case()
    r = post(server, list(c.names), [data_url(a) for a in c.references], **fields)
    assert r.status_code == 200, r.text
    return r


def truth(start: float, end: float) -> str:
    """The reader who speaks most over [start, end]."""
    overlap: dict[str, float] = {}
    for s, e, who in case().recording.reference:
        overlap[who] = overlap.get(who, 0.0) + max(0.0, min(e, end) - max(s, start))
    return max(overlap, key=lambda k: overlap[k])


def check_named(items: list[tuple[float, float, str]]) -> None:
    """(start, end, label): most of the time is under the reader's own name, and both names occur."""
    right = sum(e - s for s, e, label in items if label == truth(s, e))
    assert right >= AGREEMENT * sum(e - s for s, e, _ in items), items
    assert {label for *_, label in items} == set(case().names)


def test_diarized_json_and_its_stream_carry_the_names(live_server: LiveServer) -> None:
    body = everyone(live_server, response_format="diarized_json").json()
    check_named([(s["start"], s["end"], s["speaker"]) for s in body["segments"]])
    events = sse_events(everyone(live_server, response_format="diarized_json", stream="true").text)
    segments = [e for e in events if isinstance(e, dict) and e["type"] == "transcript.text.segment"]
    check_named([(s["start"], s["end"], s["speaker"]) for s in segments])
    assert events[-1] == "[DONE]"


def test_verbose_json_names_speaker_and_keeps_guest_ids(live_server: LiveServer) -> None:
    body = everyone(
        live_server, response_format="verbose_json", **{"timestamp_granularities[]": "word"}
    ).json()
    check_named([(s["start"], s["end"], s["speaker"]) for s in body["segments"]])
    assert {s["speaker_id"] for s in body["segments"]} == {"Guest-1", "Guest-2"}
    by_segment = {s["id"]: s["speaker"] for s in body["segments"]}
    assert all(w["speaker"] == by_segment[w["segment"]] for w in body["words"])


def test_srt_and_vtt_name_each_cue(live_server: LiveServer) -> None:
    cues = list(srt.parse(everyone(live_server, response_format="srt").text))
    labelled = []
    for cue in cues:
        assert cue.content.startswith("["), cue.content
        label = cue.content[1:].split("] ", 1)[0]
        labelled.append((cue.start.total_seconds(), cue.end.total_seconds(), label))
    check_named(labelled)
    captions = webvtt.from_string(everyone(live_server, response_format="vtt").text).captions
    check_named([(c.start_in_seconds, c.end_in_seconds, html.unescape(c.voice or "")) for c in captions])


def test_a_reader_without_a_reference_keeps_a_letter(live_server: LiveServer) -> None:
    c = case()
    r = post(live_server, [c.names[0]], [data_url(c.references[0])], response_format="diarized_json")
    assert r.status_code == 200, r.text
    items = [(s["start"], s["end"], s["speaker"]) for s in r.json()["segments"]]
    other = next(who for *_, who in c.recording.reference if who != c.names[0])
    mine = [label for s, e, label in items if truth(s, e) == c.names[0]]
    theirs = [label for s, e, label in items if truth(s, e) == other]
    assert mine.count(c.names[0]) >= AGREEMENT * len(mine)
    assert theirs and c.names[0] not in theirs and set(theirs) <= {"A"}, items


def test_a_reference_may_be_any_accepted_format(client: TestClient) -> None:
    """Raw 8 kHz PCM (its rate in the data URL's type) and an x-wav tone pass every check on the
    fake engine; the tone matches no one's voice."""
    pcm8k = to_int16(speechlike(3.0)[::2]).astype("<i2").tobytes()
    urls = [
        "data:audio/pcm;rate=8000;base64," + base64.b64encode(pcm8k).decode(),
        "data:audio/x-wav;base64," + base64.b64encode(wav_bytes(tone(3.0))).decode(),
    ]
    for url in urls:
        data: Any = {"model": "whisper-1", "response_format": "diarized_json"}
        data |= {"known_speaker_names[]": "Agent", "known_speaker_references[]": url}
        r = client.post(URL, data=data, files={"file": ("a.wav", wav_bytes(speechlike(4.0)), "audio/wav")})
        assert r.status_code == 200, r.text
        assert all(s["speaker"] != "Agent" for s in r.json()["segments"])
