"""fastbp through its public API: ``fastbp.MLP(sizes, activation=...,
output=..., loss=..., dtype="float32", seed=0)`` and one
``net.fit(X, y, epochs=1, batch_size=B, lr=lr, shuffle=False)`` per epoch;
only ``fit`` is timed (the first call, which JIT-compiles, is the warm-up).

``Trainer.engine`` names the code path fastbp takes for the case (see
``engine_of``), reported per row by ``compare.py``."""

import numpy as np

NAME = "fastbp"


def available():
    try:
        import fastbp

        fastbp.MLP  # noqa: B018
    except Exception as e:
        return False, "not importable (%s: %s)" % (type(e).__name__, e)
    return True, ""


def versions():
    import fastbp

    return {"fastbp": getattr(fastbp, "__version__", "?")}


def _flat_layout(net):
    """(flat params array, layout table) when the net exposes fastbp's flat
    parameter vector (see fastbp/spec.py), else (None, None)."""
    for pname in ("params", "params_", "_params", "theta"):
        p = getattr(net, pname, None)
        if isinstance(p, np.ndarray) and p.ndim == 1:
            for lname in ("layout", "layout_", "_layout"):
                lay = getattr(net, lname, None)
                if isinstance(lay, np.ndarray) and lay.ndim == 2 and lay.shape[1] >= 3:
                    return p, lay
    return None, None


def engine_of(net, batch, lr, history=None):
    """Name of the engine fastbp trains ``net`` with at this batch size under
    plain SGD: a name fastbp reports itself (``history.engine`` or
    ``net.engine_``, a string, if a version has them), else fastbp's own rule
    (``fastbp._engine.choose``: "generated", "small" or "general"), else "?"
    and why -- never an exception (the API may move)."""
    for obj, attr in ((history, "engine"), (net, "engine_")):
        v = getattr(obj, attr, None) if obj is not None else None
        if isinstance(v, str) and v:
            return v
    try:
        from fastbp import _engine
        from fastbp.optim import make_optimizer

        opt = make_optimizer("sgd", lr).bind(net.n_params, net.dtype)
        return _engine.choose("net", _engine.Case(net._loss_code, opt.code, opt.hyper,
                                                  net._layout, net._lparams, batch, False,
                                                  False))
    except Exception as e:  # the internals moved: say so, keep benchmarking
        return "? (%s)" % type(e).__name__


class Trainer:
    note = ""
    engine = "?"

    def __init__(self, case, X, y, init):
        import fastbp

        self.net = fastbp.MLP(list(case.sizes), activation=case.hidden,
                              output=case.output, loss=case.loss,
                              dtype="float32", seed=0)
        self.case = case
        self.X = np.ascontiguousarray(X, np.float32)
        if case.loss == "mse":
            self.y = np.ascontiguousarray(y, np.float32).reshape(len(y), -1)
        else:
            self.y = np.ascontiguousarray(y, np.int64)
        flat, lay = _flat_layout(self.net)
        if flat is not None:
            for (W, b), (n_in, n_out, off) in zip(init, lay[:, :3]):
                n_in, n_out, off = int(n_in), int(n_out), int(off)
                assert W.shape == (n_in, n_out)
                flat[off:off + n_in * n_out] = W.T.ravel()
                flat[off + n_in * n_out: off + n_in * n_out + n_out] = b
        else:
            self.note = "own initial weights (no flat params found)"
        self.history = None

    def epoch(self):
        self.history = self.net.fit(self.X, self.y, epochs=1,
                                    batch_size=self.case.batch,
                                    lr=self.case.lr, shuffle=False)
        if self.engine == "?":
            self.engine = engine_of(self.net, self.case.batch, self.case.lr, self.history)

    def params(self):
        flat, lay = _flat_layout(self.net)
        if flat is None:
            return None
        out = []
        for n_in, n_out, off in lay[:, :3]:
            n_in, n_out, off = int(n_in), int(n_out), int(off)
            W = flat[off:off + n_in * n_out].reshape(n_out, n_in).T.copy()
            b = flat[off + n_in * n_out: off + n_in * n_out + n_out].copy()
            out.append((W, b))
        return out


def make_trainer(case, X, y, init):
    return Trainer(case, X, y, init)
