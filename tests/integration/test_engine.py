"""The real engine: batching changes speed, not results."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.audio.chunking import ChunkingOptions, chunk_frames
from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from app.audio.vad import detect_speech
from app.config import Settings
from app.engine import DecodeOptions
from app.engine.passes import HOP_SAMPLES, trimmed_samples
from app.engine.segmentation import segment_tokens, split_at_pauses
from app.engine.whisper import WhisperEngine
from app.models.registry import embedded_model_path
from app.transcription.windows import pack_windows
from tests.support.evalset import clips, normalize, wer


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    """On the CPU unless ``ASR_DEVICE`` (the server's own setting) names another: cuda on a GPU box.

    Two CPU threads, so two workers: windows decode side by side on any machine.
    """
    device = os.environ.get("ASR_DEVICE", "cpu")
    engine = WhisperEngine(
        embedded_model_path(), device=device, cpu_threads=2, max_batch_size=8, batch_wait_s=0.5
    )
    assert device != "cpu" or engine.layout.workers == 2
    return engine


def load(path: Path) -> np.ndarray:
    return decode_audio(path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=60).to_float()


def long_file(id_part: str) -> np.ndarray:
    clip = next(c for c in clips("long") if id_part in c.id)
    audio = decode_audio(clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=600)
    return audio.to_float()


def test_batched_windows_decode_as_faster_whisper_decodes_each_alone(engine: WhisperEngine) -> None:
    samples = [
        decode_audio(c.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=60).to_float()
        for c in clips("short")[:3]
    ]
    options = DecodeOptions(language="en", word_timestamps=True)
    # A window without text (noise) in the batch: the others' words are aligned without it.
    noise = (np.random.default_rng(0).standard_normal(5 * 16000) * 0.05).astype(np.float32)
    futures = [engine.submit(s, options) for s in [noise, *samples]]
    batched = [f.result(timeout=600) for f in futures]  # one batch
    assert not batched.pop(0).text
    for s, b in zip(samples, batched, strict=True):
        # faster-whisper's own transcribe loop, decoding the text only as the engine does
        segments, _ = engine._model.transcribe(s, language="en", beam_size=5, without_timestamps=True)
        assert b.text
        assert b.text == "".join(seg.text for seg in segments).strip()
        words = [w for seg in b.segments for w in seg.words]
        assert "".join(w.word for w in words).strip() == b.text
        assert all(0 <= w.start_s <= w.end_s <= len(s) / 16000 + 0.5 for w in words)


def test_a_window_encoded_ahead_decodes_as_one_encoded_in_its_batch(engine: WhisperEngine) -> None:
    clip = clips("short")[1]
    samples = decode_audio(
        clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=60
    ).to_float()
    options = DecodeOptions(language="en", word_timestamps=True)
    ahead = engine.encode_ahead(samples)
    assert (ahead is None) == (engine.layout.workers == 1)  # CPU workers encode ahead; a GPU does not
    with_ahead = engine.submit(samples, options, ahead).result(timeout=600)
    alone = engine.submit(samples, options).result(timeout=600)
    assert with_ahead.text
    assert with_ahead.text == alone.text
    words = [[(w.word, w.start_s, w.end_s) for s in t.segments for w in s.words] for t in (with_ahead, alone)]
    assert words[0] == words[1]


def test_a_short_window_is_encoded_where_the_audio_fits_and_reads_the_same(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live decodes ask for a 10 s encoder window: the encoder reads it only where the audio ends
    half a second before it, and the text matches the full window's."""
    fits = [c for c in clips("short") if 3.0 <= c.duration_s <= 8.0][:4]
    longer = next(c for c in clips("short") if 10.0 <= c.duration_s <= 30.0)
    audio = {c.id: load(c.path) for c in [*fits, longer]}
    engine.transcribe(audio[longer.id][:16000], DecodeOptions(language="en"))  # the model is loaded
    widths: list[int] = []
    encode = engine._model.encode

    def spied(features: Any, *args: Any, **kwargs: Any) -> Any:
        widths.append(np.shape(features)[-1])
        return encode(features, *args, **kwargs)

    monkeypatch.setattr(engine._model, "encode", spied)
    short, full = DecodeOptions(language="en", short_window=True), DecodeOptions(language="en")
    pairs = [
        (engine.transcribe(audio[c.id], short).text, engine.transcribe(audio[c.id], full).text) for c in fits
    ]
    assert widths == [1000, 3000] * len(fits)
    references = [c.text for c in fits]
    assert all(s for s, _ in pairs)
    assert wer(references, [s for s, _ in pairs]) <= wer(references, [f for _, f in pairs]) + 0.03
    widths.clear()
    engine.transcribe(audio[longer.id], short)
    engine.transcribe(audio[fits[0].id], DecodeOptions(language="en", preview=True, short_window=True))
    # 10 s or more: the full window (on CPU, from 20 s of audio on, to the audio and a tail of
    # silence: passes.trimmed_samples); a preview reads the short one
    assert widths == [trimmed_samples(len(audio[longer.id])) // HOP_SAMPLES, 1000]


@pytest.mark.skipif(
    os.environ.get("ASR_DEVICE", "cpu") != "cpu",
    reason="on a GPU the prompts of one batched call are cut to the shortest (ARCHITECTURE.md)",
)
def test_a_window_decodes_the_same_whatever_shares_its_batch(engine: WhisperEngine) -> None:
    """The previous text steers Whisper's style (here: lower case, no punctuation), so a window
    whose prompt were cut to fit a shorter one's in its batch would decode otherwise than alone;
    a request's text must not depend on what else the server is decoding.

    Whether a clip's text shows the prompt's length depends on the CPU's int8 kernels, so the first
    of a few clips where it shows is taken (and some clip must show it)."""
    previous = (
        "and so it went on all day long the rain kept falling on the roofs of the town and nobody in "
        "the village said a word about it until the evening came and the lamps were lit one by one"
    )
    long_prompt = DecodeOptions(language="en", prompt=previous)
    short_prompt = DecodeOptions(language="en", prompt=" ".join(previous.split()[-2:]))
    candidates = [
        decode_audio(c.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=60).to_float()
        for c in clips("short")[2:8]
    ]
    shown = (
        (k, alone)
        for k, samples in enumerate(candidates[:-1])
        if (alone := engine.transcribe(samples, long_prompt).text)
        != engine.transcribe(samples, short_prompt).text
    )
    found = next(shown, None)
    assert found is not None, "no clip's text showed the prompt's length"
    k, alone = found
    first, second = candidates[k], candidates[k + 1]
    with engine.lane(), engine.lane():  # the batch waits for both
        futures = [engine.submit(first, long_prompt), engine.submit(second, short_prompt)]
        together = [f.result(timeout=600).text for f in futures]
    assert together[0] == alone
    assert together[1] == engine.transcribe(second, short_prompt).text


def test_full_windows_are_decoded_to_their_end_in_sentences(engine: WhisperEngine) -> None:
    """Packed full (29.5 s), each window's text runs to where its speech ends, in sentences (timed
    by their words) that follow each other. (Decoding with timestamps, Whisper stopped a few seconds
    early in about half of such windows, leaving the last sentence for a next window.)"""
    samples = long_file("-ls-")
    opts = ChunkingOptions(**Settings().vad.model_dump())
    chunks = chunk_frames(detect_speech(samples, opts.aggressiveness), len(samples), opts)
    windows = [w for w in pack_windows(chunks, 29.5) if w[-1].end - w[0].start > 25 * 16000][:3]
    assert len(windows) == 3
    futures = [engine.submit(samples[w[0].start : w[-1].end], DecodeOptions(language="en")) for w in windows]
    for window, future in zip(windows, futures, strict=True):
        transcript = future.result(timeout=600)
        speech_end_s = (window[-1].end - window[0].start) / 16000 - Settings().vad.suffix_padding_ms / 1000
        assert transcript.segments[-1].end_s > speech_end_s - 1.5, (transcript.segments[-1], speech_end_s)
        starts = [s.start_s for s in transcript.segments]
        assert len(starts) > 1 and starts == sorted(starts)
        assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(transcript.segments))


def test_a_new_speaker_after_a_pause_is_not_skipped(engine: WhisperEngine) -> None:
    """One window: the end of one recording, a second of silence, then another speaker. Whisper
    may close its text after the first speaker with a timestamp that claims the rest of the window,
    skipping the new speaker's first sentence; where the words end tells, and the rest is decoded."""
    first, second = long_file("-lj"), long_file("-ls-")
    samples = np.concatenate([first[-18 * 16000 :], np.zeros(16000, np.float32), second[: 10 * 16000]])
    prompt = "not only in Italy, but in Germany and France."  # the previous window's text
    transcript = engine.transcribe(samples, DecodeOptions(language="en", prompt=prompt))
    text = normalize(transcript.text)
    assert "gothic and roman" in text, text  # the first speaker's last words
    assert "of a truth i heard him not" in text, text  # the second speaker's first sentence
    assert "sleeping" in text, text


def test_the_server_does_not_load_pyav_until_something_uses_it() -> None:
    """faster-whisper imports PyAV for file decoding the server never does (soundfile decodes)."""
    code = (
        "import sys, app.main, app.engine.whisper\n"
        "print(sorted(m for m in sys.modules if m == 'av' or m.startswith('av.')))\n"
        "import faster_whisper.audio\n"
        "print(faster_whisper.audio.av.AudioFrame.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")
    assert out[0] == "['av']"  # the stand-in only: none of PyAV's modules were loaded
    assert out[1] == "AudioFrame"  # and first use loads the real one


def test_only_the_whisper_decoder_loads_the_model_libraries() -> None:
    """The web stack, the renderers and the fast tests name a ``Segment`` without loading CTranslate2
    or faster-whisper (a second of start-up, and memory); the decoder module loads both."""
    light = [
        "app.main",
        "app.transcription.service",
        "app.transcription.windows",
        "app.transcription.render",
        "app.transcription.events",
        "app.models.registry",
        "tests.support.fakes",
        *(
            f"app.engine.{m}"
            for m in ("contract", "placement", "passes", "first_pass", "alignment", "segmentation", "quality")
        ),
    ]
    heavy = "sorted(m for m in ('ctranslate2', 'faster_whisper') if m in sys.modules)"
    code = f"import sys, {', '.join(light)}\nprint({heavy})\nimport app.engine.whisper\nprint({heavy})\n"
    root = Path(__file__).resolve().parents[2]  # where ``tests`` imports from
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=root
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "['ctranslate2', 'faster_whisper']"  # the check sees them where they load


def test_segments_are_sentences_not_cut_after_titles_or_initials(engine: WhisperEngine) -> None:
    tok = engine._tokenizer("en")

    def cut(text: str) -> list[str]:
        segments = [tok.decode(s) for s in segment_tokens(tok, [*tok.encode(text), tok.eot])]
        assert "".join(segments) == text
        return segments

    text = ' Mr. Hale met John F. Kennedy. "Really?" she asked! It cost 3.5 dollars, etc. and more'
    assert cut(text) == [
        " Mr. Hale met John F. Kennedy.",
        ' "Really?" she asked!',
        " It cost 3.5 dollars, etc. and more",
    ]
    # A long sentence is also cut at a comma (a readable subtitle cue), a short one is not.
    first = (
        " It was printed at Mainz by Peter Schoeffer in the year 1462, and it was a very fine book,"
        " which the printers of that city made with much care"
    )
    long = first + ", with great black letters and red capitals."
    assert len(tok.encode(first.split(", which")[0])) < 32 <= len(tok.encode(first))
    assert cut(long) == [first + ",", " with great black letters and red capitals."]


def test_a_long_unpunctuated_sentence_is_cut_where_the_speaker_paused(engine: WhisperEngine) -> None:
    """Whisper writes some speakers' text without punctuation, so a 30 s window would be one segment
    (one verbose_json entry, one subtitle to cut blindly). The word alignment leaves no gaps: a
    pause shows as a word lasting too long, or failing that a capital where no sentence ended."""
    tok = engine._tokenizer("en")
    sleeping = " replied he of a truth I heard him not and folks are all sleeping"
    but_she = " but she said whom so ever thou seest awake"

    def piece(text: str, lengths: dict[str, float]) -> dict[str, object]:
        words, t = [], 0.0
        for word in text.split(" ")[1:]:
            length = lengths.get(word, 0.45)
            words.append({"word": " " + word, "start": t, "end": t + length, "probability": 0.9})
            t += length
        return {"tokens": tok.encode(text), "start": 0.0, "end": t, "words": words, "stats": (0, 0, 0)}

    def parts(p: dict[str, object]) -> list[tuple[str, float, float]]:
        return [
            (tok.decode(q["tokens"]), round(q["start"], 2), round(q["end"], 2))
            for q in split_at_pauses(tok, p)
        ]

    assert parts(piece(sleeping + but_she, {"sleeping": 2.0})) == [
        (sleeping, 0.0, 7.85),
        (but_she, 7.85, 11.9),
    ]
    capital = " But" + but_she[4:]
    assert parts(piece(sleeping + capital, {})) == [(sleeping, 0.0, 6.3), (capital, 6.3, 10.35)]
    short = piece(sleeping + but_she, {"sleeping": 2.0, "awake": 0.1})
    short["end"] = 9.9
    assert split_at_pauses(tok, short) == [short]
