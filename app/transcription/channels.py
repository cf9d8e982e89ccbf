"""``multichannel=true``: each channel of a call transcribed on its own, the results merged on one
timeline, each channel its own speaker.

Each channel gets its own VAD and ``ChunkFeed``, and runs through the same ``WindowRunner`` and
engine as any upload (the channels' windows share model batches). ``merge`` hands their segments
over in time order (each a ``ChunkResult`` marked with its channel: a stream's delta) once every
other channel has been transcribed past it, so that a word heard on two channels (one talker's
voice leaking into the other's microphone, or a line echo) is kept once: ``Echoes`` drops the
copy on the quieter channel. Speakers are the channels, in channel order (channel 0 is A,
``Guest-1``), as a ``Diarization`` of channel turns, so every renderer labels them as it labels
diarized speakers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

import numpy as np

from app.audio.channels import duck_leaks, split
from app.audio.chunking import Chunk, ChunkingOptions
from app.audio.feed import ChunkFeed, speech_chunks
from app.audio.pcm import SAMPLE_RATE, Audio
from app.diarization.attribution import cut_runs
from app.diarization.turns import Diarization, Turn
from app.engine import Segment, Word
from app.transcription.result import ChunkResult

# A word is an echo when another channel heard the same word at the same time, at least this much
# louder (the loudest 20 ms of each channel over both copies' time).
# Leakage between a call's channels (headset crosstalk, a line's echo after cancellation) arrives
# 15-40 dB down; two people talking over each other on their own lines are within ~10 dB when the
# channels are levelled alike. So a quieter copy 10 dB down is the echo; closer, both are speech.
ECHO_MARGIN_DB = 10.0
# How far apart two channels' copies of one word may be timed (Whisper misplaces a word after a
# pause by up to a second).
_SAME_TIME_S = 1.0
_NEAR_S = 0.25  # how near another word must be to count as heard at the same time
_MIN_SPAN_S = 0.08  # a zero-length word is measured over this much audio
_FRAME = SAMPLE_RATE // 50  # 20 ms: a syllable's loudness


def split_channels(audio: Audio, opts: ChunkingOptions) -> tuple[tuple[Audio, list[Chunk]], ...]:
    """Each channel, its leaks turned down, and its speech chunks (VAD per channel; on a worker thread)."""
    duck_leaks(audio)
    return tuple((channel, speech_chunks(channel, opts)) for channel in split(audio))


def channel_feeds(channels: Sequence[tuple[Audio, list[Chunk]]]) -> tuple[ChunkFeed, ...]:
    return tuple(ChunkFeed.complete(audio, chunks) for audio, chunks in channels)


def lead(feeds: Sequence[ChunkFeed]) -> ChunkFeed:
    """The channel whose speech starts first (the language is detected on its first window)."""
    return min(feeds, key=lambda f: f.chunks[0].start if f.chunks else float("inf"))


def channel_names(channels: int, known_speaker_names: Sequence[str] = ()) -> tuple[str | None, ...]:
    """Each channel's speaker's name (``Diarization.names``): ``known_speaker_names`` in channel
    order (the channel says who spoke: no voice matching); channels past them keep their letters."""
    return tuple(known_speaker_names[:channels])


def channel_turns(results: Sequence[ChunkResult], known_speaker_names: Sequence[str] = ()) -> Diarization:
    """The channels as speaker turns (each chunk with words is its channel's turn), named."""
    turns = tuple(
        Turn(round(r.chunk.speech_start_s, 3), round(r.chunk.end / SAMPLE_RATE, 3), r.channel or 0)
        for r in results
        if r.words
    )
    channels = 1 + max((t.speaker for t in turns), default=0)
    return Diarization(turns, names=channel_names(channels, known_speaker_names))


class Echoes:
    """Which words are echoes: heard on another channel at the same time, and louder there.

    Loudness is measured over the words' own time (not over their chunks: a chunk can hold both
    talkers' turns), the same stretch of sound on both channels.
    """

    def __init__(self, audio: Sequence[Audio]) -> None:
        self._audio = audio
        self._echo: dict[tuple[int, Word], bool] = {}

    def level_db(self, channel: int, start_s: float, end_s: float) -> float:
        """The loudest 20 ms of a channel over [start_s, end_s], in dB (of 16-bit units).

        The peak, not the mean: Whisper stretches a word after a pause back over the silence (or
        the other talker's last words), and a word's loudest moment is the word itself.
        """
        pcm = self._audio[channel].pcm
        a = max(int(start_s * SAMPLE_RATE), 0)
        b = max(int(max(end_s, start_s + _MIN_SPAN_S) * SAMPLE_RATE), a + _FRAME)
        x = pcm[a:b].astype(np.float64)
        if not len(x):
            return 0.0
        frames = np.pad(x, (0, -len(x) % _FRAME)).reshape(-1, _FRAME)
        return 10 * float(np.log10(np.max(np.mean(frames * frames, axis=1)) + 1.0))

    def is_echo(self, channel: int, w: Word, heard: Sequence[Sequence[ChunkResult]]) -> bool:
        """Whether ``w`` on ``channel`` is an echo, given what each channel has ``heard`` so far.

        A copy of the same word on another channel (within a second: Whisper can misplace a word
        after a pause that far) decides it: the copy on the channel that is louder over both copies'
        time stays. Without one (the echo misheard as another word), any word on a channel that is
        louder over this word's own time, overlapping it, makes it an echo.
        """
        key = (channel, w)
        if key not in self._echo:
            others = [(o, results) for o, results in enumerate(heard) if o != channel]
            copies = [(o, span) for o, results in others for span in _same_word(results, w)]
            if not copies:
                copies = [(o, (w.start_s, w.end_s)) for o, results in others if _word_near(results, w)]
            self._echo[key] = any(
                self.level_db(o, *span) - self.level_db(channel, *span) >= ECHO_MARGIN_DB
                for o, span in copies
            )
        return self._echo[key]

    def settle(self, r: ChunkResult, channel: int, heard: Sequence[Sequence[ChunkResult]]) -> ChunkResult:
        """``r`` (heard on ``channel``) without its echoes."""
        segments = tuple(
            piece
            for s in r.segments
            for piece in keep_words(s, [not self.is_echo(channel, w, heard) for w in s.words])
        )
        words = tuple(w for w in r.words if not self.is_echo(channel, w, heard))
        return dataclasses.replace(r, segments=segments, words=words)


def _same_word(results: Sequence[ChunkResult], w: Word) -> list[tuple[float, float]]:
    """The time both copies span, for each word of a channel's results that is ``w`` (the same
    text, near in time): Whisper times one word differently on two channels, by up to a second."""
    text, found = _plain(w.word), []
    # Chunks are in order and apart, and the merge asks about words near the end of what was heard
    # (a word lies at most a little outside its chunk).
    for r in reversed(results):
        if r.chunk.end / SAMPLE_RATE < w.start_s - _SAME_TIME_S - 1.0:
            break
        found += [
            (min(w.start_s, x.start_s), max(w.end_s, x.end_s))
            for x in r.words
            if x.start_s < w.end_s + _SAME_TIME_S
            and x.end_s > w.start_s - _SAME_TIME_S
            and _plain(x.word) == text
        ]
    return found


def _word_near(results: Sequence[ChunkResult], w: Word) -> bool:
    """Whether a channel's results hold a word overlapping ``w`` (give or take 0.25 s)."""
    for r in reversed(results):
        if r.chunk.end / SAMPLE_RATE < w.start_s - _NEAR_S - 1.0:
            break
        if any(x.start_s < w.end_s + _NEAR_S and x.end_s > w.start_s - _NEAR_S for x in r.words):
            return True
    return False


def _plain(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def keep_words(segment: Segment, keep: list[bool]) -> list[Segment]:
    """The segment cut to the runs of words to keep (``cut_runs``); itself when every word stays."""
    if all(keep):
        return [segment]
    return [piece for piece, kept in cut_runs(segment, keep) if kept]


async def merge(
    runs: Sequence[AsyncIterator[ChunkResult]], audio: Sequence[Audio]
) -> AsyncIterator[ChunkResult]:
    """The channels' segments (from ``runs``, in channel order) in time order, each a result of
    its own without its echoes.

    Each run is drained by its own task, so every channel decodes at once (and a run that waits
    for a decoding slot never holds up one that has it); a run's failure is raised here.
    """
    queues: list[asyncio.Queue[ChunkResult | BaseException | None]] = [asyncio.Queue() for _ in runs]

    async def drain(
        run: AsyncIterator[ChunkResult], queue: asyncio.Queue[ChunkResult | BaseException | None]
    ) -> None:
        try:
            async for result in run:
                queue.put_nowait(result)
        except Exception as exc:  # raised to the merge, which is waiting for this channel
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(drain(run, queue)) for run, queue in zip(runs, queues, strict=True)]
    heard: list[list[ChunkResult]] = [[] for _ in runs]
    ended = [False for _ in runs]
    given = [0 for _ in runs]  # results handed over, per channel
    echoes = Echoes(audio)

    async def pull(channel: int) -> None:
        item = await queues[channel].get()
        if isinstance(item, BaseException):
            raise item
        if item is None:
            ended[channel] = True
        else:
            heard[channel] += pieces(item)

    try:
        index = 0
        while True:
            for c in range(len(runs)):
                while given[c] == len(heard[c]) and not ended[c]:
                    await pull(c)
            waiting = [c for c in range(len(runs)) if given[c] < len(heard[c])]
            if not waiting:
                return
            channel = min(waiting, key=lambda c: (heard[c][given[c]].chunk.start, c))
            r = heard[channel][given[channel]]
            if r.channel is None:  # not settled: without its echoes it may start later, so it waits again
                # Every other channel transcribed past this segment's words.
                reach = max([r.chunk.end / SAMPLE_RATE, *(w.end_s for w in r.words)])
                for other in range(len(runs)):
                    while other != channel and not ended[other] and _before(heard[other], reach):
                        await pull(other)
                settled = pieces(echoes.settle(r, channel, heard))
                heard[channel][given[channel] : given[channel] + 1] = [
                    dataclasses.replace(p, channel=channel) for p in settled
                ]
                continue
            given[channel] += 1
            yield dataclasses.replace(r, index=index)
            index += 1
    finally:
        for task in tasks:
            task.cancel()  # each run's own cleanup lets go of its decoding slot
        await asyncio.gather(*tasks, return_exceptions=True)


def pieces(r: ChunkResult) -> list[ChunkResult]:
    """A channel's chunk result as one (unsettled) result per segment, timed by it: a channel's
    chunk can span the other channel's turns (its VAD hears their voice leaking in), and the
    merged timeline interleaves the channels' segments, not their chunks."""
    return [
        ChunkResult(
            r.index,
            Chunk(round(s.start_s * SAMPLE_RATE), round(s.end_s * SAMPLE_RATE)),
            (s,),
            s.words,
            r.language,
        )
        for s in r.segments
    ]


def _before(results: Sequence[ChunkResult], reach_s: float) -> bool:
    """Whether a channel's results so far could still be followed by a word before ``reach_s``."""
    return not results or results[-1].chunk.start_s <= reach_s + _SAME_TIME_S + 1.0
