"""A Numba simulation that learns a surrogate of its own dynamics while it runs.

A damped, driven pendulum

    theta'' = -gamma * theta' - omega0**2 * sin(theta) + A * cos(Omega * t)

(gamma = 0.5, omega0 = 1, A = 1.2, Omega = 2/3: the classic chaotic regime) is
integrated step by step with RK4 inside one ``@njit(cache=True)`` loop.  At
every step of the first ``n_train`` the same loop also trains a small MLP
through :mod:`fastbp.jit` -- with no return to Python:

* inputs  (5): sin(theta), cos(theta), omega / 2, sin(phase), cos(phase), where
  phase = Omega * t is the drive's phase (the drive is an external, known
  signal; sin/cos keep every input continuous even when the pendulum goes
  over the top);
* outputs (2): the state change over one step, (d theta, d omega) / (2 * dt);
* each step the new transition goes into a replay window (a ring buffer of
  the last ``window`` steps) and ``train_per_step`` Adam steps
  (``fastbp.jit.train_step``) are taken on random mini-batches from it.

The simulation then goes on without training, and the surrogate alone is
asked to predict ahead:

* one-step error: from each true state, the surrogate's next state vs the true
  next state;
* H-step error: from a true state, the surrogate rolls its *own* predictions
  forward H steps (``fastbp.jit.predict_one``) and is compared with the true
  state H steps later.

Errors are RMS over the test stretch, each state component divided by its
standard deviation there (angle differences wrapped to (-pi, pi]); so 1.0 is
"as wrong as the state's typical size".  For reference the script also
reports the persistence forecast (next state = current state) and an
untrained surrogate (same architecture, initial weights).

    python examples/pendulum_surrogate.py             # full size, a few seconds
    python examples/pendulum_surrogate.py --steps 4000

``main(n_steps=..., seed=...)`` returns the errors as a dict.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from numba import njit

import fastbp
import fastbp.jit as fj

GAMMA, OMEGA0, DRIVE, OMEGA_D = 0.5, 1.0, 1.2, 2.0 / 3.0
DT = 0.1         # one simulation step (5 RK4 sub-steps of 0.02)
SUBSTEPS = 5
SCALE = 2.0      # inputs: omega / SCALE; outputs: delta / (SCALE * DT)


@njit(cache=True)
def _accel(theta, omega, t):
    return -GAMMA * omega - OMEGA0 * OMEGA0 * math.sin(theta) + DRIVE * math.cos(OMEGA_D * t)


@njit(cache=True)
def rk4_step(theta, omega, t):
    """The true dynamics: one step of length DT."""
    h = DT / SUBSTEPS
    for _ in range(SUBSTEPS):
        k1t, k1w = omega, _accel(theta, omega, t)
        k2t, k2w = omega + 0.5 * h * k1w, _accel(theta + 0.5 * h * k1t, omega + 0.5 * h * k1w,
                                                  t + 0.5 * h)
        k3t, k3w = omega + 0.5 * h * k2w, _accel(theta + 0.5 * h * k2t, omega + 0.5 * h * k2w,
                                                  t + 0.5 * h)
        k4t, k4w = omega + h * k3w, _accel(theta + h * k3t, omega + h * k3w, t + h)
        theta += h / 6.0 * (k1t + 2.0 * k2t + 2.0 * k3t + k4t)
        omega += h / 6.0 * (k1w + 2.0 * k2w + 2.0 * k3w + k4w)
        t += h
    return theta, omega


@njit(cache=True)
def features(theta, omega, t, x):
    """Surrogate inputs for state (theta, omega) at time t, written into x (5,)."""
    x[0] = math.sin(theta)
    x[1] = math.cos(theta)
    x[2] = omega / SCALE
    x[3] = math.sin(OMEGA_D * t)
    x[4] = math.cos(OMEGA_D * t)


@njit(cache=True)
def simulate(state, theta, omega, n_train, n_test, window, batch, train_per_step, seed,
             traj, losses, X, Y, xb, yb):
    """Integrate n_train + n_test steps; train the surrogate online during the first n_train.

    ``traj`` (n_train + n_test + 1, 2) receives the true (theta, omega); ``losses``
    (n_train,) the mean training loss of each step.  ``X`` / ``Y`` are the replay
    window (window, 5) / (window, 2); ``xb`` / ``yb`` one mini-batch.  Nothing is
    allocated inside the loop.
    """
    np.random.seed(seed)
    t = 0.0
    traj[0, 0] = theta
    traj[0, 1] = omega
    filled = 0
    for i in range(n_train + n_test):
        th1, om1 = rk4_step(theta, omega, t)
        if i < n_train:
            slot = i % window
            features(theta, omega, t, X[slot])
            Y[slot, 0] = (th1 - theta) / (SCALE * DT)
            Y[slot, 1] = (om1 - omega) / (SCALE * DT)
            filled = min(filled + 1, window)
            total = 0.0
            if filled >= batch:
                for _ in range(train_per_step):
                    for r in range(batch):
                        j = np.random.randint(0, filled)
                        for c in range(5):
                            xb[r, c] = X[j, c]
                        yb[r, 0] = Y[j, 0]
                        yb[r, 1] = Y[j, 1]
                    total += fj.train_step(state, xb, yb)
                losses[i] = total / train_per_step
        theta, omega, t = th1, om1, t + DT
        traj[i + 1, 0] = theta
        traj[i + 1, 1] = omega


@njit(cache=True)
def _wrap(a):
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True)
def surrogate_errors(state, traj, start, horizon, stride):
    """Squared errors of the surrogate on the true trajectory ``traj[start:]``.

    Returns (one-step squared errors (n, 2), H-step squared errors (m, 2)) in the
    state's units: one-step from every true state; H-step from every ``stride``-th
    true state, rolling the surrogate's own predictions ``horizon`` steps ahead.
    """
    n = traj.shape[0] - 1 - start
    x = np.empty(5)
    out = np.empty(2)
    one = np.empty((n, 2))
    for i in range(n):
        th, om = traj[start + i, 0], traj[start + i, 1]
        features(th, om, (start + i) * DT, x)
        fj.predict_one(state, x, out)
        one[i, 0] = _wrap(th + SCALE * DT * out[0] - traj[start + i + 1, 0]) ** 2
        one[i, 1] = (om + SCALE * DT * out[1] - traj[start + i + 1, 1]) ** 2
    m = max((n - horizon) // stride + 1, 0)
    far = np.empty((m, 2))
    for s in range(m):
        i0 = start + s * stride
        th, om = traj[i0, 0], traj[i0, 1]
        for h in range(horizon):
            features(th, om, (i0 + h) * DT, x)
            fj.predict_one(state, x, out)
            th += SCALE * DT * out[0]
            om += SCALE * DT * out[1]
        far[s, 0] = _wrap(th - traj[i0 + horizon, 0]) ** 2
        far[s, 1] = (om - traj[i0 + horizon, 1]) ** 2
    return one, far


def _rms_rel(sq, scale):
    """RMS over samples and both components of the error divided by the state's scale."""
    return float(np.sqrt(np.mean(sq / scale ** 2)))


def main(n_steps=40_000, n_test=3_000, horizon=20, seed=0, hidden=32, window=2048, batch=32,
         train_per_step=1, lr=3e-3, verbose=True):
    """Simulate, learn online for ``n_steps`` steps, then test ``n_test`` steps ahead.

    Returns a dict: one-step and ``horizon``-step relative RMS errors of the
    trained surrogate, of the untrained one and of persistence, plus timings.
    """
    rng = np.random.default_rng(seed)
    theta0, omega0 = rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
    net = fastbp.MLP([5, hidden, hidden, 2], activation="tanh", seed=seed)
    untrained = net.copy()
    state = net.state(batch_size=batch, optimizer="adam", lr=lr)
    traj = np.empty((n_steps + n_test + 1, 2))
    losses = np.zeros(n_steps)
    buffers = (np.zeros((window, 5)), np.zeros((window, 2)), np.zeros((batch, 5)),
               np.zeros((batch, 2)))
    t0 = time.perf_counter()
    simulate(state, theta0, omega0, n_steps, n_test, window, batch, train_per_step, seed,
             traj, losses, *buffers)
    t_sim = time.perf_counter() - t0

    test = traj[n_steps:]
    d = np.diff(test, axis=0)
    d[:, 0] = (d[:, 0] + np.pi) % (2 * np.pi) - np.pi
    scale = np.array([np.std((test[:, 0] + np.pi) % (2 * np.pi) - np.pi), np.std(test[:, 1])])
    stride = max(horizon // 2, 1)
    res = {"n_steps": n_steps, "n_test": n_test, "horizon": horizon, "seed": seed,
           "scale": scale.tolist(), "sim_seconds": t_sim}
    for name, s in (("trained", state), ("untrained", untrained.state(batch_size=1))):
        one, far = surrogate_errors(s, traj, n_steps, horizon, stride)
        res[f"{name}_one_step"] = _rms_rel(one, scale)
        res[f"{name}_h_step"] = _rms_rel(far, scale)
    res["persistence_one_step"] = _rms_rel(d ** 2, scale)
    hd = test[horizon:] - test[:-horizon]
    hd[:, 0] = (hd[:, 0] + np.pi) % (2 * np.pi) - np.pi
    res["persistence_h_step"] = _rms_rel(hd[::stride] ** 2, scale)
    k = max(n_steps // 10, 1)
    res["train_loss_first"] = float(np.mean(losses[batch:batch + k]))
    res["train_loss_last"] = float(np.mean(losses[-k:]))
    if verbose:
        print(f"damped driven pendulum (gamma={GAMMA}, A={DRIVE}, Omega={OMEGA_D:.4g}), "
              f"dt={DT}, surrogate {net.sizes} tanh, Adam lr={lr}")
        print(f"{n_steps} simulated steps with online training + {n_test} test steps: "
              f"{t_sim:.2f} s ({(n_steps + n_test) / t_sim:,.0f} steps/s incl. "
              f"{train_per_step} train step(s) of batch {batch} per step)")
        print(f"training loss (mean of first / last 10%): {res['train_loss_first']:.3g} -> "
              f"{res['train_loss_last']:.3g}")
        print(f"state scale (std of theta, omega over the test): {scale[0]:.3f}, {scale[1]:.3f}")
        print(f"{'relative RMS error':<24}{'1 step':>10}{f'{horizon} steps':>12}")
        for name in ("trained", "untrained", "persistence"):
            print(f"  {name:<22}{res[f'{name}_one_step']:>10.2e}{res[f'{name}_h_step']:>12.2e}")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40_000, help="simulated steps with training")
    ap.add_argument("--test", type=int, default=3_000, help="test steps after training")
    ap.add_argument("--horizon", type=int, default=20, help="steps predicted ahead")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    main(n_steps=a.steps, n_test=a.test, horizon=a.horizon, seed=a.seed)
