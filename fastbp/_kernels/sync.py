"""A spinning barrier for kernels that run on several threads at once.

``sync`` is an int64 array of three entries, ``[arrived, generation, abort]``,
shared by the threads (zeros to start).  Each thread reads the generation once before its
first barrier (``generation``) and passes the number it got back from the last
``barrier`` call to the next.  The atomics are sequentially consistent, so
what a thread wrote before a barrier is visible to every thread after it.
Threads spin while they wait: meant for as many threads as free cores, with
waits of microseconds; after ``SPINS`` turns (tens of microseconds) a waiting
thread gives its core away on every turn (``sched_yield``), so a partner that
was descheduled by a busy machine gets it back.  A nonzero ``abort`` (set by whoever starts the threads,
when one of them could not start) releases every waiting thread: ``barrier``
then returns -1 and the kernel returns.
"""

import sys

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import JIT_NO_NRT


def _slot_ptr(context, builder, aryty, ary_val, i_val, ity):
    """Pointer to ``ary[i]`` of a 1-D int64 array."""
    from numba.np.arrayobj import make_array  # compile time only
    ary = make_array(aryty)(context, builder, ary_val)
    i = context.cast(builder, i_val, ity, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [i])


def _int64_slot(a, i):
    return (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int64
            and isinstance(i, types.Integer))


@intrinsic
def atomic_add(typingctx, a, i, v):
    """``a[i] += v`` atomically (sequentially consistent); returns the old value."""
    if not (_int64_slot(a, i) and isinstance(v, types.Integer)):
        return None
    sig = types.int64(a, i, v)

    def codegen(context, builder, sig, args):
        ptr = _slot_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return sig, codegen


@intrinsic
def atomic_load(typingctx, a, i):
    """``a[i]``, read atomically (sequentially consistent)."""
    if not _int64_slot(a, i):
        return None
    sig = types.int64(a, i)

    def codegen(context, builder, sig, args):
        ptr = _slot_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)

    return sig, codegen


#: Turns of the spin loop before a waiting thread starts yielding its core.
SPINS = 1 << 14

if sys.platform == "win32":  # pragma: no cover - no sched_yield
    @njit(**JIT_NO_NRT)
    def _relax():
        """Nothing (the wait keeps spinning)."""
        return 0
else:
    _relax = types.ExternalFunction("sched_yield", types.int32())


@njit(**JIT_NO_NRT)
def generation(sync):
    """The barrier's generation now: what a thread passes to its first ``barrier``."""
    return atomic_load(sync, 1)


@njit(**JIT_NO_NRT)
def barrier(sync, gen, nthreads):
    """Wait until ``nthreads`` threads have called this with generation ``gen``;
    returns the next generation (-1: aborted)."""
    if atomic_add(sync, 0, 1) == nthreads - 1:
        atomic_add(sync, 0, -nthreads)  # reset before the others go on
        atomic_add(sync, 1, 1)
    else:
        turns = 0
        while atomic_load(sync, 1) == gen:
            if atomic_load(sync, 2) != 0:
                return -1
            turns += 1
            if turns > SPINS:
                _relax()
    return gen + 1
