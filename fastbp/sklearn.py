"""scikit-learn estimators backed by :class:`fastbp.MLP`.

:class:`MLPClassifier` and :class:`MLPRegressor` take scikit-learn's
parameter names (those of :class:`sklearn.neural_network.MLPClassifier` /
``MLPRegressor``) wherever fastbp has the same notion, and pass
scikit-learn's ``check_estimator``: they work in pipelines, grid searches,
cross-validation, can be cloned and pickled.  The trained network is kept
public as ``net_`` for everything fastbp offers beyond scikit-learn.

Parameter mapping (scikit-learn name -> fastbp)
-----------------------------------------------
``hidden_layer_sizes``
    ``MLP(sizes=[n_features, *hidden_layer_sizes, n_outputs])``.
``activation``
    Hidden activation.  scikit-learn's ``"logistic"`` is fastbp's
    ``"sigmoid"``; fastbp's ``leaky_relu``, ``elu``, ``softplus`` and
    ``gelu`` are accepted too.  Initialisation is scikit-learn's: weights
    *and* biases uniform in ``+-sqrt(factor / (fan_in + fan_out))``
    (``factor`` 2 for logistic, else 6), drawn from ``random_state`` in
    scikit-learn's order, so the same ``random_state`` starts from the same
    weights (for binary problems: the same initial function, see below) and,
    with every other default matching, regression and multi-class training
    follow scikit-learn's trajectory to about 1e-5 (``tests/test_sklearn_parity.py``).
``solver``
    ``"sgd"``, ``"adam"``, ``"lbfgs"`` as in scikit-learn, plus fastbp's
    ``"adamw"`` (Adam with decoupled weight decay) and ``"rprop"``
    (full-batch iRPROP-).  ``lbfgs`` runs fastbp's full-batch L-BFGS-B
    (scipy) and cannot be combined with ``dropout`` or ``batch_norm``.
``alpha``
    L2 penalty with scikit-learn's meaning: scikit-learn adds
    ``alpha/2 * ||W||^2 / n_batch`` to every batch loss, i.e.
    ``alpha * W / n_batch`` to the batch-mean gradient; fastbp's
    ``weight_decay`` adds ``weight_decay * W`` to the batch-mean gradient, so
    ``weight_decay = alpha / batch_size`` for the mini-batch solvers and
    ``alpha / n_samples`` for the full-batch ones (lbfgs, rprop).  As in
    both libraries, only weights are penalised, not biases or batch-norm
    parameters.  (A short last batch gets ``alpha / batch_size`` rather
    than ``alpha / len(last batch)``.)  For ``solver="adamw"`` ``alpha`` is
    the decoupled decay coefficient as is: ``W <- W (1 - lr * alpha)``.
``batch_size``
    ``"auto"`` is ``min(200, n_samples)``; larger values are clipped to
    ``n_samples`` with a warning, as in scikit-learn.
``learning_rate``, ``learning_rate_init``, ``power_t``
    As in scikit-learn, the schedule applies to ``solver="sgd"`` only and
    is applied between epochs: ``"constant"``; ``"invscaling"``:
    ``lr = learning_rate_init / (t + 1) ** power_t`` with ``t`` the number
    of training samples seen so far (``t_``), scikit-learn's exact rule;
    ``"adaptive"``: scikit-learn's rule, equivalent to a reduce-on-plateau
    schedule with ``factor=0.2`` and ``patience=n_iter_no_change``: each
    time the stopping criterion below fires, the rate is divided by 5
    instead of stopping, and training stops once the rate is ``<= 1e-6``.
``momentum``, ``nesterovs_momentum``
    fastbp's SGD ``momentum`` / ``nesterov`` (PyTorch's convention, the
    same iterates as scikit-learn's for a constant rate); ``momentum`` must
    be ``< 1``.  Nesterov is used only when ``momentum > 0``.
``beta_1``, ``beta_2``, ``epsilon``
    Adam's ``betas`` and ``eps``.
``max_iter``, ``tol``, ``n_iter_no_change``, ``early_stopping``, ``validation_fraction``
    scikit-learn's semantics, implemented here around fastbp's compiled
    epochs: ``max_iter`` epochs at most (iterations for lbfgs); training
    stops when the training loss (with ``early_stopping``: the validation
    score -- accuracy or R^2 -- on a held-out ``validation_fraction``,
    stratified for single-label classification) has not improved by
    ``tol`` for more than ``n_iter_no_change`` consecutive epochs, and a
    :class:`~sklearn.exceptions.ConvergenceWarning` is issued when
    ``max_iter`` is reached first.  With ``early_stopping`` the parameters
    of the best validation epoch are restored at the end.
``shuffle``, ``random_state``, ``verbose``, ``warm_start``
    As in scikit-learn.  ``random_state`` seeds the network (initial
    weights, shuffling, dropout masks) and the validation split.
``sample_weight`` (``fit``, ``partial_fit``), ``class_weight`` (classifier)
    As in scikit-learn: each batch minimises the weighted mean loss
    ``sum_i w_i E_i / sum_i w_i`` (fastbp's ``sample_weight``) and the L2
    penalty is divided by the weight sum instead of the sample count
    (exactly ``sum(w)`` for full-batch training -- lbfgs, rprop, and the
    ``"auto"`` batch size on fewer than 200 samples -- and the expected
    batch weight ``batch_size * mean(w)`` for mini-batches); the
    early-stopping split keeps each sample's weight, and the validation
    score is weighted.  ``class_weight`` (a dict ``{class: weight}`` or
    ``"balanced"``) multiplies the sample weights by
    :func:`sklearn.utils.class_weight.compute_sample_weight`;
    ``partial_fit`` accepts a dict only (``"balanced"`` would depend on
    each call's batch).  A weight of 0 is the same as leaving the sample
    out, except that it still takes part in dropout masks, batch-norm batch
    statistics and the batch composition.
``dropout``, ``batch_norm``, ``clip_norm`` (fastbp extras)
    Hidden-layer inverted dropout rate(s), batch normalisation of the
    hidden layers, and global gradient-norm clipping; see :class:`fastbp.MLP`.

Outputs and losses
------------------
* Classification with one label per sample (binary included): softmax
  outputs, one per class (so ``n_outputs_`` is 2 for binary problems where
  scikit-learn has 1 logistic output), cross-entropy on integer class
  codes; ``out_activation_ == "softmax"``.  A binary network starts as
  scikit-learn's (class 0's unit at zero, class 1's drawn as scikit-learn's
  logistic unit); under Adam its logit difference then moves about twice as
  fast, so binary results stay close to scikit-learn's but not equal.
* Multi-label classification (``y`` a 2-D 0/1 indicator matrix): sigmoid
  outputs and binary cross-entropy; ``predict`` thresholds the
  probabilities at 0.5; ``out_activation_ == "logistic"``.
* Regression: identity outputs and squared error by default; ``y`` may
  be 2-D (multi-output).  ``loss=`` also takes ``poisson`` (exp output, as
  in scikit-learn) and fastbp's ``huber``, ``absolute_error``, ``quantile``.
  A 1-D ``y`` (or one column) gives 1-D predictions.

``loss_curve_`` holds scikit-learn's loss per epoch: the mean over the
epoch's batches of the batch loss, evaluated before each update (as
scikit-learn does), plus the L2 penalty ``alpha/2 ||W||^2 * n_batches / n``
-- evaluated with the epoch's starting weights, so it equals
scikit-learn's exactly for a single batch and approximately otherwise.
For regression the loss is scikit-learn's ``squared_error``,
``mean((y - p)^2) / 2`` over samples *and* outputs (fastbp's own ``mse``
sums over outputs; the gradients of the two libraries agree, scikit-learn's
reported loss is the one divided by ``n_outputs``).  For ``lbfgs``
(scikit-learn records no curve there) ``loss_curve_`` is the data loss at
each iterate and ``loss_`` the final objective with the penalty.

Attributes shared with scikit-learn: ``classes_``, ``loss_``,
``loss_curve_``, ``best_loss_``, ``validation_scores_``,
``best_validation_score_``, ``t_``, ``n_iter_`` (epochs run by the last
``fit`` call, as in scikit-learn; ``len(loss_curve_)`` accumulates over
``warm_start`` fits and ``partial_fit`` calls), ``n_layers_``,
``n_outputs_``, ``out_activation_``, ``n_features_in_``,
``feature_names_in_``, and ``coefs_`` / ``intercepts_``: per layer, the
weights shaped ``(n_in, n_out)`` as in scikit-learn.  fastbp stores
``(n_out, n_in)`` matrices, so ``coefs_[i]`` is the *transposed view*
``net_.weights[i].T`` of the live parameters: like scikit-learn's arrays
it changes when training continues and writing into it changes the
network (take ``.copy()`` to keep a snapshot).

Precision: float32 ``X`` trains a float32 network (``predict_proba`` and the
regressor's ``predict`` then return float32); any other input is
converted to float64.  Later ``warm_start`` fits and ``partial_fit`` calls
convert ``X`` to the network's precision.  The architecture (layer sizes,
activation, dropout, batch norm, precision) is fixed by the first fit;
``warm_start`` and ``partial_fit`` continue training that network.

Sparse input
------------
``X`` may be scipy.sparse (any format) in ``fit``, ``partial_fit`` and
``predict``: converted to CSR once and fed to the first layer through kernels
that touch only the non-zeros (see :class:`fastbp.MLP`); it is never densified.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                      check_classification_targets, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                      validate_data)

from .network import MLP
from .optim import OPTIMIZERS, RPROP, SGD, Adam, AdamW
from .spec import HIDDEN_ACTIVATIONS

__all__ = ["MLPClassifier", "MLPRegressor"]

#: fastbp's hidden activations, plus scikit-learn's name "logistic" for "sigmoid".
_HIDDEN_ACTIVATIONS = set(HIDDEN_ACTIVATIONS) | {"logistic"}
#: fastbp's optimizers, plus the full-batch L-BFGS-B of ``fastbp.lbfgs``.
_SOLVERS = set(OPTIMIZERS) | {"lbfgs"}

#: Sparse X of any format reaches the network as CSR (never densified).
_SPARSE = "csr"


def _glorot_init(sizes, activation, rs, binary_softmax=False):
    """scikit-learn's initial ``(coef, intercept)`` per layer, ``coef`` shaped ``(n_in, n_out)``.

    As ``MLPClassifier._init_coef``: weights and biases uniform in
    ``+-sqrt(factor / (fan_in + fan_out))``, ``factor`` 2 for logistic hidden
    units and 6 otherwise, drawn from ``rs`` layer by layer (weights, then
    biases), so the same ``random_state`` gives scikit-learn's very weights.
    ``binary_softmax``: the output layer is fastbp's two softmax units where
    scikit-learn has one logistic unit ``sigmoid(z)``; scikit-learn's unit is
    drawn and becomes class 1's, class 0's stays at zero, so the network
    starts as the same function (``softmax(0, z)[1] == sigmoid(z)``).
    """
    factor = 2.0 if activation == "logistic" else 6.0
    out = []
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = l == len(sizes) - 2
        draw = 1 if (last and binary_softmax) else fan_out
        bound = np.sqrt(factor / (fan_in + draw))
        coef = rs.uniform(-bound, bound, (fan_in, draw))
        intercept = rs.uniform(-bound, bound, draw)
        if draw != fan_out:
            coef = np.hstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros_like(intercept), intercept])
        out.append((coef, intercept))
    return out


def _is_stochastic(est):
    return est.solver != "lbfgs"


class _BaseMLP(BaseEstimator):
    """Shared implementation of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(_HIDDEN_ACTIVATIONS)],
        "solver": [StrOptions(_SOLVERS)],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "batch_norm": ["boolean", "array-like"],
        "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, dropout=0.0,
                 batch_norm=False, clip_norm=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.clip_norm = clip_norm

    # ------------------------------------------------------------ subclass hooks
    # _validate_input(X, y, incremental, reset) -> X, targets for the network
    # _net_loss, _out_activation, _n_outputs(targets), _score_targets(X, T)

    # ---------------------------------------------------------------- helpers
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        h = list(h) if hasattr(h, "__iter__") else [h]
        if any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (Integral, np.integer))
               or s < 1 for s in h):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {h}")
        return [int(s) for s in h]

    def _loss_scale(self):
        """Factor turning fastbp's batch-mean loss into scikit-learn's."""
        return 1.0

    def _loss_kwargs(self):
        """Loss settings passed to the network (the regressor's huber_delta, quantile)."""
        return {}

    def _sq_weights(self):
        """``sum ||W||^2`` over the layers (the L2-penalised parameters)."""
        if self.alpha == 0 or self.solver == "adamw":
            return 0.0
        return sum(float(np.dot(w.ravel(), w.ravel())) for w in self.net_.weights)

    def _initialize(self, X, T, rs):
        hidden = self._hidden_sizes()
        n_out = self._n_outputs(T)
        sizes = [X.shape[1], *hidden, n_out]
        # scikit-learn's initial weights first (its draws from random_state, in its order)
        init = _glorot_init(sizes, self.activation, rs, binary_softmax=self._binary_softmax(T))
        seed = int(rs.randint(np.iinfo(np.int32).max))
        activation = "sigmoid" if self.activation == "logistic" else self.activation
        self.net_ = MLP(sizes, activation=activation, loss=self._net_loss, dtype=X.dtype,
                        seed=seed, dropout=self.dropout, batch_norm=self.batch_norm,
                        **self._loss_kwargs())
        for (W, b), (coef, intercept) in zip(zip(self.net_.weights, self.net_.biases), init):
            W[:] = coef.T
            b[:] = intercept
        self.n_outputs_ = n_out
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = self._out_activation
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if _is_stochastic(self):
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _sample_weight(self, X, y, sample_weight, incremental):
        """Validated float64 weights (``None`` when unweighted); class weights applied."""
        class_weight = getattr(self, "class_weight", None)
        if sample_weight is None and class_weight is None:
            return None
        sw = (np.ones(X.shape[0]) if sample_weight is None else
              _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True,
                                   copy=True))
        if class_weight is not None:
            if incremental and isinstance(class_weight, str):
                raise ValueError("class_weight='balanced' is not supported for partial_fit "
                                 "(it would depend on each call's batch); pass a dict, e.g. "
                                 "from sklearn.utils.class_weight.compute_class_weight")
            labels = self.classes_[y] if y.ndim == 1 else y
            sw = sw * compute_sample_weight(class_weight, labels)
        if not np.any(sw > 0):
            raise ValueError("Sample weights must contain at least one non-zero number "
                             "(every weight is zero)")
        return sw

    def _fit(self, X, y, incremental=False, sample_weight=None):
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        X, T = self._validate_input(X, y, incremental, reset=first_pass)
        sw = self._sample_weight(X, T, sample_weight, incremental)
        rs = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X, T, rs)
        else:
            if self._n_outputs(T) != self.n_outputs_:
                raise ValueError(f"y has {self._n_outputs(T)} outputs but the fitted network "
                                 f"has {self.n_outputs_}; refit without warm_start")
            dt = self.net_.dtype
            X = X.astype(dt, copy=False)
            if T.dtype.kind == "f":
                T = T.astype(dt, copy=False)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, T, sw)
        else:
            self._fit_stochastic(X, T, rs, incremental, sw)
        return self

    def _fit_lbfgs(self, X, T, sw=None):
        n = X.shape[0]
        wn = n if sw is None else float(sw.sum())  # scikit-learn divides the penalty by sum(w)
        hist = self.net_.fit(X, T, epochs=self.max_iter, optimizer="lbfgs", tol=self.tol,
                             weight_decay=self.alpha / wn, sample_weight=sw)
        scale = self._loss_scale()
        # scikit-learn keeps no curve for lbfgs: here the data loss per iteration
        self.loss_curve_.extend(loss * scale for loss in hist.loss)
        self.n_iter_ = hist.epochs
        self.t_ += n * hist.epochs
        # the final objective, penalty included (scikit-learn's loss_)
        self.loss_ = (self.net_.evaluate(X, T, sample_weight=sw) * scale
                      + 0.5 * self.alpha * self._sq_weights() / wn)
        if hist.stop_reason is None:
            warnings.warn(f"lbfgs failed to converge after {self.max_iter} iteration(s) "
                          "(max_iter reached); increase max_iter or scale the data",
                          ConvergenceWarning, stacklevel=3)

    def _make_optimizer(self, batch_size, n):
        lr, clip = self.learning_rate_init, self.clip_norm
        wd = self.alpha / batch_size
        if self.solver == "sgd":
            return SGD(lr, momentum=self.momentum,
                       nesterov=bool(self.nesterovs_momentum and self.momentum > 0),
                       weight_decay=wd, clip_norm=clip)
        if self.solver == "adam":
            return Adam(lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                        weight_decay=wd, clip_norm=clip)
        if self.solver == "adamw":
            return AdamW(lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                         weight_decay=self.alpha, clip_norm=clip)
        return RPROP(lr, weight_decay=self.alpha / n, clip_norm=clip)

    def _fit_stochastic(self, X, T, rs, incremental, sw=None):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        sw_val = None
        if early_stopping:
            stratify = T if T.ndim == 1 and self._is_single_label() else None
            if sw is None:
                X, X_val, T, T_val = train_test_split(X, T, random_state=rs,
                                                      test_size=self.validation_fraction,
                                                      stratify=stratify)
            else:
                X, X_val, T, T_val, sw, sw_val = train_test_split(
                    X, T, sw, random_state=rs, test_size=self.validation_fraction,
                    stratify=stratify)
                if not np.any(sw > 0):
                    raise ValueError("the sample weights of the training part of the "
                                     "early-stopping split are all zero; change "
                                     "random_state or validation_fraction")
                if not np.any(sw_val > 0):
                    sw_val = None
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n))
        if self.solver == "rprop":
            batch_size = n
        n_batches = -(-n // batch_size)
        # the L2 penalty is divided by the (expected) batch weight, as scikit-learn does
        wscale = 1.0 if sw is None else float(sw.mean())
        best = [None]  # parameters and running statistics of the best validation epoch
        net = self.net_
        opt = net.optimizer if incremental else None
        if opt is None:
            opt = self._make_optimizer(batch_size * wscale, n * wscale)
        elif self.solver != "adamw":  # continue; the L2 scaling follows this call's batches
            opt.weight_decay = self.alpha / (batch_size * wscale)
        schedule_sgd = self.solver == "sgd"
        lr_box = [opt.lr]
        scale = self._loss_scale()
        stopped = [False]
        penalty = 0.5 * self.alpha * n_batches / (n * wscale)
        sq_start = [self._sq_weights()]

        def schedule(epoch, lr0, metric):
            return lr_box[0]

        def after_epoch(net, epoch, hist):
            # the penalty with the epoch's starting weights (exact for one batch)
            loss = hist.loss[-1] * scale + penalty * sq_start[0]
            sq_start[0] = self._sq_weights()
            self.loss_curve_.append(loss)
            self.loss_ = loss
            self.n_iter_ += 1
            self.t_ += n
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if early_stopping:
                val = self._score_targets(X_val, T_val, sw_val)
                self.validation_scores_.append(val)
                if self.verbose:
                    print(f"Validation score: {val:f}")
                if val < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if val > self.best_validation_score_:
                    self.best_validation_score_ = val
                    best[0] = (net.params.copy(),
                                  [None if m is None else m.copy() for m in net.running_mean],
                                  [None if v is None else v.copy() for v in net.running_var])
            else:
                if loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if loss < self.best_loss_:
                    self.best_loss_ = loss
            if schedule_sgd and self.learning_rate == "invscaling":
                lr_box[0] = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                msg = (f"{what} did not improve more than tol={self.tol:f} for "
                       f"{self.n_iter_no_change} consecutive epochs.")
                if schedule_sgd and self.learning_rate == "adaptive" and lr_box[0] > 1e-6:
                    lr_box[0] /= 5.0
                    self._no_improvement_count = 0
                    if self.verbose:
                        print(msg + f" Setting learning rate to {lr_box[0]:f}")
                else:
                    if self.verbose:
                        print(msg + " Stopping.")
                    stopped[0] = True
                    return True
            return False

        self.n_iter_ = 0
        epochs = 1 if incremental else self.max_iter
        net.fit(X, T, epochs=epochs, batch_size=batch_size, shuffle=self.shuffle,
                optimizer=opt, early_stopping=False, lr_schedule=schedule,
                callbacks=(after_epoch,), sample_weight=sw)
        if early_stopping and best[0] is not None:
            params, means, variances = best[0]
            net.params = params
            for dst, src in zip(net.running_mean + net.running_var, means + variances):
                if dst is not None:
                    dst[:] = src
        if not incremental and not stopped[0] and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)

    def _is_single_label(self):
        return False

    def _binary_softmax(self, T):
        """Whether the output is two softmax units where scikit-learn has one logistic unit."""
        return False

    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32),
                          accept_sparse=_SPARSE)
        return self.net_.predict(X)

    # ------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification; a 2-D 0/1 indicator matrix for
            multi-label) or real targets (regression).
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights (``>= 0``): the weighted mean loss, as in
            scikit-learn (see :mod:`fastbp.sklearn`).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @property
    def coefs_(self):
        """Per-layer weights, shape ``(n_in, n_out)``: transposed views of ``net_.weights``."""
        check_is_fitted(self)
        return [w.T for w in self.net_.weights]

    @property
    def intercepts_(self):
        """Per-layer biases: views of ``net_.biases``."""
        check_is_fitted(self)
        return list(self.net_.biases)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastbp's compiled backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` (same
    parameter names and defaults) with fastbp's extras ``dropout``,
    ``batch_norm``, ``clip_norm``, ``class_weight`` (a dict ``{class: weight}``
    or ``"balanced"``, scikit-learn's semantics) and solvers ``adamw`` /
    ``rprop``.  See
    :mod:`fastbp.sklearn` for how each parameter maps onto fastbp.

    Single-label problems (binary included) use softmax outputs with
    cross-entropy; a 2-D indicator ``y`` is a multi-label problem (sigmoid
    outputs, binary cross-entropy).

    Attributes
    ----------
    classes_ : ndarray
        Class labels (multi-label: ``arange(n_labels)``).
    net_ : fastbp.MLP
        The trained network.
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_,
    t_, n_iter_, n_layers_, n_outputs_, out_activation_, coefs_, intercepts_,
    n_features_in_, feature_names_in_
        As in scikit-learn (see :mod:`fastbp.sklearn`).
    """

    _parameter_constraints: dict = {**_BaseMLP._parameter_constraints,
                                    "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, dropout=0.0,
                 batch_norm=False, clip_norm=None, class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, dropout=dropout,
            batch_norm=batch_norm, clip_norm=clip_norm)
        self.class_weight = class_weight

    @property
    def _out_activation(self):
        return "softmax" if self._is_single_label() else "logistic"

    def _is_single_label(self):
        return self._label_binarizer.y_type_ != "multilabel-indicator"

    def _binary_softmax(self, T):
        return self._is_single_label() and len(self.classes_) == 2

    def _n_outputs(self, T):
        return len(self.classes_) if T.ndim == 1 else T.shape[1]

    @property
    def _net_loss(self):
        return "cross_entropy" if self._is_single_label() else "binary_cross_entropy"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset, accept_sparse=_SPARSE)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same "
                                     "classes as in the previous call to fit. Previously "
                                     f"got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
        if self._is_single_label():
            if y.ndim != 1:
                raise ValueError(f"y has shape {y.shape}; expected class labels (1-D) or a "
                                 "2-D multi-label indicator matrix")
            T = np.searchsorted(self.classes_, y).astype(np.int64)
        else:
            T = self._label_binarizer.transform(y).astype(X.dtype)
        return X, T

    def _score_targets(self, X, T, sw=None):
        proba = self.net_.predict(X)
        if T.ndim == 1:
            return accuracy_score(T, proba.argmax(axis=1), sample_weight=sw)
        return accuracy_score(T.astype(int), (proba > 0.5).astype(int), sample_weight=sw)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` and class labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label problems.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights (``>= 0``), multiplied by ``class_weight``'s.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(_is_stochastic)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the current network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array of shape (n_classes,), optional
            Every class across all calls; required on the first call,
            except for a multi-label (indicator) ``y``, whose columns are
            the labels.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights (``>= 0``), multiplied by ``class_weight``'s
            (a dict here; ``"balanced"`` is refused).

        Returns
        -------
        self
        """
        multilabel = type_of_target(y).startswith("multilabel")
        if classes is None and multilabel and not hasattr(self, "classes_"):
            # the indicator matrix names every label (scikit-learn insists on classes)
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        elif _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if multilabel else classes)
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)`` (multi-label:
        per-label probabilities, ``(n_samples, n_labels)``), in the network's dtype."""
        return self._forward(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def predict(self, X):
        """Predicted class labels (multi-label: 0/1 indicator matrix)."""
        proba = self._forward(X)
        if self._is_single_label():
            return self.classes_[proba.argmax(axis=1)]
        return self._label_binarizer.inverse_transform(proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastbp's compiled backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor` (same
    parameter names and defaults, squared-error loss) with fastbp's extras
    ``dropout``, ``batch_norm``, ``clip_norm``, solvers ``adamw`` /
    ``rprop`` and the robust losses.  See :mod:`fastbp.sklearn` for how each
    parameter maps onto fastbp.  ``y`` may be 2-D (multi-output).

    Parameters
    ----------
    loss : str, default "squared_error"
        Keyword-only here (scikit-learn also accepts it first by position).
        ``squared_error`` (alias ``mse``) and ``poisson`` as in scikit-learn
        (``poisson``: log link, exp output, ``predict`` returns the rate,
        ``y >= 0``; ``loss_curve_`` is half the Poisson deviance, as
        scikit-learn reports it); fastbp's ``huber``, ``absolute_error``
        (alias ``mae``) and ``quantile`` (see :class:`fastbp.MLP`; their
        ``loss_curve_`` is fastbp's loss: summed over outputs, averaged
        over samples).  Fixed by the first fit, like the architecture.
    huber_delta : float, default 1.0
        Huber's switch from quadratic to linear (> 0).
    quantile : float, default 0.5
        The quantile the ``quantile`` loss estimates, in (0, 1).
    hidden_layer_sizes, activation, solver, ...
        As in scikit-learn (see :class:`MLPClassifier`'s module notes).

    Attributes
    ----------
    net_ : fastbp.MLP
        The trained network.
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_,
    t_, n_iter_, n_layers_, n_outputs_, out_activation_, coefs_, intercepts_,
    n_features_in_, feature_names_in_
        As in scikit-learn (see :mod:`fastbp.sklearn`).
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "mse", "huber", "absolute_error", "mae",
                             "quantile", "poisson"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
        "quantile": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
                 huber_delta=1.0, quantile=0.5, solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, dropout=0.0, batch_norm=False, clip_norm=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, dropout=dropout,
            batch_norm=batch_norm, clip_norm=clip_norm)
        self.loss = loss
        self.huber_delta = huber_delta
        self.quantile = quantile

    @property
    def _net_loss(self):
        return "mse" if self.loss == "squared_error" else self.loss

    @property
    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _loss_kwargs(self):
        return {"huber_delta": self.huber_delta, "quantile": self.quantile}

    def _n_outputs(self, T):
        return T.shape[1]

    def _loss_scale(self):
        # fastbp's mse sums 1/2 (y - p)^2 over outputs; scikit-learn averages
        # (its poisson sums over outputs, as fastbp does)
        return 1.0 / self.n_outputs_ if self.net_.loss == "mse" else 1.0

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset, accept_sparse=_SPARSE)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        T = np.asarray(y, dtype=X.dtype).reshape(X.shape[0], -1)
        return X, T

    def _score_targets(self, X, T, sw=None):
        return r2_score(T, self.net_.predict(X), sample_weight=sw)

    @available_if(_is_stochastic)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the current network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights (``>= 0``).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predictions, ``(n_samples,)`` for a single output, else
        ``(n_samples, n_outputs)``, in the network's dtype."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out
