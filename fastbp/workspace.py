"""Preallocated buffers for a network and a batch capacity.

A :class:`Workspace` holds every array the kernels write during a step, sized
for ``cap`` rows; batches of up to ``cap`` rows reuse it with no allocation.
It grows (reallocates) only when a larger batch arrives.
"""

import numpy as np

from ._kernels.state import Work
from .spec import L_IN, L_OUT, total_width


def aligned_zeros(shape, dtype, align=64):
    """``np.zeros(shape, dtype)`` starting on an ``align``-byte boundary.

    NumPy only guarantees 16 bytes; vector kernels that load whole cache
    lines (the population lanes) run markedly slower across line boundaries.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + align, dtype=np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)


#: Rows processed per kernel call by predict / evaluate / gradient (inference mode).
CHUNK = 2048


def work_buffers(layout, dtype, cap, grad, lead=()):
    """The :class:`Work` bundle for batches of ``cap`` rows, 64-byte aligned.

    ``grad`` (the gradient buffer) is passed in; ``lead``: leading axes of
    every other buffer (the population's per-thread copies).
    """
    width = total_width(layout)
    z = lambda size: aligned_zeros(tuple(lead) + (size,), dtype)  # noqa: E731
    return Work(z(cap * width), z(cap * width), z(cap * width), grad, z(cap * width),
                z(cap * width), z(width), z(2 * width), cap)


class Workspace:
    """Activation, delta, dropout-mask, batch-norm and gradient buffers for ``cap`` rows.

    Parameters
    ----------
    layout : ndarray of int64
        The network's layout table (see :mod:`fastbp.spec`).
    n_params : int
        Length of the flat parameter buffer.
    dtype : numpy dtype
        float32 or float64.
    cap : int
        Largest batch the buffers hold.
    """

    def __init__(self, layout, n_params, dtype, cap):
        self.layout = layout
        self.dtype = np.dtype(dtype)
        self.grad = aligned_zeros(n_params, self.dtype)
        self.cap = 0
        self._ybufs = {}
        self._xbuf = None
        self.ensure(cap)

    def ensure(self, cap):
        """Make room for batches of ``cap`` rows (no-op when already large enough)."""
        cap = max(int(cap), 1)
        if cap <= self.cap:
            return
        self._ybufs = {}
        self.cap = cap
        self.work = work_buffers(self.layout, self.dtype, cap, self.grad)

    @property
    def xbuf(self):
        """A ``cap``-row input buffer, allocated on first use (sparse input never needs
        one, and for it a dense ``cap x n_features`` buffer could be huge)."""
        if self._xbuf is None or self._xbuf.shape[0] < self.cap:
            self._xbuf = aligned_zeros((self.cap, int(self.layout[0, L_IN])), self.dtype)
        return self._xbuf

    def sparse_buffers(self, n_weights):
        """``(rows, scratch)`` for sparse epochs: int64 room for ``cap`` row numbers and
        ``n_weights`` entries for a copy of the first layer's weights (kept for reuse)."""
        bufs = getattr(self, "_sparse", None)
        if bufs is None or bufs[0].shape[0] < self.cap or bufs[1].shape[0] < n_weights:
            bufs = self._sparse = (np.zeros(self.cap, dtype=np.int64),
                                   np.empty(n_weights, dtype=self.dtype))
        return bufs

    def ybuf(self, y):
        """A ``cap``-row buffer shaped and typed like the targets ``y``."""
        key = (y.dtype.str, y.shape[1:])
        buf = self._ybufs.get(key)
        if buf is None:
            buf = np.zeros((self.cap,) + y.shape[1:], dtype=y.dtype)
            self._ybufs[key] = buf
        return buf

    def output(self, n):
        """View of the output layer's activations for the last ``n``-row batch."""
        m = int(self.layout[-1, L_OUT])
        off = self.cap * total_width(self.layout[:-1])
        return self.work.acts[off:off + n * m].reshape(n, m)

    def snapshot(self, net, opt):
        """A :class:`Snapshot` of ``net`` and ``opt`` taken now (buffers reused)."""
        snap = getattr(self, "_snap", None)
        if snap is None or snap.net is not net or snap.opt is not opt:
            snap = self._snap = Snapshot(net, opt)
        snap.take()
        return snap


class Snapshot:
    """Preallocated copy of everything a training step or epoch changes, to undo it."""

    def __init__(self, net, opt):
        self.net, self.opt = net, opt
        self.params = np.empty_like(net._params)
        self.stats = np.empty_like(net._stats)
        self.state = np.empty_like(opt.state)
        self.counter = 0
        self.step = 0

    def take(self):
        np.copyto(self.params, self.net._params)
        np.copyto(self.stats, self.net._stats)
        np.copyto(self.state, self.opt.state)
        self.counter = int(self.net._counter[0])
        self.step = int(self.opt.step[0])

    def restore(self):
        np.copyto(self.net._params, self.params)
        np.copyto(self.net._stats, self.stats)
        np.copyto(self.opt.state, self.state)
        self.net._counter[0] = self.counter
        self.opt.step[0] = self.step
