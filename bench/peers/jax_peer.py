"""JAX: one jitted function per epoch, ``lax.scan`` over the pre-batched
data (n_batches, B, d); params a pytree, gradient by ``jax.value_and_grad``,
SGD update inside the scan; timed with ``block_until_ready``.  The data are
put on the device before timing, the compile is done in the warm-up."""

NAME = "jax"


def available():
    try:
        import jax  # noqa: F401
    except Exception as e:  # pragma: no cover
        return False, "not importable (%s: %s)" % (type(e).__name__, e)
    return True, ""


def versions():
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "jax_backend": jax.default_backend(),
            "XLA_FLAGS": __import__("os").environ.get("XLA_FLAGS", "")}


class Trainer:
    note = ""

    def __init__(self, case, X, y, init):
        import jax
        import jax.numpy as jnp
        from jax import lax

        B = case.batch
        nb = len(X) // B
        L = len(case.sizes) - 1
        act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[case.hidden]
        lr = jnp.float32(case.lr)

        def forward(params, x):
            for i, (W, b) in enumerate(params):
                x = x @ W + b
                if i < L - 1:
                    x = act(x)
            return x

        if case.loss == "mse":
            def loss_fn(params, x, t):
                d = forward(params, x) - t
                return 0.5 * jnp.mean(jnp.sum(d * d, axis=1))
            Y = y.reshape(nb, B, -1)
        else:
            def loss_fn(params, x, t):
                logits = forward(params, x)
                logp = jax.nn.log_softmax(logits, axis=1)
                return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))
            Y = y.astype("int32").reshape(nb, B)

        vg = jax.value_and_grad(loss_fn)

        def step(params, batch):
            x, t = batch
            loss, g = vg(params, x, t)
            params = jax.tree_util.tree_map(lambda p, gp: p - lr * gp, params, g)
            return params, loss

        @jax.jit
        def epoch_fn(params, Xb, Yb):
            return lax.scan(step, params, (Xb, Yb))

        self.jax = jax
        self.epoch_fn = epoch_fn
        self.Xb = jax.device_put(X.reshape(nb, B, -1))
        self.Yb = jax.device_put(Y)
        self.params_ = [(jnp.asarray(W), jnp.asarray(b)) for W, b in init]
        self.losses = None

    def epoch(self):
        self.params_, self.losses = self.epoch_fn(self.params_, self.Xb, self.Yb)
        self.jax.block_until_ready(self.params_)

    def params(self):
        import numpy as np

        return [(np.asarray(W).copy(), np.asarray(b).copy())
                for W, b in self.params_]


def make_trainer(case, X, y, init):
    return Trainer(case, X, y, init)
