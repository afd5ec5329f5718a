"""Shared-memory SPSC rings: geometry, full/empty as return values, wrap-around, attach errors,
cross-process streams checked record by record, producer death, and no segment left behind."""

import multiprocessing as mp
import os
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from multiprocessing import shared_memory

import numba
import numpy as np
import pytest
import ring_children
from hypothesis import given, settings
from hypothesis import strategies as st
from soak import SOAK

from basis_core import schema
from basis_core.errors import ProducerDead, RingError
from basis_core.rings import (
    CONSUMER,
    ENDED,
    PRODUCER,
    BackoffSleep,
    BusySpin,
    Ring,
    Yield,
    kernels,
    leftovers,
    seqcheck,
    unlink,
)
from basis_core.rings.layout import HEAD, HEADER_BYTES, OWN, TAIL

TEST_PREFIX = f"basis-t{os.getpid()}-"
SPAWN = mp.get_context("spawn")


@pytest.fixture(scope="module", autouse=True)
def no_segment_left_behind():
    yield
    left = leftovers(TEST_PREFIX)
    for name in left:
        unlink(name)
    assert left == [], f"ring segments left in /dev/shm: {left}"


def fresh_name() -> str:
    return f"t{os.getpid()}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pair():
    """A producer end (creator) and a consumer end of an 8-slot ring in this process."""
    name = fresh_name()
    prod = Ring.create(name, 8, PRODUCER)
    cons = Ring.attach(name, CONSUMER)
    yield prod, cons
    cons.close()
    prod.close()


def records(first: int, n: int) -> np.ndarray:
    words = np.zeros((n, 8), np.uint64)
    seqcheck.fill(words, first)
    return words


def assert_stream(words: np.ndarray, first: int) -> None:
    bad, why = seqcheck.verify(words, first)
    assert bad == -1, f"record {first + bad}: {'wrong seq' if why == 1 else 'torn'}"


@contextmanager
def spawned(target, *args):
    """A spawned process running `target(*args)`, killed (if still running) and joined on leaving."""
    child = SPAWN.Process(target=target, args=args)
    child.start()
    try:
        yield child
    finally:
        child.kill()
        child.join()


def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- layout and ordering ------------------------------------------------------------------


def test_head_tail_and_slots_sit_on_separate_cache_lines(pair):
    prod, _ = pair
    base = prod.header.ctypes.data
    assert base % 128 == 0
    assert (HEAD * 8) // 128 != (TAIL * 8) // 128
    assert prod.slots.ctypes.data - base == HEADER_BYTES and HEADER_BYTES % 128 == 0
    assert prod.slots.shape == (8, 8) and prod.slots.dtype == np.uint64


def test_cursors_are_published_with_release_stores_and_read_with_acquire_loads():
    a1 = numba.types.int64[::1]
    a2 = numba.types.uint64[:, ::1]

    def ir(fn, *args):  # compiled afresh: a dispatcher loaded from the on-disk cache has no IR
        fresh = numba.njit(fn.py_func)
        fresh.compile(args)
        return "\n".join(fresh.inspect_llvm().values())

    i64 = numba.types.int64
    publish, release = ir(kernels.write_publish, a1, a1, i64), ir(kernels.read_release, a1, a1, i64)
    claim, wclaim = ir(kernels.read_claim, a1, a2, a1, i64), ir(kernels.write_claim, a1, a2, a1, i64)
    assert "store atomic i64" in publish and "release" in publish
    assert "load atomic i64" in claim and "acquire" in claim
    assert "store atomic i64" in release and "release" in release
    assert "load atomic i64" in wclaim and "acquire" in wclaim


@pytest.mark.parametrize(
    "kernel,op",
    [("read_claim", "ldar"), ("write_claim", "ldar"), ("write_publish", "stlr"), ("read_release", "stlr")],
)
def test_on_arm64_cursor_loads_become_ldar_and_cursor_stores_become_stlr(kernel, op):
    import re

    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    try:
        target = llvm.Target.from_triple("aarch64-unknown-linux-gnu")
    except RuntimeError:
        pytest.skip("this llvmlite has no AArch64 back end")
    a1, a2, i64 = numba.types.int64[::1], numba.types.uint64[:, ::1], numba.types.int64
    args = (a1, a2, a1, i64) if kernel.endswith("claim") else (a1, a1, i64)
    fresh = numba.njit(_nrt=False, no_cpython_wrapper=True)(getattr(kernels, kernel).py_func)
    fresh.compile(args)
    text = "\n".join(fresh.inspect_llvm().values())
    text = re.sub(r'"target-(cpu|features)"="[^"]*"', "", text)  # host (x86) attributes
    text = re.sub(r"^target (datalayout|triple) = .*$", "", text, flags=re.M)
    mod = llvm.parse_assembly(text)
    mod.triple = "aarch64-unknown-linux-gnu"
    tm = target.create_target_machine(opt=2)
    mod.data_layout = str(tm.target_data)
    assert re.search(rf"\b{op}\b", tm.emit_assembly(mod))


# -- full / empty / wrap-around -----------------------------------------------------------


def test_full_and_empty_are_zero_counts_not_exceptions(pair):
    prod, cons = pair
    out = np.zeros((8, 8), np.uint64)
    assert cons.pop_batch(out) == 0
    assert prod.push_batch(records(0, 5)) == 5
    assert prod.push_batch(records(5, 5)) == 3  # only 3 slots were left
    assert prod.push_batch(records(8, 1)) == 0  # full
    assert cons.pop_batch(out[:2]) == 2
    assert prod.push_batch(records(8, 4)) == 2  # two slots came free
    assert cons.pop_batch(out) == 8
    assert_stream(out, 2)
    assert cons.pop_batch(out) == 0
    assert (prod.published, prod.consumed) == (10, 10)


@pytest.mark.parametrize("push_n,pop_n", [(1, 1), (3, 2), (2, 3), (8, 8), (5, 7), (16, 1)])
def test_many_laps_of_wrap_around_keep_order(pair, push_n, pop_n):
    prod, cons = pair
    total, sent, got = 2_000, 0, 0
    out = np.zeros((pop_n, 8), np.uint64)
    while got < total:
        if sent < total:
            sent += prod.push_batch(records(sent, min(push_n, total - sent)))
        k = cons.pop_batch(out)
        assert_stream(out[:k], got)
        got += k
    assert got == sent == total and prod.published == total


@numba.njit
def _compiled_round_trip(ph, ps, pl, ch, cs, cl, n, out):
    """Producer and consumer steps written against the kernels from compiled code."""
    mask = ps.shape[0] - 1
    k = kernels.write_claim(ph, ps, pl, n)
    for i in range(k):
        for w in range(8):
            ps[(pl[OWN] + i) & mask, w] = np.uint64(1000 + i)
    kernels.write_publish(ph, pl, k)
    m = kernels.read_claim(ch, cs, cl, n)
    for i in range(m):
        out[i] = cs[(cl[OWN] + i) & mask, 3]
    kernels.read_release(ch, cl, m)
    return k, m


def test_claim_publish_and_read_release_are_callable_from_compiled_code(pair):
    prod, cons = pair
    out = np.zeros(16, np.uint64)
    assert _compiled_round_trip(
        prod.header, prod.slots, prod.local, cons.header, cons.slots, cons.local, 5, out
    ) == (5, 5)
    assert out[:5].tolist() == [1000, 1001, 1002, 1003, 1004]
    assert _compiled_round_trip(
        prod.header, prod.slots, prod.local, cons.header, cons.slots, cons.local, 16, out
    ) == (8, 8)
    assert (prod.published, cons.consumed) == (13, 13)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 12)), max_size=60))
def test_push_and_pop_match_a_bounded_fifo_model(ops):
    name = fresh_name()
    with Ring.create(name, 8, PRODUCER) as prod, Ring.attach(name, CONSUMER) as cons:
        model: list[int] = []
        sent = 0
        for is_push, k in ops:
            if is_push:
                n = prod.push_batch(records(sent, k))
                assert n == min(k, 8 - len(model))
                model += list(range(sent, sent + n))
                sent += n
            else:
                out = np.zeros((k, 8), np.uint64)
                n = cons.pop_batch(out)
                assert n == min(k, len(model))
                assert out[:n, 0].tolist() == model[:n]
                assert_stream(out[:n], model[0] if n else 0)
                del model[:n]


def test_push_and_pop_accept_schema_records_and_byte_rows(pair):
    prod, cons = pair
    trades = schema.empty(schema.Kind.TRADE, 3)
    trades["seq"] = [7, 8, 9]
    trades["price"] = [1.5, 2.5, 3.5]
    assert prod.push_batch(trades) == 3
    out = schema.empty(schema.Kind.TRADE, 2)
    assert cons.pop_batch(out) == 2
    assert out["seq"].tolist() == [7, 8] and out["price"].tolist() == [1.5, 2.5]
    raw = np.zeros((4, 64), np.uint8)
    assert cons.pop_batch(raw) == 1
    assert schema.view(raw[:1], schema.Kind.TRADE)["price"][0] == 3.5


def test_wrong_shapes_and_roles_are_ring_errors(pair):
    prod, cons = pair
    with pytest.raises(RingError, match="64-byte records"):
        prod.push_batch(np.zeros((4, 7), np.uint64))
    with pytest.raises(RingError, match="contiguous"):
        prod.push_batch(np.zeros((4, 16), np.uint64)[:, ::2])
    with pytest.raises(RingError, match="contiguous"):
        prod.push_batch(schema.empty(schema.Kind.TRADE, 4)[::2])
    with pytest.raises(RingError, match="numpy array"):
        prod.push_batch([b"x" * 64])
    with pytest.raises(RingError, match="not the consumer"):
        prod.pop_batch(np.zeros((1, 8), np.uint64))
    with pytest.raises(RingError, match="not the producer"):
        cons.push_batch(records(0, 1))


# -- segments: create, attach, close, leaks -----------------------------------------------


@pytest.mark.parametrize("capacity", [0, 1, 3, 100, 1 << 31])
def test_capacity_must_be_a_power_of_two(capacity):
    with pytest.raises(RingError, match="power of two"):
        Ring.create(fresh_name(), capacity, PRODUCER)


@pytest.mark.parametrize("name", ["", "a/b"])
def test_bad_names_are_refused(name):
    with pytest.raises(RingError, match="bad ring name"):
        Ring.create(name, 8, PRODUCER)


def test_attach_to_a_missing_segment_says_so():
    with pytest.raises(RingError, match="no ring segment named"):
        Ring.attach(fresh_name(), CONSUMER)


@pytest.mark.parametrize("size,fill", [(4096, 0), (4096, 0xAB), (64, 0)])
def test_attach_to_a_foreign_segment_says_it_is_not_a_ring(size, fill):
    name = "basis-" + fresh_name()
    shm = shared_memory.SharedMemory(name=name, create=True, size=size)
    try:
        shm.buf[:] = bytes([fill]) * size
        with pytest.raises(RingError, match="not a basis ring|too small"):
            Ring.attach(name, CONSUMER)
    finally:
        shm.close()
        shm.unlink()


def test_creating_an_existing_name_is_refused(pair):
    prod, _ = pair
    with pytest.raises(RingError, match="already exists"):
        Ring.create(prod.name, 8, CONSUMER)


def test_a_second_live_producer_is_refused():
    name = fresh_name()
    with Ring.create(name, 8, CONSUMER) as cons:
        with spawned(ring_children.publish_then_idle, cons.name, 1) as child:
            wait_for(lambda: cons.producer_pid == child.pid)
            with pytest.raises(RingError, match="already has a live producer"):
                Ring.attach(name, PRODUCER)


def test_creator_close_unlinks_and_attacher_close_does_not():
    name = fresh_name()
    cons = Ring.create(name, 8, CONSUMER)
    prod = Ring.attach(name, PRODUCER)
    prod.close()
    assert cons.name in leftovers(TEST_PREFIX)
    cons.close()
    assert cons.name not in leftovers(TEST_PREFIX)
    with pytest.raises(RingError, match="is closed"):
        cons.pop_batch(np.zeros((1, 8), np.uint64))
    cons.close()  # idempotent


def test_a_closed_end_keeps_its_last_cursors_and_no_view_of_the_shared_memory():
    name = fresh_name()
    prod = Ring.create(name, 8, PRODUCER)
    cons = Ring.attach(name, CONSUMER)
    assert prod.push_batch(np.zeros((3, 8), np.uint64)) == 3
    prod.close()
    assert prod.published == 3 and prod.producer_closed and not prod.owner
    assert prod.slots.shape == (0, 8)
    assert cons.published == 3 and cons.producer_closed  # the consumer still reads the live header
    cons.close()


def test_a_killed_creator_leaves_a_segment_that_unlink_removes():
    name = fresh_name()
    with spawned(ring_children.create_and_idle, name, 16) as child:
        wait_for(lambda: "basis-" + name in leftovers(TEST_PREFIX))
    assert child.exitcode == -signal.SIGKILL
    assert unlink(name) is True
    assert "basis-" + name not in leftovers(TEST_PREFIX)
    assert unlink(name) is False


# -- producer closed / dead ---------------------------------------------------------------


def test_consumer_reads_everything_then_ended_after_the_producer_closes(pair):
    prod, cons = pair
    prod.push_batch(records(0, 6))
    prod.close()
    out = np.zeros((4, 8), np.uint64)
    assert cons.pop_wait(out, timeout_s=1) == 4
    assert cons.pop_wait(out, timeout_s=1) == 2
    assert_stream(out[:2], 4)
    assert cons.pop_wait(out, timeout_s=1) == ENDED


def test_consumer_notices_a_sigkilled_producer_within_one_second():
    name = fresh_name()
    with Ring.create(name, 64, CONSUMER) as cons:
        with spawned(ring_children.publish_then_idle, cons.name, 40) as child:
            out = np.zeros((64, 8), np.uint64)
            got = 0
            while got < 40:
                k = cons.pop_wait(out[got:], timeout_s=30)
                assert k > 0
                got += k
            assert_stream(out[:40], 0)
            assert cons.pop_wait(out, timeout_s=0.2) == 0  # alive and idle: a timeout, not death
            os.kill(child.pid, signal.SIGKILL)
            killed = time.monotonic()
            with pytest.raises(ProducerDead, match=f"producer pid {child.pid} is gone"):
                cons.pop_wait(out, timeout_s=10)
            assert time.monotonic() - killed < 1.0


def test_consumer_with_a_heartbeat_timeout_notices_a_hung_producer():
    name = fresh_name()
    with Ring.create(name, 64, CONSUMER, heartbeat_timeout_s=0.4) as cons:
        with spawned(ring_children.publish_then_idle, cons.name, 1) as child:
            out = np.zeros((1, 8), np.uint64)
            assert cons.pop_wait(out, timeout_s=30) == 1
            assert cons.pop_wait(out, timeout_s=0.6) == 0  # beating: alive
            os.kill(child.pid, signal.SIGSTOP)  # alive pid, no more heartbeats
            stopped = time.monotonic()
            with pytest.raises(ProducerDead, match="has not beaten"):
                cons.pop_wait(out, wait=BackoffSleep(), timeout_s=10)
            assert time.monotonic() - stopped < 1.0


@pytest.mark.parametrize(
    "wait",
    [BusySpin(spin_us=50), Yield(), BackoffSleep(min_us=5, max_us=500)],
    ids=["spin", "yield", "backoff"],
)
def test_each_wait_strategy_wakes_for_records_published_later(pair, wait):
    prod, cons = pair
    out = np.zeros((8, 8), np.uint64)
    t0 = time.monotonic()
    assert cons.pop_wait(out, wait=wait, timeout_s=0.05) == 0
    assert time.monotonic() - t0 >= 0.05
    timer = threading.Timer(0.05, prod.push_batch, args=(records(0, 3),))
    timer.start()
    assert cons.pop_wait(out, wait=wait, timeout_s=10) == 3
    timer.join()
    assert_stream(out[:3], 0)


def test_push_wait_waits_for_room_while_the_consumer_drains(pair):
    prod, cons = pair
    src = records(0, 100)
    got = []

    def drain():
        out = np.zeros((3, 8), np.uint64)
        while sum(len(g) for g in got) < 100:
            k = cons.pop_wait(out, wait=Yield(), timeout_s=10)
            assert k > 0
            got.append(out[:k].copy())

    t = threading.Thread(target=drain)
    t.start()
    assert prod.push_wait(src, wait=Yield(), timeout_s=10) == 100
    t.join()
    assert_stream(np.concatenate(got), 0)


def test_push_wait_gives_up_at_its_timeout_when_nobody_reads(pair):
    prod, _ = pair
    assert prod.push_wait(records(0, 20), wait=BackoffSleep(), timeout_s=0.05) == 8


# -- cross-process streams ----------------------------------------------------------------


def consume_from_child(cons: Ring, child, n: int, batch: int) -> int:
    done = 0
    while done < n:
        k, bad, why = seqcheck.consume(cons.header, cons.slots, cons.local, done, n - done, batch, 2_000_000)
        done += int(k)
        assert bad == -1, f"record {bad}: {'wrong seq (lost/duplicated)' if why == 1 else 'torn'}"
        if k == 0:
            cons.check_producer()
    return done


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 64])
def test_cross_process_compiled_stream_is_contiguous_untorn_and_complete(batch):
    n = 50_000_000 if SOAK == "full" else 1_000_000
    name = fresh_name()
    with Ring.create(name, 4096, CONSUMER) as cons:
        with spawned(ring_children.produce_compiled, cons.name, n, batch) as child:
            assert consume_from_child(cons, child, n, batch) == n
            assert cons.pop_wait(np.zeros((1, 8), np.uint64), timeout_s=30) == ENDED
            child.join(30)
            assert child.exitcode == 0
            assert (cons.published, cons.consumed) == (n, n)


def test_cross_process_python_stream_with_mixed_batch_sizes():
    n = 200_000
    name = fresh_name()
    with Ring.create(name, 256, CONSUMER) as cons:
        with spawned(ring_children.produce_python, cons.name, n, [1, 7, 64, 255, 300]) as child:
            out = np.zeros((100, 8), np.uint64)
            got = 0
            while True:
                k = cons.pop_wait(out, wait=Yield(), timeout_s=30)
                assert k != 0, "timed out"
                if k == ENDED:
                    break
                assert_stream(out[:k], got)
                got += k
            assert got == n
            child.join(30)
            assert child.exitcode == 0


# -- the `basis bench` summary --------------------------------------------------------------


def test_bench_table_sets_each_ring_benchmark_beside_its_queue_baseline():
    from basis_core.bench import render, summarize

    rows = summarize(
        {
            "OneToOneThroughput[ring,batch=16]": 50e-9,
            "OneToOneThroughput[queue,batch=16]": 2e-6,
            "OneToOneThroughput[queue,batch=1]": 25e-6,
            "PingPongLatency[ring].p50": 200e-9,
            "PingPongLatency[ring].p99": 400e-9,
            "PingPongLatency[queue].p50": 40e-6,
            "PingPongLatency[queue].p99": 60e-6,
            "journal_append_never": 3e-7,
        }
    )
    by_name = {r[0]: r for r in rows}
    assert by_name["OneToOneThroughput[ring,batch=16]"] == (
        "OneToOneThroughput[ring,batch=16]",
        "20.00 M/s",
        "-",
        "-",
        "40x",
    )
    assert by_name["OneToOneThroughput[queue,batch=1]"][1:] == ("40.00 K/s", "-", "-", "-")
    assert by_name["PingPongLatency[ring]"][1:] == ("-", "200 ns", "400 ns", "200x / 150x")
    assert by_name["journal_append_never"][1] == "300 ns/loop"
    table = render(rows)
    assert table.splitlines()[0].split()[:2] == ["benchmark", "msgs/s"]
    assert len(table.splitlines()) == len(rows) + 2


def test_bench_rejects_an_unknown_suite(capsys):
    from types import SimpleNamespace

    from basis_core.cli.bench import main

    assert main(SimpleNamespace(suites=["nope"], out="/tmp", fast=True, compare_to=None)) == 2
    assert "unknown suite" in capsys.readouterr().err
