"""Diarization in-process (no transcription): features, quality against references scored with
pyannote.metrics (collar 0.25), bounded clustering, and attributing speakers to words/segments."""

from __future__ import annotations

import random

import numpy as np
import pytest

from app.diarization import Diarization, SpeakerHints, Turn, clustering, diarize
from app.diarization.attribution import split_segment
from app.diarization.diarizer import speech_regions
from app.diarization.embedder import log_mel
from app.diarization.recount import split_merged_voices
from app.engine import Segment, TokenLogprob, Word
from app.transcription.render import air_label, openai_label
from tests.support.diarization_sets import (
    CONVERSATIONS,
    RATE,
    Recording,
    conversation,
    labelled,
    load,
    short_clip_readers,
    total_der,
    trimmed,
)
from tests.support.evalset import clips


def hypothesis(d: Diarization) -> list[tuple[float, float, int]]:
    return [(t.start_s, t.end_s, t.speaker) for t in d.turns]


def one_speaker(rec: Recording) -> list[tuple[float, float, int]]:
    """The baseline: all the speech the diarizer hears, given to one speaker."""
    return [(s / 16000, e / 16000, 0) for s, e in speech_regions(rec.samples)]


def test_features_match_the_packages_librosa_recipe() -> None:
    """The package's ``librosa.feature.melspectrogram(n_fft=512, win_length=400, hop_length=160,
    n_mels=40, window="hamming", center=False, power=2.0)``, built from librosa's own mel filters and
    window and scipy's STFT: importing ``librosa.feature`` compiles numba kernels (over 30 s on a
    fresh CI machine), ``librosa.filters`` does not."""
    from librosa.filters import get_window, mel
    from scipy.signal import stft

    samples = load(clips("short")[0].path)[: 16000 * 4]
    window = get_window("hamming", 400, fftbins=True)
    padded = np.pad(window, ((512 - 400) // 2, (512 - 400) - (512 - 400) // 2))  # librosa's pad_center
    _, _, spectrum = stft(
        samples, window=padded, nperseg=512, noverlap=512 - 160, boundary=None, padded=False,
        detrend=False, scaling="spectrum",
    )  # fmt: skip
    power = np.abs(spectrum * padded.sum()) ** 2  # scipy scales by the window's sum
    expected = np.log10(mel(sr=16000, n_fft=512, n_mels=40) @ power + 1e-10).T
    assert log_mel(samples).shape == expected.shape == (1 + (len(samples) - 512) // 160, 40)
    np.testing.assert_allclose(log_mel(samples), expected, atol=1e-3)


@pytest.mark.parametrize("long_readers", [False, True], ids=["short-clip-readers", "long-file-readers"])
def test_joined_conversations_der_and_speaker_count(long_readers: bool) -> None:
    """The issue's bar, on conversations of the short clips' readers and on ones where the long
    files' readers (voices the count rules were not tuned on) take part."""
    plan = CONVERSATIONS if not long_readers else [(seed, n) for n in (2, 3, 4) for seed in range(4)]
    recordings = [conversation(seed, n, long_readers=long_readers) for seed, n in plan]
    results = [diarize(r.samples, SpeakerHints()) for r in recordings]
    right = sum(d.num_speakers == r.speakers for d, r in zip(results, recordings, strict=True))
    der = total_der((r, hypothesis(d)) for r, d in zip(recordings, results, strict=True))
    assert right >= 0.9 * len(recordings), [d.num_speakers for d in results]
    assert der <= 0.05, der


def test_two_party_conversation() -> None:
    (rec,) = labelled(["pyannote-sample"])
    free = total_der([(rec, hypothesis(diarize(rec.samples, SpeakerHints())))])
    told = total_der([(rec, hypothesis(diarize(rec.samples, SpeakerHints(num_speakers=2))))])
    baseline = total_der([(rec, one_speaker(rec))])
    # The 15% without a hint holds (9.8% on the development VM; the bound leaves room for
    # other CPUs' int8 kernels, which moved it 12.3-14.0% with the batch's make-up alone before head
    # units). Told the count: 9.8% here (8.5-10.3% at 0.8-1.25x gain; 12.9% before head units found
    # the second caller's "Hello?"); 4 points are overlapped speech (no overlap detection) and
    # "Neither did I" scores as the other voice at every window tried.
    assert free <= 0.16 and told <= 0.11 and max(free, told) < baseline / 2, (free, told, baseline)
    # The count holds when the level moves (it was 7 speakers at 0.95x: silhouettes of 2 and 7 tied).
    # Three of four levels, as onnxruntime's int8 kernels differ between CPUs: on an AMD EPYC VM
    # (AVX-512 VNNI), when the fewest of the counts tied on silhouette won, 0.9x split the call in
    # three (0.222 against 0.198 for two) where the VM it was tuned on found two; the eigengap now
    # breaks such ties, and the EPYC VM finds two at every level.
    counts = [diarize(rec.samples * g, SpeakerHints()).num_speakers for g in (0.8, 0.9, 1.12, 1.25)]
    assert counts.count(2) >= 3, counts


def _short_turn(seed: int, opens: bool) -> tuple[Recording, tuple[float, float]]:
    """A speaks; B says 0.6 s that opens a stretch of speech after a pause, A going straight on
    (``opens``: the start of one of B's clips), or that closes one before a pause, straight after A
    (the end of one); then B speaks at length. The recording and where the short turn is."""
    rng = random.Random(seed)
    readers = short_clip_readers()
    a, b = rng.sample(sorted(readers), 2)
    noise = np.random.default_rng(seed)

    def speech(who: str) -> np.ndarray:
        return trimmed(load(rng.choice(readers[who])))[0]

    def pause(s: float) -> np.ndarray:
        return noise.normal(0, 3e-4, int(s * RATE)).astype(np.float32)

    first, reply, then, last = speech(a), speech(b), speech(a), speech(b)
    short = reply[: int(0.6 * RATE)] if opens else reply[-int(0.6 * RATE) :]
    middle = [pause(0.7), short, then] if opens else [short, pause(0.7), then]
    samples = np.concatenate([pause(0.5), first, *middle, pause(0.7), last, pause(0.5)])
    start = 0.5 + len(first) / RATE + (0.7 if opens else 0.0)
    return Recording(f"short-{seed}", samples, [], 2), (start, start + 0.6)


@pytest.mark.parametrize(("opens", "wanted"), [(True, 7), (False, 5)])
def test_a_short_turn_next_to_a_pause_is_heard(opens: bool, wanted: int) -> None:
    """A 0.6 s turn at one end of a stretch of speech, the other voice on its other side: no
    coarse step hears it (a stretch's first step speaks for 0.6 s into it, the last one for up to
    0.8 s before its end); the edge units do. Of these 8, 3 opening and 1 closing turns were found
    without them; with them 8 and 6 (the others found, but their change placed 0.3-0.5 s late)."""
    found = 0
    for seed in range(8):
        rec, (start, end) = _short_turn(seed, opens)
        d = diarize(rec.samples, SpeakerHints(num_speakers=2))
        found += d.speaker_at(start + 0.1, end - 0.1) == d.turns[-1].speaker
    assert found >= wanted, found


def test_meetings_no_worse_than_one_speaker_on_speech() -> None:
    recordings = [r for r in labelled() if r.id.startswith("pyannote-debug")]
    der = total_der((r, hypothesis(diarize(r.samples, SpeakerHints()))) for r in recordings)
    baseline = total_der((r, one_speaker(r)) for r in recordings)
    assert der <= baseline + 1e-9, (der, baseline)


def test_one_reader_is_one_speaker() -> None:
    long = next(c for c in clips("long") if c.id.startswith("long-ls"))
    # Its first minute: one voice split in two scores higher on a shorter file (clustering.py).
    assert diarize(load(long.path)[: 60 * 16000], SpeakerHints()).num_speakers == 1


def test_silence_has_no_turns_and_hints_bound_the_count() -> None:
    assert diarize(np.zeros(16000 * 3, np.float32), SpeakerHints()).turns == ()
    rec = conversation(0, 3, turns=6)
    assert diarize(rec.samples, SpeakerHints(max_speakers=2)).num_speakers <= 2
    assert diarize(rec.samples, SpeakerHints(min_speakers=3, max_speakers=3)).num_speakers == 3


def test_long_files_cluster_a_bounded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many windows a file has, clustering sees at most MAX_CLUSTERED of them; every
    window still gets a speaker (its nearest centroid)."""
    seen: list[int] = []
    real = clustering.spectral_labels

    def spy(emb: np.ndarray, low: int, high: int) -> np.ndarray:
        seen.append(len(emb))
        return real(emb, low, high)

    monkeypatch.setattr(clustering, "spectral_labels", spy)
    rng = np.random.default_rng(0)
    voices = clustering.normalise(rng.normal(size=(2, 256)).astype(np.float32))
    emb = clustering.normalise(
        (voices[np.arange(20000) % 2] + 0.03 * rng.normal(size=(20000, 256))).astype(np.float32)
    )
    cents = clustering.cluster(emb, SpeakerHints())
    assert seen == [clustering.MAX_CLUSTERED]
    assert len(cents) == 2
    nearest = (emb @ cents.T).argmax(axis=1)
    assert (nearest[::2] != nearest[1::2]).all()


def test_hint_bounds() -> None:
    assert SpeakerHints(num_speakers=3).bounds(100) == (3, 3)
    assert SpeakerHints(min_speakers=2, max_speakers=5).bounds(100) == (2, 5)
    assert SpeakerHints(min_speakers=4, max_speakers=8).bounds(2) == (2, 2)


def _word(start: float, end: float, text: str) -> Word:
    return Word(start, end, text, 0.9)


def test_segment_cut_where_the_speaker_changes() -> None:
    words = (
        _word(0.0, 0.4, " Hi"), _word(0.5, 0.9, " there."), _word(1.0, 1.3, " Oh"),
        _word(2.1, 2.5, " Hello"), _word(2.6, 3.0, " you."),
    )  # fmt: skip
    logprobs = tuple(TokenLogprob(w.word, -0.1) for w in words)
    segment = Segment(
        0.0, 3.0, "".join(w.word for w in words), (1, 2, 3, 4, 5), -0.1, 1.2, 0.0, 0.0, words, logprobs
    )
    turns = Diarization((Turn(0.0, 1.5, 0), Turn(2.0, 3.2, 1)))
    pieces = split_segment(segment, turns)
    assert [(p.text, who) for p, who in pieces] == [(" Hi there. Oh", 0), (" Hello you.", 1)]
    assert [p.tokens for p, _ in pieces] == [(1, 2, 3), (4, 5)]
    assert [(p.start_s, p.end_s) for p, _ in pieces] == [(0.0, 1.3), (2.1, 3.0)]
    assert sum(len(p.logprobs) for p, _ in pieces) == len(logprobs)
    # One speaker throughout: the segment comes back whole.
    assert split_segment(segment, Diarization((Turn(0.0, 3.0, 1),))) == [(segment, 1)]


def test_a_lone_word_does_not_make_a_turn() -> None:
    words = (_word(0.0, 0.4, " a"), _word(0.5, 0.8, " b"), _word(0.9, 1.3, " c"))
    segment = Segment(0.0, 1.3, " a b c", (), -0.1, 1.0, 0.0, 0.0, words)
    turns = Diarization((Turn(0.0, 0.45, 0), Turn(0.45, 0.85, 1), Turn(0.85, 1.3, 0)))
    assert split_segment(segment, turns) == [(segment, 0)]


def test_labels() -> None:
    assert [openai_label(i) for i in (0, 1, 25, 26)] == ["A", "B", "Z", "AA"]
    assert [air_label(i) for i in (0, 2, 3, None)] == ["Guest-1", "Guest-3", "Unknown", "Unknown"]


def _steps(voices: np.ndarray, who: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of segments of 5 steps, segment i spoken by ``voices[who[i]]`` (each unit as
    noisy as a real 0.8 s unit: ~0.5 alike its voice), and each step's block (one per segment)."""
    rng = np.random.default_rng(seed)
    steps = np.repeat(voices[who], 5, axis=0)
    noise = rng.normal(size=steps.shape) / np.sqrt(steps.shape[1])
    return clustering.normalise((steps + noise).astype(np.float32)), np.repeat(np.arange(len(who)), 5)


def test_a_speaker_whose_segments_are_two_voices_is_split() -> None:
    """Two voices 0.45 alike merged in one cluster part on whole segments; one voice's segments do
    not; a segment of another speaker's voice moves to that speaker; the count's bound holds."""
    rng = np.random.default_rng(0)
    a, c, other = clustering.normalise(rng.normal(size=(3, 256)).astype(np.float32))
    b = clustering.normalise(0.45 * a + np.sqrt(1 - 0.45**2) * other)  # 0.45 alike a
    voices = np.stack([a, b, c]).astype(np.float32)
    who = [0, 2, 1, 2, 0, 2, 1, 0, 2, 1]  # a and b share label 0, c is label 1
    units, block_of = _steps(voices, who, 1)
    labels = np.repeat([0 if w < 2 else 1 for w in who], 5)
    split = split_merged_voices(units, labels, block_of, max_speakers=4)
    of_voice = [{int(split[block_of == i][0]) for i, w in enumerate(who) if w == v} for v in (0, 1, 2)]
    assert all(len(labels_of) == 1 for labels_of in of_voice), split  # each voice one speaker
    assert len(set.union(*of_voice)) == 3, split  # and three speakers
    assert (split_merged_voices(units, labels, block_of, max_speakers=2) == labels).all()
    # One voice per label: nothing moves.
    one = [0, 2, 0, 2, 0, 2, 0, 2]
    units, block_of = _steps(voices, one, 2)
    labels = np.repeat([0 if w == 0 else 1 for w in one], 5)
    assert (split_merged_voices(units, labels, block_of, max_speakers=4) == labels).all()
    # A segment of c's voice given to a's speaker goes to c's, not to a new speaker.
    wrong = labels.copy()
    wrong[block_of == 1] = 0
    assert (split_merged_voices(units, wrong, block_of, max_speakers=4) == labels).all()
    # In a long file, a half must hold 1% of the steps: a 2-step segment of another voice among
    # 150 segments of one voice stays (an hour's stray segments would otherwise each be a speaker).
    units, block_of = _steps(voices, [0] * 150 + [2], 3)
    units, block_of = units[:-3], block_of[:-3]  # the last segment (c's) is 2 steps long
    labels = np.zeros(len(units), np.int64)
    assert (split_merged_voices(units, labels, block_of, max_speakers=4) == labels).all()
    assert len(np.unique(split_merged_voices(units[-100:], labels[-100:], block_of[-100:], 4))) == 2


def test_groups_of_one_voice_merge_and_other_voices_stay_apart() -> None:
    """One voice clustered into three groups folds into one speaker, the other voice staying apart;
    three voices each their own speaker stay three; a count told is reached by merging, and never
    below what ``least`` allows."""
    rng = np.random.default_rng(4)
    voices = clustering.normalise(rng.normal(size=(3, 256)).astype(np.float32))
    who = [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 2, 2]
    units, _ = _steps(voices, who, 5)
    centred = clustering.normalise(units - units.mean(axis=0))
    groups = iter([0, 1, 2] * 3)  # voice 0's segments given to three groups in turn
    parted = np.repeat([next(groups) if w == 0 else 3 for w in who], 5)
    voice = np.repeat(who, 5)
    merged = clustering.merge_one_voice_pairs(centred[:50], parted[:50], 1, 8)
    assert len(np.unique(merged[voice[:50] == 0])) == 1 and len(np.unique(merged)) == 2, merged
    three = clustering.merge_one_voice_pairs(centred, voice, 1, 8)
    assert (three == voice).all()
    assert len(np.unique(clustering.merge_one_voice_pairs(centred, voice, 2, 2))) == 2
    assert len(np.unique(clustering.merge_one_voice_pairs(centred[:50], parted[:50], 4, 8))) == 4
