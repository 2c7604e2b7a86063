"""Sparse-input training speed: fastbp on CSR vs fastbp dense vs PyTorch sparse mm.

Not an asv suite (its functions are ``run_*``, not ``time_*``).  Run::

    python -m bench.sparse_bench                 # 100k features, 0.1 % dense, 4096 rows
    python -m bench.sparse_bench --rows 2000 --dense-rows 256 --threads 1

Data: a TF-IDF-like CSR matrix -- column frequencies follow a Zipf-like law,
values ``log(1 + count) * idf``, rows L2-normalised, float32 -- and 10
classes from a random linear model of it.  Network ``n_features-256-10``,
ReLU, softmax + cross-entropy, plain SGD, batch 32, shuffled.  Each figure is
samples/s of one training epoch after a warm-up epoch (compile time
excluded), the best of ``--repeat`` epochs:

* ``fastbp sparse``: ``MLP.fit`` on the CSR matrix (first layer over the
  non-zeros only; the batches' rows gathered inside the compiled epoch).
* ``fastbp dense``: the same network on the first ``--dense-rows`` rows
  densified (a dense epoch costs ``2 * n_features * 256`` multiply-adds per
  sample, so fewer rows suffice; samples/s is per sample either way).
* ``torch sparse``: a PyTorch training loop over the same batches,
  ``torch.sparse.mm(X_batch, W1)`` with ``X_batch`` a sparse COO (or CSR,
  ``--torch-layout csr``) tensor, autograd, ``torch.optim.SGD``.  Its batch
  tensors are built before the timed epoch (in torch's favour: fastbp's
  figure includes gathering rows).
"""

import argparse
import time

import numpy as np
import scipy.sparse as sp

import fastbp

HIDDEN, CLASSES, BATCH, LR = 256, 10, 32, 0.05


def make_tfidf(n_rows, n_features, density, seed=0):
    """A TF-IDF-like CSR matrix (float32) and class labels."""
    rng = np.random.default_rng(seed)
    per_row = max(1, int(round(density * n_features)))
    p = 1.0 / (np.arange(n_features) + 20.0)
    p /= p.sum()
    cols = rng.choice(n_features, size=n_rows * per_row, p=p)
    rows = np.repeat(np.arange(n_rows), per_row)
    counts = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols)),
                           shape=(n_rows, n_features))
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=n_features)
    idf = np.log((1.0 + n_rows) / (1.0 + df)) + 1.0
    X = counts.copy()
    X.data = (np.log1p(counts.data) * idf[counts.indices]).astype(np.float32)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags((1.0 / np.maximum(norms, 1e-12)).astype(np.float32)) @ X
    X = X.tocsr().astype(np.float32)
    R = rng.standard_normal((n_features, CLASSES)).astype(np.float32)
    y = np.asarray((X @ R).argmax(axis=1)).ravel().astype(np.int64)
    return X, y


def _net(n_features, seed=0):
    return fastbp.MLP([n_features, HIDDEN, CLASSES], activation="relu", loss="cross_entropy",
                      dtype="float32", seed=seed)


def _best_rate(fn, n, repeat):
    fn()  # warm-up: compile, or load kernels from the cache
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def run_fastbp_sparse(X, y, repeat=3):
    """Samples/s of one ``MLP.fit`` epoch on the CSR matrix ``X``."""
    net = _net(X.shape[1])
    return _best_rate(lambda: net.fit(X, y, epochs=1, batch_size=BATCH, lr=LR, shuffle=True),
                      X.shape[0], repeat)


def run_fastbp_dense(Xd, y, repeat=3):
    """Samples/s of one ``MLP.fit`` epoch on the dense array ``Xd``."""
    net = _net(Xd.shape[1])
    return _best_rate(lambda: net.fit(Xd, y, epochs=1, batch_size=BATCH, lr=LR, shuffle=True),
                      Xd.shape[0], repeat)


def run_torch_sparse(X, y, repeat=3, layout="coo", threads=None):
    """Samples/s of one PyTorch SGD epoch with ``torch.sparse.mm`` in the first layer."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    n, k = X.shape
    g = torch.Generator().manual_seed(0)
    W1 = torch.nn.Parameter(torch.randn(k, HIDDEN, generator=g) * np.sqrt(2.0 / k))
    b1 = torch.nn.Parameter(torch.zeros(HIDDEN))
    out = torch.nn.Linear(HIDDEN, CLASSES)
    opt = torch.optim.SGD([W1, b1, *out.parameters()], lr=LR)
    order = np.random.default_rng(0).permutation(n)
    batches = []
    for s in range(0, n, BATCH):
        idx = order[s:s + BATCH]
        Xb = X[idx].tocoo()
        t = torch.sparse_coo_tensor(np.vstack([Xb.row, Xb.col]), Xb.data, Xb.shape)
        t = t.coalesce() if layout == "coo" else t.to_sparse_csr()
        batches.append((t, torch.from_numpy(y[idx])))

    def epoch():
        for Xb, yb in batches:
            opt.zero_grad()
            h = torch.relu(torch.sparse.mm(Xb, W1) + b1)
            loss = torch.nn.functional.cross_entropy(out(h), yb)
            loss.backward()
            opt.step()

    return _best_rate(epoch, n, repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--density", type=float, default=0.001)
    ap.add_argument("--dense-rows", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own)")
    ap.add_argument("--torch-layout", choices=["coo", "csr"], default="coo")
    args = ap.parse_args(argv)
    X, y = make_tfidf(args.rows, args.features, args.density)
    print(f"data: {X.shape[0]} x {X.shape[1]} CSR, {X.nnz} non-zeros "
          f"({100 * X.nnz / (X.shape[0] * X.shape[1]):.3f} %), float32; network "
          f"{X.shape[1]}-{HIDDEN}-{CLASSES}, batch {BATCH}, plain SGD, shuffled")
    rows = [("fastbp sparse (CSR)", run_fastbp_sparse(X, y, args.repeat))]
    m = min(args.dense_rows, X.shape[0])
    if m > 0:
        rows.append((f"fastbp dense ({m} rows densified)",
                     run_fastbp_dense(X[:m].toarray(), y[:m], args.repeat)))
    try:
        import torch
        rows.append((f"torch {torch.__version__} sparse.mm ({args.torch_layout}) + SGD",
                     run_torch_sparse(X, y, args.repeat, args.torch_layout, args.threads)))
    except ImportError as exc:
        rows.append((f"torch: not available ({exc})", float("nan")))
    for name, rate in rows:
        print(f"{name:45s} {rate:12,.0f} samples/s")


if __name__ == "__main__":
    main()
