"""scikit-learn MLPClassifier / MLPRegressor, solver="sgd", momentum 0,
constant learning rate, alpha 0, shuffle off; one epoch = one ``partial_fit``
over the epoch's data with ``batch_size=B`` (input validation and the label
binariser are part of what is timed, as they are part of sklearn's training).

sklearn builds its weights on the first ``partial_fit``; the trainer makes
one such call on the first batch and then overwrites ``coefs_`` /
``intercepts_`` in place with the common initial weights (the optimiser
holds references to those arrays, and with momentum 0 it has no state)."""

import warnings

NAME = "sklearn"


def available():
    try:
        import sklearn.neural_network  # noqa: F401
    except Exception as e:  # pragma: no cover
        return False, "not importable (%s: %s)" % (type(e).__name__, e)
    return True, ""


def versions():
    import sklearn

    return {"sklearn": sklearn.__version__}


class Trainer:
    note = ""

    def __init__(self, case, X, y, init):
        import numpy as np
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        kw = dict(
            hidden_layer_sizes=tuple(case.sizes[1:-1]),
            activation={"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}[case.hidden],
            solver="sgd", learning_rate="constant",
            learning_rate_init=case.lr, momentum=0.0, nesterovs_momentum=False,
            alpha=0.0, batch_size=case.batch, shuffle=False, max_iter=1,
            tol=0.0, n_iter_no_change=2**31 - 1, early_stopping=False,
            random_state=0,
        )
        self.X = X
        if case.loss == "mse":
            assert case.output == "identity"
            self.model = MLPRegressor(**kw)
            self.y = y.reshape(len(y), -1)[:, 0].copy()
            self.fit_kw = {}
        else:
            assert case.output == "softmax"
            if case.n_classes < 3:
                raise ValueError("sklearn trains 2 classes with one logistic output, "
                                 "not a 2-way softmax: not the same model")
            self.model = MLPClassifier(**kw)
            self.y = y
            self.fit_kw = {"classes": np.arange(case.n_classes)}
        B = case.batch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X[:B], self.y[:B], **self.fit_kw)
        m = self.model
        for i, (W, b) in enumerate(init):
            assert m.coefs_[i].shape == W.shape, (m.coefs_[i].shape, W.shape)
            m.coefs_[i][...] = W
            m.intercepts_[i][...] = b
        self.dtype = str(m.coefs_[0].dtype)
        if self.dtype != "float32":
            self.note = "sklearn trains in %s" % self.dtype

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(self.X, self.y)

    def params(self):
        m = self.model
        return [(W.copy(), b.copy()) for W, b in zip(m.coefs_, m.intercepts_)]


def make_trainer(case, X, y, init):
    return Trainer(case, X, y, init)
