"""Chunking policy on exact frame flags, and webrtcvad on generated audio."""

from __future__ import annotations

import itertools
import random

import numpy as np

from app.audio.chunking import Chunk, Chunker, ChunkingOptions, chunk_frames
from app.audio.vad import FRAME_MS, FRAME_SAMPLES, SpeechDetector, detect_speech, is_tonal
from tests.support.audiogen import speechlike, tone, white_noise


def opts(**kw: float) -> ChunkingOptions:
    base = dict(
        prefix_padding_ms=0,
        silence_duration_ms=300,
        aggressiveness=2,
        suffix_padding_ms=0,
        min_speech_ms=0,
        max_chunk_s=28.0,
    )
    base.update(kw)
    return ChunkingOptions(**base)  # type: ignore[arg-type]


def flags(pattern: str) -> list[bool]:
    """'.' = silence frame, '#' = speech frame."""
    return [c == "#" for c in pattern]


def frames_of(chunks: list[Chunk]) -> list[tuple[int, int]]:
    return [(c.start // FRAME_SAMPLES, c.end // FRAME_SAMPLES) for c in chunks]


def test_silence_shorter_than_silence_duration_keeps_one_chunk() -> None:
    f = flags("..####..####....")  # a 2-frame (60 ms) pause
    assert frames_of(chunk_frames(f, len(f) * FRAME_SAMPLES, opts(silence_duration_ms=90))) == [(2, 12)]


def test_silence_at_least_silence_duration_splits() -> None:
    f = flags("..####...####....")  # a 3-frame (90 ms) pause
    got = frames_of(chunk_frames(f, len(f) * FRAME_SAMPLES, opts(silence_duration_ms=90)))
    assert got == [(2, 6), (9, 13)]


def test_prefix_padding_moves_start_back_but_not_into_previous_chunk() -> None:
    f = flags("......####......####..")
    got = frames_of(
        chunk_frames(f, len(f) * FRAME_SAMPLES, opts(prefix_padding_ms=4 * FRAME_MS, silence_duration_ms=90))
    )
    assert got == [(2, 10), (12, 20)]
    got = frames_of(
        chunk_frames(f, len(f) * FRAME_SAMPLES, opts(prefix_padding_ms=10 * FRAME_MS, silence_duration_ms=90))
    )
    assert got[0] == (0, 10)
    assert got[1][0] >= got[0][1]


def test_suffix_padding_keeps_trailing_audio() -> None:
    f = flags("..####..........")
    got = frames_of(chunk_frames(f, len(f) * FRAME_SAMPLES, opts(suffix_padding_ms=3 * FRAME_MS)))
    assert got == [(2, 9)]


def test_short_blips_are_dropped() -> None:
    f = flags("..#..........######.......")
    got = frames_of(chunk_frames(f, len(f) * FRAME_SAMPLES, opts(min_speech_ms=4 * FRAME_MS)))
    assert got == [(13, 19)]


def test_long_chunks_split_at_the_longest_pause_and_respect_the_maximum() -> None:
    # 60 frames of speech with a 2-frame pause at 40..41 and a 1-frame pause at 20.
    f = [True] * 60
    f[20] = False
    f[40] = f[41] = False
    max_frames = 50
    chunks = chunk_frames(f, 60 * FRAME_SAMPLES, opts(max_chunk_s=max_frames * FRAME_MS / 1000))
    got = frames_of(chunks)
    assert got == [(0, 41), (41, 60)]
    assert all(c.duration_s <= max_frames * FRAME_MS / 1000 for c in chunks)


def test_unbroken_speech_is_hard_cut_at_the_maximum() -> None:
    f = [True] * 100
    got = frames_of(chunk_frames(f, 100 * FRAME_SAMPLES, opts(max_chunk_s=40 * FRAME_MS / 1000)))
    assert got == [(0, 40), (40, 80), (80, 100)]


def test_chunks_are_ordered_disjoint_and_inside_the_audio() -> None:
    rng = np.random.default_rng(7)
    f = list(rng.random(2000) < 0.4)
    total = 2000 * FRAME_SAMPLES - 100  # last frame is partial
    chunks = chunk_frames(f, total, opts(prefix_padding_ms=200, suffix_padding_ms=200, max_chunk_s=3.0))
    assert chunks
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start
    assert all(0 <= c.start < c.end <= total for c in chunks)
    assert all(c.duration_s <= 3.0 + 1e-9 for c in chunks)


def test_webrtcvad_finds_speechlike_audio_and_not_digital_silence() -> None:
    audio = np.concatenate([np.zeros(16000, np.float32), speechlike(2.0), np.zeros(16000, np.float32)])
    f = detect_speech(audio, 2)
    assert not any(f[:30])
    assert sum(f[35:95]) > 30


def test_tones_are_tonal_and_speech_and_noise_are_not() -> None:
    assert is_tonal(tone(1.0, 440)) and is_tonal(tone(2.0, 1000, 0.5))
    assert not is_tonal(speechlike(2.0))
    assert not is_tonal(white_noise(1.0))
    assert not is_tonal(np.zeros(16000, np.float32))


def test_faint_sound_far_below_the_recording_is_not_speech() -> None:
    loud = speechlike(2.0)
    faint = speechlike(2.0, seed=2) * 10 ** (-45 / 20)  # the same kind of sound, 45 dB down (< -50 dBFS)
    f = detect_speech(np.concatenate([loud, faint, loud]), aggressiveness=2)
    per_second = 1000 // FRAME_MS
    assert sum(f[: 2 * per_second]) > per_second  # the loud parts are speech
    assert not any(f[2 * per_second + 1 : 4 * per_second - 1])  # the faint middle is not


def test_a_quietly_recorded_file_still_has_speech() -> None:
    loud = speechlike(3.0)
    quiet = loud * 10 ** (-30 / 20)  # about -49 dBFS on average: most syllable troughs below -50
    assert sum(detect_speech(quiet, aggressiveness=2)) >= 0.6 * sum(detect_speech(loud, aggressiveness=2))


def test_chunks_know_where_their_speech_starts() -> None:
    f = flags("......####......####")
    chunks = chunk_frames(f, len(f) * FRAME_SAMPLES, opts(prefix_padding_ms=90, silence_duration_ms=90))
    assert [(c.start // FRAME_SAMPLES, c.speech_start_s * 1000 // FRAME_MS) for c in chunks] == [
        (3, 6),
        (13, 16),
    ]


def random_flags(rng: random.Random, n: int) -> list[bool]:
    """Runs of speech and silence of random lengths (a two-state Markov chain)."""
    out, speech = [], rng.random() < 0.5
    p_on, p_off = rng.uniform(0.01, 0.3), rng.uniform(0.01, 0.3)
    for _ in range(n):
        if rng.random() < (p_off if speech else p_on):
            speech = not speech
        out.append(speech)
    return out


def test_flags_fed_block_by_block_give_the_chunks_of_all_the_flags_at_once() -> None:
    rng = random.Random(7)
    for _ in range(150):
        f = random_flags(rng, rng.randint(0, 1500))
        o = opts(
            prefix_padding_ms=rng.choice([0, 300, 1000]),
            silence_duration_ms=rng.choice([0, 90, 500, 2000]),
            suffix_padding_ms=rng.choice([0, 300, 3000]),
            min_speech_ms=rng.choice([0, 250, 3000]),
            max_chunk_s=rng.choice([1.2, 3.0, 28.0]),
        )
        total = max(len(f) * FRAME_SAMPLES - rng.randint(0, FRAME_SAMPLES - 1), 0)
        chunker, got, i = Chunker(o), [], 0
        while i < len(f):
            step = rng.randint(1, 200)
            got += chunker.feed(f[i : i + step])
            i += step
        assert got + chunker.finish(total) == chunk_frames(f, total, o)


def test_a_chunk_is_handed_out_once_its_silence_has_passed() -> None:
    chunker = Chunker(opts(silence_duration_ms=90, suffix_padding_ms=60))
    assert chunker.feed(flags("..####..")) == []  # the pause may still be too short
    assert frames_of(chunker.feed(flags(".."))) == [(2, 8)]  # three silent frames, and the suffix seen
    # continuous speech is cut at max_chunk_s without waiting for its end
    chunker = Chunker(opts(max_chunk_s=40 * FRAME_MS / 1000))
    assert len(chunker.feed(flags("#" * 100))) == 2


def test_speech_found_block_by_block_is_speech_found_at_once_within_a_minute() -> None:
    audio = np.concatenate([speechlike(3.0), np.zeros(16000, np.float32), speechlike(2.0, seed=2)])
    pcm = (audio * 32767).astype(np.int16)
    detector, got = SpeechDetector(2), []
    for start in range(0, len(pcm), 4321):
        got += detector.feed(pcm[start : start + 4321])
    assert got + detector.finish() == detect_speech(pcm, 2)
