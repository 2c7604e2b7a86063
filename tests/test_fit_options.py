"""The fit keywords are declared once (fastbp.options.FitOptions) and the methods show them."""

import dataclasses
import inspect
import pydoc

import numpy as np
import pytest

import fastbp
from fastbp.distributed import DataParallel
from fastbp.options import FitOptions

FIELDS = [f.name for f in dataclasses.fields(FitOptions)]


def _data():
    r = np.random.default_rng(0)
    X = r.normal(size=(20, 3))
    return X, X[:, :1] ** 2


def test_mlp_fit_signature_lists_every_option_in_order():
    sig = inspect.signature(fastbp.MLP.fit)
    names = list(sig.parameters)
    assert names == ["self", "X", "y", *FIELDS, "opt_kwargs"]
    for f in dataclasses.fields(FitOptions):
        assert sig.parameters[f.name].default == f.default
    assert sig.parameters["opt_kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    bound = inspect.signature(fastbp.MLP([3, 1]).fit)
    assert list(bound.parameters)[:3] == ["X", "y", "epochs"]


def test_help_shows_keywords_and_their_documentation():
    text = pydoc.render_doc(fastbp.MLP.fit, renderer=pydoc.plaintext)
    assert "fit(self, X, y=None, epochs=1, batch_size=32" in text
    for name in FIELDS:
        assert f"    {name} : " in text, name
    assert fastbp.MLP.fit.__qualname__ == "MLP.fit"
    assert fastbp.MLP.fit.__module__ == "fastbp.network"


def test_data_parallel_fit_takes_its_subset_plus_its_own():
    sig = inspect.signature(DataParallel.fit)
    names = list(sig.parameters)
    assert names[:3] == ["self", "X", "y"] and names[-1] == "opt_kwargs"
    assert {"save_path", "profile"} <= set(names)
    assert "validation_fraction" not in names and "chunk_size" not in names
    assert set(names[3:-1]) - {"save_path", "profile"} <= set(FIELDS)


def test_positional_arguments_bind_as_before():
    X, y = _data()
    a, b = fastbp.MLP([3, 4, 1], seed=0), fastbp.MLP([3, 4, 1], seed=0)
    a.fit(X, y, 3, 8, 0.05, seed=1)
    b.fit(X, y, epochs=3, batch_size=8, lr=0.05, seed=1)
    assert a.params.tobytes() == b.params.tobytes()


def test_unknown_keyword_is_a_clear_type_error_and_changes_nothing():
    X, y = _data()
    net = fastbp.MLP([3, 4, 1], seed=0)
    before = net.params.copy()
    with pytest.raises(TypeError, match=r"MLP\.fit\(\).*'epoch'.*neither a fit option"):
        net.fit(X, y, epoch=3)
    with pytest.raises(TypeError, match=r"MLP\.fit\(\).*'betas'.*optimizer 'sgd'"):
        net.fit(X, y, betas=(0.9, 0.99))
    with pytest.raises(TypeError, match=r"MLP\.fit\(\): .*multiple values.*'epochs'"):
        net.fit(X, y, 3, epochs=3)
    with pytest.raises(TypeError, match=r"MLP\.fit\(\): too many positional"):
        net.fit(X, y, *range(30))
    assert net.params.tobytes() == before.tobytes() and net.steps == 0


def test_optimizer_settings_still_reach_the_optimizer():
    X, y = _data()
    net = fastbp.MLP([3, 4, 1], seed=0)
    net.fit(X, y, epochs=1, optimizer="adam", betas=(0.8, 0.9), weight_decay=0.1)
    assert isinstance(net.optimizer, fastbp.Adam) and net.optimizer.weight_decay == 0.1


def test_checked_options_normalise_and_refuse():
    o = FitOptions(epochs=np.int64(3), shuffle=1, callbacks=[print]).checked()
    assert o.epochs == 3 and o.shuffle is True and o.callbacks == (print,)
    with pytest.raises(ValueError, match="on_divergence"):
        FitOptions(on_divergence="ignore").checked()
    with pytest.raises(TypeError, match="callbacks must be callables"):
        FitOptions(callbacks=[1]).checked()
    with pytest.raises(TypeError, match="validation_data must be a pair"):
        FitOptions(validation_data=(1, 2, 3)).validation_parts(weights=False)


def test_data_parallel_refuses_options_it_does_not_take_before_any_mpi_call():
    X, y = _data()
    with pytest.raises(TypeError, match=r"DataParallel\.fit\(\) does not take "
                                        r"'validation_fraction'"):
        DataParallel.fit(object(), X, y, validation_fraction=0.2)
