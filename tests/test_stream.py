"""Training from memory maps and streams of (X, y) chunks (``fastbp.stream``)."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import fastbp
import fastbp.sklearn
from fastbp import stream


def _data(n=300, d=5, m=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    return X, np.tanh(X @ r.standard_normal((d, m)))


def _memmap(tmp_path, a, name="X.npy", dtype=None):
    path = tmp_path / name
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype or a.dtype, shape=a.shape)
    mm[:] = a
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


def _net(seed=1, sizes=(5, 8, 3), **kw):
    kw.setdefault("activation", "tanh")
    return fastbp.MLP(list(sizes), seed=seed, **kw)


def _same(a, b):
    return a.params.tobytes() == b.params.tobytes()


def _chunks(X, y, rows):
    return [(X[s:s + rows], y[s:s + rows]) for s in range(0, X.shape[0], rows)]


def _no_prefetch_thread():
    return not any(t.name.startswith("fastbp-prefetch") for t in threading.enumerate())


# --------------------------------------------------------------- equivalence
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_one_chunk_memmap_with_shuffle_equals_in_memory_fit(tmp_path, dtype, opt):
    X, y = _data()
    mx = _memmap(tmp_path, X)  # float64 file: converted per chunk for float32 nets
    ref, net = _net(dtype=dtype), _net(dtype=dtype)
    h0 = ref.fit(X, y, epochs=4, batch_size=16, seed=3, optimizer=opt)
    h1 = net.fit(mx, y, epochs=4, batch_size=16, seed=3, optimizer=opt)
    assert _same(ref, net)
    assert h0.loss == h1.loss
    assert h1.samples == h0.samples == 4 * X.shape[0]
    assert net.params.dtype == np.dtype(dtype)


def test_explicit_chunk_size_covering_the_set_equals_in_memory(tmp_path):
    X, y = _data()
    ref, net = _net(), _net()
    ref.fit(X, y, epochs=3, batch_size=10, seed=9)
    net.fit(_memmap(tmp_path, X), _memmap(tmp_path, y, "y.npy"), epochs=3, batch_size=10,
            seed=9, chunk_size=X.shape[0])
    assert _same(ref, net)


@pytest.mark.parametrize("sizes,opt", [((5, 8, 3), "sgd"), ((5, 64, 64, 3), "adam")])
@pytest.mark.parametrize("chunk_size", [16, 50, 96, 1000])
def test_chunked_without_shuffle_equals_in_memory(tmp_path, sizes, opt, chunk_size):
    """chunk_size is rounded down to a multiple of batch_size: same batches."""
    X, y = _data()
    ref, net = _net(sizes=sizes), _net(sizes=sizes)
    ref.fit(X, y, epochs=2, batch_size=16, shuffle=False, optimizer=opt)
    net.fit(_memmap(tmp_path, X), y, epochs=2, batch_size=16, shuffle=False, optimizer=opt,
            chunk_size=chunk_size)
    assert _same(ref, net)


def test_plain_array_with_chunk_size_streams_like_a_memmap(tmp_path):
    X, y = _data()
    a, b = _net(), _net()
    a.fit(X, y, epochs=2, batch_size=8, seed=2, chunk_size=40)
    b.fit(_memmap(tmp_path, X), y, epochs=2, batch_size=8, seed=2, chunk_size=40)
    assert _same(a, b)


def test_list_of_chunks_without_shuffle_equals_in_memory():
    X, y = _data()
    ref, net = _net(), _net()
    ref.fit(X, y, epochs=2, batch_size=10, shuffle=False)
    net.fit(_chunks(X, y, 50), epochs=2, batch_size=10, shuffle=False)
    assert _same(ref, net)


# ----------------------------------------------------------------- iterables
def test_generator_callable_and_reiterable_give_the_same_result():
    X, y = _data()
    chunks = _chunks(X, y, 60)

    class Reiterable:
        def __iter__(self):
            return iter(chunks)

    nets = [_net() for _ in range(3)]
    nets[0].fit(lambda: (c for c in chunks), epochs=3, batch_size=16, seed=4)
    nets[1].fit(Reiterable(), epochs=3, batch_size=16, seed=4)
    # a sequence also shuffles its chunk order: it differs from a generator's
    nets[2].fit(chunks, epochs=3, batch_size=16, seed=4)
    assert _same(nets[0], nets[1])
    assert not _same(nets[0], nets[2])
    one = _net()
    one.fit((c for c in chunks), epochs=1, batch_size=16, seed=4)
    first = _net()
    first.fit(lambda: iter(chunks), epochs=1, batch_size=16, seed=4)
    assert _same(one, first)


def test_one_shot_generator_with_several_epochs_is_refused_before_training():
    X, y = _data()
    net = _net()
    before = net.params.copy()
    gen = (c for c in _chunks(X, y, 60))
    with pytest.raises(ValueError, match="one-shot iterator.*epochs=2.*function"):
        net.fit(gen, epochs=2)
    assert net.params.tobytes() == before.tobytes()
    assert next(gen)[0].shape == (60, 5)  # nothing consumed


def test_a_callable_returning_an_exhausted_iterator_is_an_empty_epoch():
    X, y = _data()
    gen = (c for c in _chunks(X, y, 60))
    net = _net()
    ref = _net()
    ref.fit(_chunks(X, y, 60), epochs=1, batch_size=16, shuffle=False)
    with pytest.raises(ValueError, match="empty in this epoch"):
        net.fit(lambda: gen, epochs=2, batch_size=16, shuffle=False)
    assert _same(net, ref)  # the first epoch stands


# ----------------------------------------------------------- reproducibility
def test_seeded_chunk_shuffling_is_bit_reproducible(tmp_path):
    X, y = _data(n=500)
    mx = _memmap(tmp_path, X)
    nets = [_net() for _ in range(3)]
    for net, seed in zip(nets, (11, 11, 12)):
        net.fit(mx, y, epochs=3, batch_size=8, seed=seed, chunk_size=64)
    assert _same(nets[0], nets[1])
    assert not _same(nets[0], nets[2])
    # chunk order and rows are shuffled: differs from the unshuffled stream
    plain = _net()
    plain.fit(mx, y, epochs=3, batch_size=8, shuffle=False, chunk_size=64)
    assert not _same(nets[0], plain)


def test_chunk_order_is_drawn_from_the_network_generator():
    src = stream._ArrayChunks(_net(), *_data(n=100), chunk_size=10, batch_size=10)
    rng = np.random.default_rng(0)
    assert src.order(rng, False).tolist() == list(range(10))
    order = src.order(rng, True)
    assert sorted(order.tolist()) == list(range(10))
    assert order.tolist() == np.random.default_rng(0).permutation(10).tolist()


# -------------------------------------------------------------------- errors
def _failing_on_second_epoch(chunks, bad_index, bad):
    calls = [0]

    def make():
        calls[0] += 1
        out = list(chunks)
        if calls[0] == 2:
            out[bad_index] = bad
        return iter(out)
    return make


@pytest.mark.parametrize("bad,exc,match", [
    (lambda X, y: (X[:, :4], y), ValueError, "X of chunk 2 has 4 features"),
    (lambda X, y: (np.where(X > 1, np.nan, X), y), ValueError, "X of chunk 2 contains NaN"),
    (lambda X, y: (X.astype(str), y), TypeError, "X of chunk 2 has unsupported dtype"),
    (lambda X, y: (X + 1j, y), TypeError, "X of chunk 2 has complex dtype"),
    (lambda X, y: (X, y[:-1]), ValueError, "y of chunk 2 has 59"),
    (lambda X, y: X, TypeError, "chunk 2 of the stream must be a pair"),
])
def test_bad_chunk_raises_naming_it_and_keeps_the_last_completed_epoch(bad, exc, match):
    X, y = _data()
    chunks = _chunks(X, y, 60)
    net = _net()
    opt = fastbp.SGD(0.05, momentum=0.9)
    ref_opt = fastbp.SGD(0.05, momentum=0.9)
    ref = _net()
    ref.fit(lambda: iter(chunks), epochs=1, batch_size=16, seed=5, optimizer=ref_opt)
    make = _failing_on_second_epoch(chunks, 2, bad(*chunks[2]))
    with pytest.raises(exc, match=match):
        net.fit(make, epochs=3, batch_size=16, seed=5, optimizer=opt)
    assert _same(net, ref)
    assert opt.state.tobytes() == ref_opt.state.tobytes()
    assert net.steps == ref.steps
    assert _no_prefetch_thread()


def test_nan_in_a_memmap_chunk_names_the_chunk_and_rows(tmp_path):
    X, y = _data()
    X[130, 2] = np.nan
    net = _net()
    before = net.params.copy()
    with pytest.raises(ValueError, match=r"chunk 2 \(rows 128-191\) contains NaN"):
        net.fit(_memmap(tmp_path, X), y, epochs=2, batch_size=16, chunk_size=64,
                shuffle=False)
    assert net.params.tobytes() == before.tobytes()


def test_reader_errors_propagate_from_the_prefetch_thread():
    X, y = _data()
    chunks = _chunks(X, y, 60)

    def gen():
        yield chunks[0]
        yield chunks[1]
        raise OSError("disk went away")

    net = _net()
    before = net.params.copy()
    with pytest.raises(OSError, match="disk went away") as ei:
        net.fit(gen(), epochs=1, batch_size=16)
    notes = " ".join(getattr(ei.value, "__notes__", []))
    if hasattr(ei.value, "add_note"):
        assert "prefetch thread read chunk 2" in notes
    assert net.params.tobytes() == before.tobytes()
    assert _no_prefetch_thread()


def test_upfront_checks_of_a_memmap_change_nothing(tmp_path):
    X, y = _data()
    net = _net()
    before = net.params.copy()
    mx = _memmap(tmp_path, X)
    with pytest.raises(ValueError, match="X has 5 features but the network expects 4"):
        _net(sizes=(4, 3)).fit(mx, y)
    with pytest.raises(ValueError, match="X has 300 samples but y has 299"):
        net.fit(mx, y[:-1])
    with pytest.raises(TypeError, match="complex"):
        net.fit(_memmap(tmp_path, X + 0j, "c.npy"), y)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        net.fit(mx, y, chunk_size=0)
    with pytest.raises(ValueError, match="empty"):
        net.fit(mx[:0], y[:0])
    assert net.params.tobytes() == before.tobytes()


def test_settings_that_need_the_whole_set_are_refused(tmp_path):
    X, y = _data()
    mx = _memmap(tmp_path, X)
    net = _net()
    before = net.params.copy()
    with pytest.raises(ValueError, match="validation_fraction.*validation_data"):
        net.fit(mx, y, validation_fraction=0.2)
    for opt in ("rprop", "lbfgs", fastbp.optim.RPROP()):
        with pytest.raises(ValueError, match="full-batch"):
            net.fit(mx, y, optimizer=opt)
    with pytest.raises(ValueError, match="chunk_size applies to arrays"):
        net.fit(_chunks(X, y, 50), chunk_size=10)
    with pytest.raises(TypeError, match="y is missing"):
        net.fit(X)
    with pytest.raises(TypeError, match="stream of"):
        net.fit(42)
    assert net.params.tobytes() == before.tobytes()


# ------------------------------------------------- validation and monitoring
def test_validation_data_and_early_stopping_with_a_stream(tmp_path):
    X, y = _data(n=400)
    Xv, yv = _data(n=100, seed=3)
    ref, net = _net(), _net()
    h0 = ref.fit(X, y, epochs=6, batch_size=16, seed=1, validation_data=(Xv, yv),
                 n_iter_no_change=2)
    h1 = net.fit(_memmap(tmp_path, X), y, epochs=6, batch_size=16, seed=1,
                 validation_data=(Xv, yv), n_iter_no_change=2)
    assert h1.val_loss == h0.val_loss and h1.best_epoch == h0.best_epoch
    assert _same(ref, net)
    h2 = _net().fit(lambda: iter(_chunks(X, y, 64)), epochs=3, validation_data=(Xv, yv),
                    record_grad_norms=True)
    assert len(h2.val_loss) == 3 and len(h2.grad_norms) == 3


def test_divergence_in_a_stream_restores_the_last_finite_epoch():
    r = np.random.default_rng(0)
    X, y = 100 * r.standard_normal((64, 5)), 1000 * r.standard_normal((64, 3))
    chunks = _chunks(X, y, 16)
    ref = _net(activation="relu")
    ref.fit(chunks, epochs=1, batch_size=4, lr=1e-7, seed=0)
    net = _net(activation="relu")
    with pytest.raises(fastbp.DivergenceError, match="epoch 2"):
        net.fit(chunks, epochs=3, batch_size=4, lr=1e-7, seed=0,
                lr_schedule=lambda epoch, lr0, metric=None: lr0 if epoch < 1 else 1e6)
    assert _same(ref, net)


# -------------------------------------------------------------------- memory
def test_fit_of_a_large_memmap_allocates_about_one_chunk(tmp_path):
    X, y = _data(n=100_000, d=8, m=1)
    mx, my = _memmap(tmp_path, X), _memmap(tmp_path, y, "y.npy")
    chunk_bytes = 1000 * 8 * 8  # 64 kB of X per chunk; the file holds 6.4 MB
    net = _net(sizes=(8, 8, 1))
    net.fit(mx[:2000], my[:2000], batch_size=50, chunk_size=1000)  # warm up
    tracemalloc.start()
    try:
        net.fit(mx, my, epochs=1, batch_size=50, chunk_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * chunk_bytes, peak
    assert X.nbytes > 80 * chunk_bytes


# ------------------------------------------------------------------- sklearn
def test_sklearn_partial_fit_on_memmap_chunks(tmp_path):
    X, y = _data(m=1)
    y = y.ravel()
    mx, my = _memmap(tmp_path, X), _memmap(tmp_path, y, "y.npy")
    kw = dict(hidden_layer_sizes=(8,), random_state=0, batch_size=16)
    a = fastbp.sklearn.MLPRegressor(**kw)
    b = fastbp.sklearn.MLPRegressor(**kw)
    for s in range(0, X.shape[0], 100):
        a.partial_fit(mx[s:s + 100], my[s:s + 100])
        b.partial_fit(X[s:s + 100], y[s:s + 100])
    assert np.array_equal(a.predict(X), b.predict(X))
    assert a.t_ == b.t_ == X.shape[0]


@pytest.mark.parametrize("mode", ["r", "r+", "c"])
def test_releasing_mapped_pages_never_loses_data(tmp_path, mode):
    """Pages of shared mappings are dropped after copying; unflushed writes to an
    ``r+`` map and private changes to a copy-on-write (``c``) map must survive."""
    X, y = _data()
    _memmap(tmp_path, X)
    mx = np.load(tmp_path / "X.npy", mmap_mode=mode)
    if mode != "r":
        mx[::7] *= 2.0  # not flushed
        X[::7] *= 2.0
    ref, net = _net(), _net()
    ref.fit(X, y, epochs=2, batch_size=8, seed=6, chunk_size=32)
    net.fit(mx, y, epochs=2, batch_size=8, seed=6, chunk_size=32)
    assert _same(ref, net)
    assert np.array_equal(np.asarray(mx), X)


def test_read_copies_memmap_rows_in_release_blocks(tmp_path, monkeypatch):
    X, _ = _data(n=1000)
    mx = _memmap(tmp_path, X.astype(np.float32))
    monkeypatch.setattr(stream, "RELEASE_BYTES", 7 * 5 * 4)  # 7 rows per block
    part = stream._read(mx, 3, 503, np.float64)
    assert part.dtype == np.float64 and part.flags.c_contiguous
    assert np.array_equal(part, X.astype(np.float32)[3:503].astype(np.float64))


def test_classification_labels_and_row_sliceable_objects(tmp_path):
    """Integer labels in a memmap; any object with .shape and row slicing (h5py-like)."""
    X, _ = _data()
    labels = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)

    class Rows:  # neither ndarray nor memmap: read only through shape and slicing
        def __init__(self, a):
            self.a, self.shape = a, a.shape

        def __getitem__(self, key):
            return self.a[key].copy()

    kw = dict(loss="cross_entropy", sizes=(5, 8, 3))
    ref, a, b = _net(**kw), _net(**kw), _net(**kw)
    ref.fit(X, labels, epochs=2, batch_size=16, shuffle=False)
    a.fit(_memmap(tmp_path, X), _memmap(tmp_path, labels, "y.npy"), epochs=2, batch_size=16,
          shuffle=False, chunk_size=48)
    b.fit(Rows(X), Rows(labels), epochs=2, batch_size=16, shuffle=False, chunk_size=48)
    assert _same(ref, a) and _same(ref, b)
    bad = labels.copy()
    bad[200] = 3
    with pytest.raises(ValueError, match=r"y of chunk 4 \(rows 192-239\) has labels outside"):
        _net(**kw).fit(Rows(X), Rows(bad), batch_size=16, chunk_size=48, shuffle=False)
