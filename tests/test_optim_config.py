"""Optimizers serialise themselves: get_config/from_config, get_state/set_state,
settings read and written by slot name (fastbp.optim.HYPER_SLOTS)."""

import json

import numpy as np
import pytest

import fastbp
from fastbp import optim
from fastbp.optim import HYPER_SLOTS, N_HYPER

OPTIMIZERS = {
    "sgd": lambda: fastbp.SGD(0.05),
    "sgd-decay-clip": lambda: fastbp.SGD(0.05, weight_decay=1e-3, l1=1e-4, clip_norm=2.0),
    "momentum": lambda: fastbp.SGD(0.05, momentum=0.9),
    "nesterov": lambda: fastbp.SGD(0.03, momentum=0.7, nesterov=True, weight_decay=1e-3),
    "adam": lambda: fastbp.Adam(0.01, betas=(0.8, 0.99), eps=1e-7, l1=1e-5, clip_norm=0.5),
    "adamw": lambda: fastbp.AdamW(0.01, weight_decay=0.02),
    "rprop": lambda: fastbp.RPROP(eta_plus=1.3, eta_minus=0.4, delta0=0.05, delta_min=1e-5,
                                  delta_max=10.0, weight_decay=1e-4),
}
IDS = list(OPTIMIZERS)


def _data(n=40, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, 3))
    return X, np.tanh(X @ r.standard_normal((3, 2)))


def _same(a, b):
    assert type(a) is type(b)
    assert a.hyper.tobytes() == b.hyper.tobytes()
    assert a.code == b.code and a.n_state == b.n_state and a.full_batch == b.full_batch
    assert a.get_config() == b.get_config()
    assert getattr(a, "delta0", None) == getattr(b, "delta0", None)


def test_hyper_slots_name_every_slot_once():
    assert sorted(HYPER_SLOTS.values()) == list(range(N_HYPER))


@pytest.mark.parametrize("name", IDS)
def test_config_round_trip_gives_an_equal_optimizer(name):
    opt = OPTIMIZERS[name]()
    cfg = opt.get_config()
    assert cfg["class"] == type(opt).__name__
    text = json.dumps(cfg, allow_nan=False)  # plain, JSON-serialisable
    again = optim.from_config(json.loads(text))
    _same(opt, again)
    assert type(opt).from_config(cfg).hyper.tobytes() == opt.hyper.tobytes()
    assert optim.Optimizer.from_config(cfg).get_config() == cfg
    assert again.state is None and again.step[0] == 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", IDS)
def test_training_after_round_trip_is_bit_identical(name, dtype):
    X, y = _data()
    a = fastbp.MLP([3, 5, 2], activation="tanh", dtype=dtype, seed=4)
    b = a.copy()
    opt_a = OPTIMIZERS[name]()
    opt_b = optim.from_config(opt_a.get_config())
    a.fit(X, y, epochs=2, batch_size=8, optimizer=opt_a)
    b.fit(X, y, epochs=2, batch_size=8, optimizer=opt_b)
    assert a.params.tobytes() == b.params.tobytes()
    # mid-training: settings and state carried over to a rebuilt optimizer
    opt_c = optim.from_config(json.loads(json.dumps(opt_a.get_config())))
    opt_c.set_state(**opt_a.get_state())
    assert opt_c.state.tobytes() == opt_a.state.tobytes() and opt_c.step[0] == opt_a.step[0] > 0
    c = a.copy()
    a.fit(X, y, epochs=1, batch_size=8, optimizer=opt_a, shuffle=False)
    c.fit(X, y, epochs=1, batch_size=8, optimizer=opt_c, shuffle=False)
    assert a.params.tobytes() == c.params.tobytes()
    assert opt_a.state.tobytes() == opt_c.state.tobytes()


def test_state_is_copied_and_checked():
    opt = fastbp.Adam(0.01).bind(7, np.float64)
    opt.state[:] = 1.5
    opt.step[0] = 3
    st = opt.get_state()
    st["state"][:] = 0.0  # a copy
    assert opt.state[0, 0] == 1.5
    assert set(fastbp.Adam().get_state()) == {"step"}  # unbound: no buffers yet
    other = fastbp.Adam(0.01)
    with pytest.raises(ValueError, match="shape"):
        other.set_state(np.array([1]), np.zeros((1, 7)))  # Adam keeps two buffers
    with pytest.raises(ValueError, match="step"):
        other.set_state(np.array([-1], dtype=np.int64))
    with pytest.raises(ValueError, match="step"):
        other.set_state(np.array([1.0]))
    other.set_state(**opt.get_state())
    assert other.state.tobytes() == opt.state.tobytes() and other.step[0] == 3
    assert other.state_shape(7) == (2, 7) and fastbp.SGD().state_shape(7) == (1, 0)


def test_settings_read_and_write_their_slots_by_name():
    opt = fastbp.RPROP(delta_min=1e-4, delta_max=3.0)
    assert opt.hyper[HYPER_SLOTS["delta_max"]] == 3.0 and opt.delta_max == 3.0
    opt.weight_decay = 0.25
    opt.lr = 0.5
    opt.clip_norm = 4.0
    assert opt.hyper[HYPER_SLOTS["weight_decay"]] == 0.25
    assert opt.hyper[HYPER_SLOTS["lr"]] == 0.5 and opt.clip_norm == 4.0
    opt.clip_norm = None
    assert opt.hyper[HYPER_SLOTS["clip_norm"]] == 0.0 and opt.clip_norm is None
    before = opt.hyper.copy()
    with pytest.raises(ValueError, match="weight_decay"):
        opt.weight_decay = -1.0
    with pytest.raises(AttributeError, match="new RPROP"):
        opt.delta_max = 5.0  # structural settings are fixed at construction
    assert opt.hyper.tobytes() == before.tobytes()
    adam = fastbp.Adam(betas=(0.5, 0.75))
    assert adam.betas == (0.5, 0.75) and adam.hyper[HYPER_SLOTS["beta2"]] == 0.75
    sgd = fastbp.SGD(momentum=0.5, nesterov=True)
    assert sgd.momentum == 0.5 and sgd.nesterov is True


def test_config_refuses_a_hyper_array_edited_by_index():
    opt = fastbp.SGD(0.1)
    opt.hyper[HYPER_SLOTS["momentum"]] = 0.5  # the kernel code still says plain SGD
    with pytest.raises(ValueError, match="disagrees"):
        opt.get_config()


def test_from_config_errors():
    with pytest.raises(TypeError, match="dict"):
        optim.from_config("SGD")
    with pytest.raises(ValueError, match="unknown optimizer class"):
        optim.from_config({"class": "os.system"})
    with pytest.raises(ValueError, match="unknown SGD settings"):
        optim.from_config({"class": "SGD", "betas": [0.9, 0.99]})
    with pytest.raises(ValueError, match="momentum"):
        optim.from_config({"class": "SGD", "momentum": 2.0})
    with pytest.raises(ValueError, match="not a SGD"):
        fastbp.SGD.from_config(fastbp.Adam().get_config())
    assert optim.from_config({"class": "Adam"}).get_config() == fastbp.Adam().get_config()


@pytest.mark.parametrize("name", IDS)
def test_from_hyper_rebuilds_and_checks(name):
    opt = OPTIMIZERS[name]()
    extra = {"delta0": opt.delta0} if isinstance(opt, fastbp.RPROP) else {}
    _same(optim.from_hyper(type(opt).__name__, opt.hyper, **extra), opt)
    bad = opt.hyper.copy()
    used = set(opt.get_config()) | ({"beta1", "beta2"} if "betas" in opt.get_config() else set())
    unused = [slot for key, slot in HYPER_SLOTS.items() if key not in used]
    bad[unused[0]] = 0.5  # a slot this optimizer has no setting for
    with pytest.raises(ValueError, match="disagrees"):
        optim.from_hyper(type(opt).__name__, bad, **extra)
