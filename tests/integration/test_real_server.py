"""The real server (``asr-server`` on the embedded model) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import srt
import webvtt

from app.audio.chunking import Chunk, chunk_frames, chunking_options
from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from app.audio.vad import detect_speech
from app.config import Settings, load_settings
from app.engine.placement import select_placement
from app.transcription.params import parse_params
from tests.support.audiogen import silence, tone, wav_bytes, white_noise
from tests.support.evalset import (
    EVAL_DIR,
    Clip,
    clips,
    first_word_errors_s,
    frame_rms,
    normalize,
    speech_onsets_s,
    wer,
)
from tests.support.harness import LiveServer

URL = "/v1/audio/transcriptions"


def transcribe(server: LiveServer, path_or_bytes: Any, **fields: str) -> httpx.Response:
    data = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    return httpx.post(
        server.base_url + URL,
        data={"model": "whisper-1", **fields},
        files={"file": ("audio.wav", data, "audio/wav")},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=600,
    )


def stream_events(
    server: LiveServer, path: Any, first_only: bool = False, **fields: str
) -> list[tuple[float, Any]]:
    """(seconds since the request was sent, event) for every SSE data line (or just the first)."""
    start = time.monotonic()
    out: list[tuple[float, Any]] = []
    with httpx.stream(
        "POST",
        server.base_url + URL,
        data={"model": "whisper-1", "stream": "True", **fields},
        files={"file": ("audio.flac", path.read_bytes(), "audio/wav")},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=600,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
                out.append((time.monotonic() - start, data if data == "[DONE]" else json.loads(data)))
                if first_only:
                    break
    return out


def corpus_wer(server: LiveServer, items: list[Clip], **fields: str) -> tuple[float, list[dict[str, Any]]]:
    """Corpus WER of the clips transcribed eight at a time (their windows share model batches),
    and the response bodies."""
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda c: transcribe(server, c.path, **fields), items))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    bodies = [r.json() for r in responses]
    return wer([c.text for c in items], [b["text"] for b in bodies]), bodies


def test_accuracy_short_clips(live_server: LiveServer) -> None:
    """The bare library (tiny.en int8, beam 5) scores about 8.8% here.

    The clips are English and say so: without a language each request would first be detected on
    the multilingual model (whose encoder pass cost more than tiny.en's whole decode of these clips:
    47 vs 21 CPU seconds for 16 of them), which test_real_languages checks, English included."""
    items = clips("short")
    assert len(items) >= 40
    score, _ = corpus_wer(live_server, items, language="en")
    print(f"short-clip WER: {score:.2%}")
    assert score < 0.10


LONG_FIELDS = {"response_format": "verbose_json", "timestamp_granularities": '["word"]'}


@dataclass(frozen=True)
class LongFiles:
    score: float  # corpus WER
    bodies: list[dict[str, Any]]
    busy_health_s: list[float]  # how long /health took to answer while they were transcribed


@pytest.fixture(scope="module")
def long_files(live_server: LiveServer) -> LongFiles:
    """The long files transcribed at once (their windows share model batches), and /health probed
    meanwhile: from the moment they are sent, every 0.1 s, so that probes land inside the
    transcription on a fast machine (a GPU transcribes them in about a second) as on a slow one."""
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        work = pool.submit(corpus_wer, live_server, clips("long"), **LONG_FIELDS)
        busy: list[float] = []  # latencies of the probes answered while a transcription was in progress
        deadline = time.monotonic() + 600
        while not work.done() and len(busy) < 5 and time.monotonic() < deadline:
            start = time.monotonic()
            r = client.get("/health")
            elapsed = time.monotonic() - start
            assert r.status_code == 200
            if r.json()["active_requests"] > 0:
                busy.append(elapsed)
            time.sleep(0.1)
        score, bodies = work.result(timeout=600)
    return LongFiles(score, bodies, busy)


def test_accuracy_and_word_timestamps_long_files(long_files: LongFiles) -> None:
    """WER (the bare library's sequential transcribe scores about 6.8% here) and, from the same
    verbose_json answers, the first word of each utterance timestamped within 0.5 s of where its
    speech starts, on the uploaded file's timeline. The speech starts after the utterance's
    lead-in silence (``speech_onsets_s``): about 0.5 s into the LibriSpeech utterances, so the
    manifest's own ``start_s`` would fail a perfect timestamp; the error against it is printed."""
    items = clips("long")
    assert len(items) >= 2
    score, bodies = long_files.score, long_files.bodies
    print(f"long-file WER: {score:.2%}")
    errors_s: list[float] = []
    utterances = 0
    for clip, body in zip(items, bodies, strict=True):
        words = body["words"]
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and all(
            0 <= w["start"] <= w["end"] <= body["duration"] for w in words
        )
        onsets = speech_onsets_s(clip)
        errors = first_word_errors_s(clip, words, onsets)
        manifest = first_word_errors_s(clip, words, [u["start_s"] for u in clip.raw["segments"]])
        print(
            f"{clip.id}: first-word error over {len(errors)}/{len(onsets)} utterances: vs speech onset "
            f"mean {np.mean(errors):.3f} s, max {max(errors):.3f} s; vs manifest start_s mean "
            f"{np.mean(manifest):.3f} s, max {max(manifest):.3f} s"
        )
        errors_s += errors
        utterances += len(onsets)
    assert score < 0.08
    assert len(errors_s) >= 0.9 * utterances
    assert max(errors_s) <= 0.5, sorted(errors_s)[-5:]


@pytest.mark.skipif(
    select_placement(load_settings().device, "default").device != "cpu",
    reason="on a GPU the prompts of one batched call are cut to the shortest (ARCHITECTURE.md)",
)
def test_a_file_transcribes_the_same_alone_as_among_others(
    live_server: LiveServer, long_files: LongFiles
) -> None:
    """What else the server decodes meanwhile changes no word of a request's answer: each window
    keeps its own previous text as its prompt (on CPU; see ARCHITECTURE.md)."""
    among_others = long_files.bodies
    index = next(i for i, c in enumerate(clips("long")) if c.path == LONG)
    r = transcribe(live_server, LONG, **LONG_FIELDS)
    assert r.status_code == 200
    alone = r.json()
    assert alone["text"] == among_others[index]["text"]
    assert alone["words"] == among_others[index]["words"]


@pytest.mark.parametrize("clip", clips("format-variant"), ids=lambda c: c.id)
def test_every_format_variant_transcribes(live_server: LiveServer, clip: Clip) -> None:
    fields = {"language": "en"}  # the clips are English (the decoder's task here, not detection's)
    if "raw_format" in clip.raw:
        fields["sample_rate"] = str(clip.raw["raw_format"]["sample_rate"])
    r = transcribe(live_server, clip.path, **fields)
    assert r.status_code == 200, r.text
    assert wer([clip.text], [r.json()["text"]]) < 0.35, (clip.text, r.json()["text"])


@pytest.mark.parametrize(
    "audio",
    [silence(4.0), tone(4.0, 440, 0.3), tone(4.0, 1000, 0.5), white_noise(4.0, 0.05)],
    ids=["silence", "tone-440", "tone-1k", "noise"],
)
def test_no_words_invented_on_non_speech(live_server: LiveServer, audio: np.ndarray) -> None:
    r = transcribe(live_server, wav_bytes(audio))
    assert r.status_code == 200
    assert r.json()["text"] == "" and r.json()["success"] is True


def speech_span_s(clip: Clip) -> tuple[float, float]:
    """Where the speech is, measured without the server: the first and last 30 ms frame louder
    than a fifth of the loudest one."""
    rms, frame_s = frame_rms(clip.path, frame_ms=30)
    loud = np.flatnonzero(rms > 0.2 * rms.max())
    return float(loud[0] * frame_s), float((loud[-1] + 1) * frame_s)


def test_subtitles_parse_and_cover_the_speech(live_server: LiveServer) -> None:
    jfk = next(c for c in clips("short") if c.id.startswith("jfk"))
    text = transcribe(live_server, jfk.path).json()["text"]
    srt_body = transcribe(live_server, jfk.path, response_format="srt").text
    vtt_body = transcribe(live_server, jfk.path, response_format="vtt").text
    cues = {
        "srt": [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(srt_body)],
        "vtt": [
            (c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text)
            for c in webvtt.from_string(vtt_body).captions
        ],
    }
    speech_start_s, speech_end_s = speech_span_s(jfk)
    print(f"speech {speech_start_s:.2f}-{speech_end_s:.2f} s; cues {cues['srt']}")
    for fmt, found in cues.items():
        assert found, fmt
        assert all(a < b for a, b, _ in found) and [a for a, _, _ in found] == sorted(a for a, _, _ in found)
        assert abs(found[0][0] - speech_start_s) < 1.0 and abs(found[-1][1] - speech_end_s) < 1.0, fmt
        assert normalize(" ".join(t for _, _, t in found)) == normalize(text), fmt
        # Cut to the default layout: two lines of 42 characters, 7 s at most.
        assert all(b - a <= 7.0 and len(t.splitlines()) <= 2 for a, b, t in found), fmt
        assert all(len(line) <= 42 for _, _, t in found for line in t.splitlines()), fmt


LONG = EVAL_DIR / "long" / "long-ls-test-other-2033-164914-0000-0009.flac"


def deltas(events: list[tuple[float, Any]]) -> list[tuple[float, dict[str, Any]]]:
    return [(t, e) for t, e in events if isinstance(e, dict) and e["type"] == "transcript.text.delta"]


def vad(**fields: int) -> str:
    return json.dumps({"type": "server_vad", **fields})


@pytest.fixture(scope="module")
def long_stream(live_server: LiveServer) -> list[tuple[float, Any]]:
    return stream_events(live_server, LONG, chunking_strategy=vad(silence_duration_ms=200))


def test_stream_on_a_long_file(long_stream: list[tuple[float, Any]]) -> None:
    assert long_stream[-1][1] == "[DONE]"
    done = long_stream[-2][1]
    assert done["type"] == "transcript.text.done"
    ds = deltas(long_stream)
    assert "".join(d["delta"] for _, d in ds) == done["text"]
    first_s, total_s = ds[0][0], long_stream[-1][0]
    assert first_s < total_s / 2, "the first delta waited for the whole file"
    reference = next(c for c in clips("long") if c.path == LONG)
    assert wer([reference.text], [done["text"]]) < 0.2


def long_chunks(**strategy: int) -> list[Chunk]:
    """The chunks a request with this ``chunking_strategy`` cuts the real long file into."""
    audio = decode_audio(LONG.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=600)
    params = parse_params({"model": "whisper-1", "chunking_strategy": vad(**strategy)})
    opts = chunking_options(Settings().vad, params.chunking_strategy)
    return chunk_frames(detect_speech(audio.pcm, opts.aggressiveness), len(audio.pcm), opts)


def test_silence_duration_changes_the_number_of_deltas(long_stream: list[tuple[float, Any]]) -> None:
    # A delta per chunk with text: the stream (200 ms) has more of them than there are chunks at
    # 2000 ms (the request's value reaching the chunker is checked on the fake engine, test_api).
    long_pause = long_chunks(silence_duration_ms=2000)
    assert len(deltas(long_stream)) > len(long_pause) >= 1
    assert len(long_chunks(silence_duration_ms=200)) > len(long_pause)


def test_prefix_padding_changes_where_chunks_start() -> None:
    """On the real long file: each chunk starts ``prefix_padding_ms`` before its speech (never
    before the file or inside the previous chunk). Which chunk yields the first delta depends on
    the model, so this checks the chunks that requests with these settings are cut into."""
    tight, padded = long_chunks(prefix_padding_ms=0), long_chunks(prefix_padding_ms=800)
    pad = int(0.8 * 16000)
    assert len(tight) >= 5
    assert all(c.start == c.speech_start for c in tight)
    assert padded[0].speech_start == tight[0].start
    assert abs(padded[0].start - max(tight[0].start - pad, 0)) <= 480  # whole 30 ms frames
    assert all(c.start <= (c.speech_start or 0) for c in padded)
    assert sum(c.start for c in padded) < sum(c.start for c in tight)


def test_health_is_fast_while_transcribing(long_files: LongFiles) -> None:
    """Inference runs on low-priority threads: the event loop still answers within moments (probed
    while the long files were transcribed, see ``long_files``)."""
    busy = long_files.busy_health_s
    assert len(busy) >= 3, f"the transcription ended before the probes: only {len(busy)} measured"
    assert sorted(busy)[len(busy) // 2] < 1.0, busy
