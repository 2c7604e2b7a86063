"""Full-batch L-BFGS through ``scipy.optimize.minimize`` on the fused loss-and-gradient kernel.

For small problems where the whole data set fits one batch, quasi-Newton
steps converge in far fewer passes than SGD (scikit-learn's MLP default
solver).  Each function evaluation is one compiled forward+backward pass.
"""

import time

import numpy as np

from ._validate import check_float
from .history import History
from .spec import layers
from .metrics import score


def fit_lbfgs(net, X, y, max_iter, lr, tol, opt_kwargs, Xv=None, yv=None, sw=None, swv=None):
    """Minimise the mean loss (+ ``weight_decay``/2 ||W||^2) with L-BFGS-B.

    ``max_iter`` bounds the iterations (``epochs`` in ``fit``); one history
    entry per iteration.  ``lr`` is ignored.  ``sw``/``swv``: sample weights
    of the training / validation data (weighted mean losses).  Dropout and batch norm are not
    supported (the objective must be deterministic).
    """
    if any(net.dropout) or any(net.batch_norm):
        raise ValueError("optimizer='lbfgs' needs a deterministic objective: "
                         "use it without dropout and batch_norm")
    wd = check_float(opt_kwargs.pop("weight_decay", 0.0), "weight_decay", low=0.0)
    if opt_kwargs:
        raise TypeError(f"optimizer='lbfgs' takes only weight_decay, got {sorted(opt_kwargs)}")
    mask = np.zeros(net.n_params, dtype=bool)
    for layer in layers(net._layout):
        mask[layer.weights] = True
    hist = History()

    def fun(p):
        net._params[:] = p
        loss, g = net.gradient(X, y, sample_weight=sw)
        g = g.astype(np.float64)
        w = p * mask
        return loss + 0.5 * wd * float(w @ w), g + wd * w

    t = [time.perf_counter()]

    def record(p):
        net._params[:] = p
        now = time.perf_counter()
        hist.loss.append(net.evaluate(X, y, sample_weight=sw))
        hist.lr.append(float("nan"))
        hist.epoch_time.append(now - t[0])
        hist.samples += X.shape[0]
        if Xv is not None:
            hist.val_loss.append(net.evaluate(Xv, yv, sample_weight=swv))
            hist.val_score.append(score(net, Xv, yv))
        t[0] = time.perf_counter()

    if max_iter > 0:
        from scipy.optimize import minimize  # here: scipy.optimize costs 0.2 s at import

        res = minimize(fun, net._params.astype(np.float64), jac=True, method="L-BFGS-B",
                       callback=record, options={"maxiter": max_iter, "ftol": tol * 1e-3,
                                                 "gtol": 1e-10})
        net._params[:] = res.x
        hist.stop_reason = None if res.nit >= max_iter else "converged"
        hist.message = str(res.message)
    net.history_ = hist
    return hist
