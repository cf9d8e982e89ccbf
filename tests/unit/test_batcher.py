"""The batching thread: what waits is run together, failures stay with their items."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import pytest

from app.engine.batcher import Batcher


class Recorder:
    """A ``run_batch`` that doubles its items and records the batches it was given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.niceness: list[int] = []
        self.gate = gate

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.batches.append(list(items))
        self.niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return [ValueError(f"bad {i}") if i < 0 else 2 * i for i in items]


def test_what_is_waiting_runs_as_one_batch_up_to_max_size() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    batcher: Batcher[int, int] = Batcher(recorder, max_size=3, wait_s=0.5)
    first = batcher.submit(9)  # holds the thread until the gate opens; the rest queue up
    time.sleep(0.2)
    later = batcher.submit(7, priority=1)  # waits behind every item of priority 0
    futures = [batcher.submit(i) for i in range(5)]
    gate.set()
    assert first.result(timeout=10) == 18
    assert [f.result(timeout=10) for f in futures] == [0, 2, 4, 6, 8]
    assert later.result(timeout=10) == 14
    assert recorder.batches == [[9], [0, 1, 2], [3, 4, 7]]
    batcher.close()


def test_a_batch_waits_for_every_open_lane() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder, wait_s=5.0)
    with batcher.lane(), batcher.lane():
        early = batcher.submit(1)
        time.sleep(0.3)  # the other lane is late, but the batch waits for it
        late = batcher.submit(2)
        assert (early.result(timeout=10), late.result(timeout=10)) == (2, 4)
    assert recorder.batches == [[1, 2]]
    with batcher.lane(), batcher.lane():
        pass  # closed lanes are not waited for
    start = time.monotonic()
    assert batcher.submit(3).result(timeout=10) == 6
    assert time.monotonic() - start < 2.0
    batcher.close()


def test_inference_runs_below_the_event_loop_priority() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder, wait_s=0)
    batcher.submit(1).result(timeout=10)
    batcher.close()
    assert recorder.niceness[0] > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_failure_stays_with_its_item_and_the_thread_lives_on() -> None:
    def explode(items: Sequence[int]) -> list[int | BaseException]:
        if 0 in items:
            raise RuntimeError("the whole batch failed")
        return Recorder()(items)

    batcher: Batcher[int, int] = Batcher(explode, max_size=2, wait_s=0.5)
    bad, good = batcher.submit(-1), batcher.submit(3)
    with pytest.raises(ValueError, match="bad -1"):
        bad.result(timeout=10)
    assert good.result(timeout=10) == 6
    with pytest.raises(RuntimeError, match="whole batch"):
        batcher.submit(0).result(timeout=10)
    assert batcher.submit(4).result(timeout=10) == 8
    batcher.close()


def test_cancelled_items_are_skipped() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    batcher: Batcher[int, int] = Batcher(recorder, max_size=1, wait_s=0)
    first = batcher.submit(1)  # blocks the thread until the gate opens
    dropped = batcher.submit(2)
    assert dropped.cancel()
    gate.set()
    assert first.result(timeout=10) == 2
    assert batcher.submit(3).result(timeout=10) == 6
    batcher.close()
    assert [2] not in recorder.batches


def test_setup_failure_is_raised_by_the_constructor() -> None:
    def broken() -> None:
        raise FileNotFoundError("no model here")

    with pytest.raises(FileNotFoundError, match="no model here"):
        Batcher(Recorder(), setup=broken)


def test_on_idle_runs_once_nothing_has_come_for_idle_s() -> None:
    """The engine hands freed memory back to the OS there: not between queued batches, nor in the
    short gaps between one lane's windows, which would page the memory in again for the next."""
    gate = threading.Event()
    recorder = Recorder(gate)
    idle: list[int] = []
    batcher: Batcher[int, int] = Batcher(
        recorder, on_idle=lambda: idle.append(len(recorder.batches)), max_size=2, wait_s=0.0, idle_s=2.0
    )
    first = batcher.submit(1)  # holds the thread; the next four queue up as two batches
    time.sleep(0.2)
    rest = [batcher.submit(i) for i in range(4)]
    gate.set()
    assert [f.result(timeout=10) for f in [first, *rest]] == [2, 0, 2, 4, 6]
    for i in range(3):  # a lane: each window submitted 0.05 s after the previous one's result
        time.sleep(0.05)
        assert batcher.submit(i).result(timeout=10) == 2 * i
    assert idle == []
    deadline = time.monotonic() + 10
    while not idle and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.batches == [[1], [0, 1], [2, 3], [0], [1], [2]]
    assert idle == [6]
    batcher.close()


def test_with_threads_a_slow_batch_holds_up_no_other() -> None:
    """On CPU each worker takes the next window as soon as its own is done: a window that decodes
    slowly (temperature fallback) must not stall the windows of other requests."""
    gate = threading.Event()

    def run(items: Sequence[int]) -> list[int | BaseException]:
        if items[0] == 0:
            assert gate.wait(10)
        return [2 * i for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_size=1, wait_s=0, threads=2)
    slow = batcher.submit(0)
    fast = [batcher.submit(i) for i in range(1, 5)]
    assert [f.result(timeout=5) for f in fast] == [2, 4, 6, 8]
    assert not slow.done()
    gate.set()
    assert slow.result(timeout=10) == 0
    batcher.close()


def test_close_stops_every_thread() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(), max_size=1, wait_s=0, threads=3, name="closing")
    assert [batcher.submit(i).result(timeout=10) for i in range(6)] == [0, 2, 4, 6, 8, 10]
    assert sum(t.name.startswith("closing") for t in threading.enumerate()) == 3
    start = time.monotonic()
    batcher.close()
    assert time.monotonic() - start < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("closing")]


def test_on_idle_waits_for_every_thread_to_be_idle() -> None:
    """One thread idle while another still decodes is not idle: trimming memory then would page it
    back in for the window in progress."""
    gate = threading.Event()
    idle: list[float] = []
    batcher: Batcher[int, int] = Batcher(
        Recorder(gate),
        on_idle=lambda: idle.append(time.monotonic()),
        max_size=1,
        wait_s=0,
        idle_s=0.2,
        threads=2,
    )
    busy = batcher.submit(1)
    time.sleep(1.0)  # the other thread has waited five times idle_s meanwhile
    assert idle == []
    released = time.monotonic()
    gate.set()
    assert busy.result(timeout=10) == 2
    deadline = time.monotonic() + 10
    while not idle and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(idle) == 1 and idle[0] >= released
    batcher.close()


def test_reserved_thread_takes_live_work_only_while_background_runs() -> None:
    """Two threads, one reserved: jobs' windows (priority 2) run one at a time, a live window starts
    at once beside them instead of waiting for one to finish, and without background work live
    windows run one at a time as on one thread."""
    gates = {i: threading.Event() for i in range(1, 5)}
    started: list[int] = []

    def run(items: Sequence[int]) -> list[int | BaseException]:
        started.append(items[0])
        assert gates[items[0]].wait(10)
        return [2 * i for i in items]

    def wait_started(n: int) -> None:
        deadline = time.monotonic() + 5
        while len(started) < n:
            assert time.monotonic() < deadline, started
            time.sleep(0.01)

    batcher: Batcher[int, int] = Batcher(run, max_size=1, wait_s=0, threads=2, reserve=1)
    jobs = [batcher.submit(1, priority=2), batcher.submit(2, priority=2)]
    wait_started(1)
    time.sleep(0.2)
    assert started == [1]  # the second job window waits: the other thread is kept for live work
    live = batcher.submit(3)
    wait_started(2)
    assert started == [1, 3]  # the live window did not wait for the job's
    gates[3].set()
    assert live.result(timeout=5) == 6
    gates[1].set()
    assert jobs[0].result(timeout=5) == 2
    wait_started(3)
    gates[2].set()
    assert jobs[1].result(timeout=5) == 4
    gates[1].clear()  # (ends below) no background now: a second live window waits for the first
    first, second = batcher.submit(1), batcher.submit(4)
    wait_started(4)
    time.sleep(0.2)
    assert started[3:] == [1]
    gates[1].set()
    gates[4].set()
    assert (first.result(timeout=5), second.result(timeout=5)) == (2, 8)
    batcher.close()
