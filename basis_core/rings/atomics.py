"""Memory-ordering primitives for numba code: acquire load, release store, spin-loop pause, and
the two system calls a spin loop needs (CLOCK_MONOTONIC, sched_yield).

Each is a numba `@intrinsic` that emits one LLVM instruction, so its ordering is the one LLVM
promises on every target, not an accident of the host CPU:

    load_acquire(a, i)      `load atomic i64, ptr acquire`   no later load or store of this thread
                                                             may be moved before it
    store_release(a, i, v)  `store atomic i64 v, ptr release` no earlier load or store of this
                                                             thread may be moved after it
    cpu_relax()             `pause` on x86-64, `yield` on ARM64, nothing elsewhere
    monotonic_ns()          libc clock_gettime(CLOCK_MONOTONIC)
    sched_yield()           libc sched_yield()

On x86-64 the acquire load and release store compile to plain `mov`s (TSO already gives that
order) but they still stop the compiler from reordering or hoisting: a plain load of a cursor
inside a spin loop can be hoisted out of the loop by LLVM, which turns the wait into an endless
loop. On ARM64 they become `ldar` / `stlr`.

`a` is a 1-D int64 array whose element `i` is 8-byte aligned (the ring header is).
No bounds check is made: callers pass constant indices of the header layout.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_Args = ParamSpec("_Args")


def compiled_intrinsic(defn: Callable[Concatenate[Any, _Args], object]) -> Callable[_Args, Any]:
    """numba's `@intrinsic`, typed as compiled code calls the result: with the arguments of
    `defn` after `typingctx`. Its result is Any to mypy: the numba signature `defn` returns
    types it, for numba."""
    # numba's typing gives the result `defn`'s own signature, typingctx included
    return intrinsic(defn)  # type: ignore[return-value]


_MACHINE = platform.machine().lower()
if _MACHINE in ("x86_64", "amd64", "i686", "i386"):
    _PAUSE = "pause"
elif _MACHINE in ("aarch64", "arm64"):
    _PAUSE = "yield"
else:
    _PAUSE = ""
if _PAUSE:
    # inline asm in a numba function needs the native asm parser, which numba does not load
    llvm.initialize_native_asmparser()


def _check_array(arr) -> bool:
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.int64


def _element_pointer(context, builder, arrty, arr, idxty, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    i = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [i], wraparound=False)


def _load_codegen(ordering: str):
    """The codegen of an int64 `arr[idx]` load with LLVM's `ordering`."""

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return builder.load_atomic(ptr, ordering, 8)

    return codegen


def _store_codegen(ordering: str):
    """The codegen of an int64 `arr[idx] = value` store with LLVM's `ordering`."""

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, ordering, 8)
        return context.get_dummy_value()

    return codegen


@compiled_intrinsic
def load_acquire(typingctx, arr, idx):
    """`arr[idx]` read with acquire ordering (int64). Pairs with `store_release` of the writer:
    every store the writer made before its release store is visible after this load sees it."""
    if not _check_array(arr) or not isinstance(idx, types.Integer):
        return None
    return types.int64(arr, idx), _load_codegen("acquire")


@compiled_intrinsic
def store_release(typingctx, arr, idx, value):
    """`arr[idx] = value` with release ordering (int64): every load and store this thread made
    before it is visible to a thread whose `load_acquire` of `arr[idx]` returns `value`."""
    if not _check_array(arr) or not isinstance(idx, types.Integer) or not isinstance(value, types.Integer):
        return None
    return types.void(arr, idx, value), _store_codegen("release")


@compiled_intrinsic
def load_relaxed(typingctx, arr, idx):
    """`arr[idx]` as a monotonic (relaxed) atomic load: never torn, never hoisted out of a loop,
    but it orders nothing else. For values read for information (heartbeat, pid)."""
    if not _check_array(arr) or not isinstance(idx, types.Integer):
        return None
    return types.int64(arr, idx), _load_codegen("monotonic")


@compiled_intrinsic
def store_relaxed(typingctx, arr, idx, value):
    """`arr[idx] = value` as a monotonic (relaxed) atomic store: never torn, orders nothing."""
    if not _check_array(arr) or not isinstance(idx, types.Integer) or not isinstance(value, types.Integer):
        return None
    return types.void(arr, idx, value), _store_codegen("monotonic")


@compiled_intrinsic
def cpu_relax(typingctx):
    """A spin-loop hint (`pause` / `yield`): lets the sibling hyperthread run and avoids the
    memory-order mis-speculation penalty when the awaited cache line changes. No ordering."""

    def codegen(context, builder, sig, args):
        if _PAUSE:
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.asm(fnty, _PAUSE, "~{memory}", [], side_effect=True)
        return context.get_dummy_value()

    return types.void(), codegen


@compiled_intrinsic
def monotonic_ns(typingctx):
    """CLOCK_MONOTONIC in ns (int64), via libc `clock_gettime` (a vDSO call on Linux, ~20-50 ns).

    The same clock as Python's `time.monotonic_ns()` on Linux, and the same in every process of
    the host, so a heartbeat written by one process can be aged by another."""

    def codegen(context, builder, sig, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        ts_ty = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, ts_ty.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, ts_ty)
        builder.call(fn, [ir.Constant(i32, 1), ts])  # 1 = CLOCK_MONOTONIC on Linux
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return types.int64(), codegen


@compiled_intrinsic
def sched_yield(typingctx):
    """libc `sched_yield()`: give the core to another runnable thread, if any (a system call,
    ~0.3-1 us). A spin loop falls back to it after a while so that, on an oversubscribed host,
    the waiter does not burn the time slice the other end needs to make progress."""

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen
