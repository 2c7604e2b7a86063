"""Training from data larger than memory: memory maps and streams of chunks.

:meth:`fastbp.MLP.fit` hands its data here when ``X`` is a ``numpy.memmap``,
when ``chunk_size`` is given, or when ``y`` is omitted and ``X`` yields
``(X, y)`` chunks.  Every chunk is trained by the same compiled pass as
in-memory data (:func:`fastbp.training.train_rows`); while it trains, a
background thread reads the next chunk, checks it and converts it to the
network's dtype (the kernels release the GIL, so the two overlap).

Sources
    *Arrays* (a memmap, or any array with ``shape`` and row slicing, e.g. an
    h5py or zarr dataset, when ``chunk_size`` is given) are read in row
    chunks of ``chunk_size`` rows, rounded down to a multiple of
    ``batch_size`` so that chunking never changes the batches.  The default
    is about :data:`CHUNK_BYTES` of ``X``.  Rows of a memmap are copied out
    of the mapping and the mapped pages released again, so resident memory
    grows by about two chunks (the one training, the one being read)
    whatever the size of the file.  A copy-on-write map (``mode="c"``) keeps
    its pages: releasing them would discard its private changes.

    *Chunk streams* (``y`` omitted): a sequence of ``(X, y)`` pairs, any
    re-iterable object (``iter(obj)`` returns a fresh iterator), or a
    zero-argument callable returning a fresh iterable each epoch.  A one-shot
    iterator such as a generator is accepted for ``epochs=1`` only.

Shuffling (``shuffle=True``)
    Each epoch visits the chunks in a permutation drawn from ``net.rng``
    (arrays and sequences; other streams keep their own order) and the rows
    of each chunk in a permutation drawn next, as the chunk is trained.  The
    same seed therefore gives bit-identical parameters.  With one chunk
    (``chunk_size >= n``) the draws are exactly those of an in-memory fit, so
    the result equals it bit for bit; without shuffling any chunking of an
    array equals the in-memory fit bit for bit.  Rows never move between
    chunks: shuffle the file once beforehand if its order is not random.

Validation
    Shapes and dtypes of an array are checked before training starts; each
    chunk's values (and each streamed chunk entirely) are checked as it
    arrives.  A bad chunk raises ``ValueError``/``TypeError`` naming the
    chunk, and the network (parameters, statistics, optimizer state) is
    restored to the end of the last completed epoch, as on divergence.
    Validation data must be in memory (``validation_data=``);
    ``validation_fraction`` and the full-batch optimizers (rprop, lbfgs)
    need the whole set in memory and are refused.
"""

import concurrent.futures
import contextlib
import itertools
import mmap
from collections.abc import Sequence

import numpy as np

from ._validate import check_int, check_X, check_y
from .training import train_rows

#: Default bytes of ``X`` per chunk read from an array (64 MiB).
CHUNK_BYTES = 64 << 20

#: Bytes of a memmap copied between releases of its mapped pages (4 MiB).
RELEASE_BYTES = 4 << 20

#: Rows kept from the first chunk to measure gradient norms (``record_grad_norms``).
PROBE_ROWS = 512

_END = object()


def wants_stream(X, y, chunk_size):
    """Whether :meth:`fastbp.MLP.fit` should stream ``X`` rather than load it."""
    return y is None or chunk_size is not None or isinstance(X, np.memmap)


def _note(exc, text):
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(text)


def _n_rows(a, name):
    shape = getattr(a, "shape", None)
    if shape is None or not hasattr(a, "__getitem__"):
        raise TypeError(f"{name} must be an array with .shape and row slicing to be read in "
                        f"chunks, got {type(a).__name__}")
    if len(shape) == 0:
        raise ValueError(f"{name} must be an array of samples, got a scalar")
    return int(shape[0])


def _release(a, s, e):
    """Drop the pages of rows ``s:e`` of memmap ``a`` from this process's resident set.

    The data stay in the page cache; only a private copy-on-write mapping
    (mode ``"c"``) is left alone, since dropping its pages would discard changes.
    """
    mm = getattr(a, "_mmap", None)
    if mm is None or getattr(a, "mode", "c") == "c" or not hasattr(mm, "madvise"):
        return
    part = a[s:e]
    if part.size == 0:
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    lo, hi = np.lib.array_utils.byte_bounds(part) if hasattr(np.lib, "array_utils") \
        else np.byte_bounds(part)
    start = (lo - base) // mmap.PAGESIZE * mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, start, hi - base - start)
    except (OSError, ValueError):  # not worth failing a fit over
        pass


def _read(a, s, e, dtype=None):
    """Rows ``s:e`` of ``a`` as an in-memory array.

    A memmap is copied out in blocks of about :data:`RELEASE_BYTES`, each
    block's mapped pages released as soon as it is copied, so the mapping adds
    at most one block to the resident set.
    """
    if not isinstance(a, np.memmap):
        return np.asarray(a[s:e])
    out = np.empty((e - s,) + a.shape[1:], dtype=dtype or a.dtype)
    row_bytes = max(a[:1].nbytes, 1)
    step = max(1, RELEASE_BYTES // row_bytes)
    for b in range(s, e, step):
        c = min(b + step, e)
        out[b - s:c - s] = a[b:c]
        _release(a, b, c)
    return out


class _ArrayChunks:
    """Row chunks of an array ``X`` and its targets ``y``."""

    def __init__(self, net, X, y, chunk_size, batch_size):
        n = _n_rows(X, "X")
        if not hasattr(y, "shape"):
            y = np.asarray(y)
        ny = _n_rows(y, "y")
        # shapes and dtype kinds of the whole arrays, from their first row
        first = check_X(X[:1], net.sizes[0], net.dtype)
        if ny != n:
            raise ValueError(f"X has {n} samples but y has {ny}; they must match")
        check_y(y[:1], 1, net.sizes[-1], net._loss_code, net.dtype)
        if chunk_size is None:
            rows = CHUNK_BYTES // (first.shape[1] * first.itemsize)
        else:
            rows = check_int(chunk_size, "chunk_size", 1)
        rows = max(batch_size, rows // batch_size * batch_size)
        self.net, self.X, self.y, self.n = net, X, y, n
        self.rows = min(rows, n)
        self.n_chunks = -(-n // self.rows)

    def order(self, rng, shuffle):
        """Chunk indices for one epoch."""
        idx = np.arange(self.n_chunks)
        if shuffle and self.n_chunks > 1:
            rng.shuffle(idx)
        return idx

    def load(self, i):
        """Chunk ``i``, read and validated (runs in the prefetch thread)."""
        s, e = i * self.rows, min((i + 1) * self.rows, self.n)
        net, where = self.net, f" of chunk {i} (rows {s}-{e - 1})"
        X = check_X(_read(self.X, s, e, net.dtype), net.sizes[0], net.dtype, name="X" + where)
        y = check_y(_read(self.y, s, e), e - s, net.sizes[-1], net._loss_code, net.dtype,
                    name="y" + where)
        return X, y


def check_chunk(net, item, k):
    """A streamed item as validated ``(X, y)``; errors name chunk ``k``."""
    if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 2:
        raise TypeError(f"chunk {k} of the stream must be a pair (X, y), got "
                        f"{type(item).__name__}; to train on arrays pass fit(X, y)")
    X = check_X(item[0], net.sizes[0], net.dtype, name=f"X of chunk {k}")
    y = check_y(item[1], X.shape[0], net.sizes[-1], net._loss_code, net.dtype,
                name=f"y of chunk {k}")
    return X, y


class _StreamChunks:
    """``(X, y)`` chunks from a sequence, a re-iterable, a callable or an iterator."""

    def __init__(self, net, X, epochs):
        if isinstance(X, np.ndarray) or hasattr(X, "tocsr"):
            raise TypeError("y is missing: pass fit(X, y), or pass X as a stream of (X, y) "
                            "chunks (a list, a re-iterable object or a function returning "
                            "an iterable) with y omitted")
        self.net = net
        self.seq = X if isinstance(X, Sequence) and not isinstance(X, (str, bytes)) else None
        if self.seq is not None:
            self.n_chunks = len(self.seq)
            return
        self.n_chunks = None
        if callable(X):
            self.fresh = X
            return
        try:
            it = iter(X)
        except TypeError:
            raise TypeError(f"X must be an array (with y) or a stream of (X, y) chunks, got "
                            f"{type(X).__name__}") from None
        if it is X and epochs > 1:
            raise ValueError(f"X is a one-shot iterator (e.g. a generator), exhausted after "
                             f"one epoch, but epochs={epochs}; pass a zero-argument function "
                             "returning a fresh iterator (e.g. lambda: make_chunks()) or a "
                             "re-iterable object such as a list of (X, y) pairs")
        self.fresh = lambda: X

    def order(self, rng, shuffle):
        """Per epoch: chunk indices of a sequence, else positions in a fresh iterator."""
        if self.seq is not None:
            idx = np.arange(self.n_chunks)
            if shuffle and self.n_chunks > 1:
                rng.shuffle(idx)
            return idx
        try:
            self._it = iter(self.fresh())
        except TypeError:
            raise TypeError("the function passed as X must return an iterable of (X, y) "
                            "chunks") from None
        return itertools.count()

    def load(self, i):
        """Chunk ``i`` of the sequence, or the iterator's next item (its ``i``-th)."""
        if self.seq is not None:
            return check_chunk(self.net, self.seq[i], i)
        item = next(self._it, _END)
        return item if item is _END else check_chunk(self.net, item, i)


class Source:
    """A chunked training set: per-epoch chunk order, prefetching reader, epoch runner."""

    def __init__(self, chunks):
        self.chunks = chunks
        rows = getattr(chunks, "rows", None)
        self.max_rows = rows  # workspace capacity hint (None: the batch size)
        self._first = None
        self._pool = None

    def _prefetched(self, positions):
        """Chunks for ``positions``, each read while the previous one trains."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="fastbp-prefetch")
        load = self.chunks.load

        def task(pos, k):
            if pos is _END:
                return _END
            try:
                return load(pos)
            except (ValueError, TypeError):
                raise  # fastbp's own checks, naming the chunk
            except Exception as exc:
                _note(exc, f"raised while fastbp's prefetch thread read chunk {k} of the "
                           "training data")
                raise

        it = iter(positions)
        fut = self._pool.submit(task, next(it, _END), 0)
        try:
            k = 0
            while True:
                item = fut.result()
                if item is _END:
                    return
                k += 1
                fut = self._pool.submit(task, next(it, _END), k)
                yield item
        finally:  # never leave a read running (iterators are not thread-safe)
            concurrent.futures.wait([fut])

    def run_epoch(self, net, ws, batch_size, shuffle, opt, out):
        """Train one pass over every chunk; returns (mean loss, rows trained, complete)."""
        positions = self.chunks.order(net.rng, shuffle)
        total = 0.0
        done = 0
        count = 0
        loss = 0.0
        with contextlib.closing(self._prefetched(positions)) as chunks:
            for X, y in chunks:
                if self._first is None:
                    self._first = (X[:PROBE_ROWS].copy(), y[:PROBE_ROWS].copy())
                m = X.shape[0]
                scratch = getattr(self, "_identity", None)
                if scratch is None or scratch.shape[0] < m:
                    self._identity = np.arange(m, dtype=np.int64)
                    self._order = np.empty(m, dtype=np.int64)
                loss, k = train_rows(net, ws, X, y, self._order, self._identity, batch_size,
                                     shuffle, opt, out)
                if k < m:
                    return loss, done + k, False
                total += loss * k
                done += k
                count += 1
        if count == 0:
            raise ValueError("the stream of chunks was empty in this epoch; a function "
                             "passed as X must return a fresh, non-empty iterable each call")
        return (loss if count == 1 else total / done), done, True

    def probe(self):
        """The first rows of the first chunk trained (for gradient norms)."""
        return self._first

    def close(self):
        """Stop the prefetch thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def open_source(net, X, y, chunk_size, batch_size, epochs):
    """Validate what can be checked up front and wrap the data as a :class:`Source`."""
    batch_size = check_int(batch_size, "batch_size", 1)
    epochs = check_int(epochs, "epochs", 0)
    if hasattr(X, "tocsr"):
        raise TypeError("sparse matrices are not streamed in chunks; omit chunk_size")
    if y is None:
        if chunk_size is not None:
            raise ValueError("chunk_size applies to arrays passed as fit(X, y); a stream of "
                             "(X, y) chunks is trained in the chunks it yields")
        return Source(_StreamChunks(net, X, epochs))
    return Source(_ArrayChunks(net, X, y, chunk_size, batch_size))


def check_settings(validation_data, validation_fraction, optimizer, lbfgs):
    """Refuse fit settings that need the whole training set in memory."""
    if validation_data is None and validation_fraction > 0:
        raise ValueError("validation_fraction needs the whole training set in memory to draw "
                         "a random split, which a memmap or chunk stream does not give; pass "
                         "validation_data=(X_val, y_val) (in memory) instead, or load the "
                         "data with np.asarray(X) if it fits")
    full = lbfgs or getattr(optimizer, "full_batch", False) or (
        isinstance(optimizer, str) and optimizer.lower() == "rprop")
    if full:
        name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
        raise ValueError(f"optimizer {name!r} takes "
                         "full-batch steps, which need the whole training set in memory; "
                         "use sgd, adam or adamw on a memmap or chunk stream")
