"""The two bundles of arrays every kernel takes.

``Model`` is the network: flat parameters, the layout table (see
``fastbp.spec``), per-layer float settings, batch-norm running statistics,
the training-step counter (drives dropout masks) and the dropout seed.
``Work`` is the preallocated workspace for batches of up to ``cap`` rows.
Both are plain namedtuples of arrays and integers, so user ``@njit`` code can
hold and pass them.
"""

from collections import namedtuple

Model = namedtuple("Model", ["params", "layout", "lparams", "stats", "counter", "seed"])
Work = namedtuple("Work", ["acts", "pre", "deltas", "grad", "mask", "bnx", "bninv", "bnstat",
                           "cap"])
