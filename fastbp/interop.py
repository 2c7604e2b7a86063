"""Exchange networks with PyTorch (``torch.nn.Sequential`` of Linear + activations).

PyTorch is optional and imported only when one of these functions is called
(``pip install torch``).

Module mapping (fastbp name -> torch module)::

    identity   -> nn.Identity            leaky_relu -> nn.LeakyReLU(leaky_slope)
    sigmoid    -> nn.Sigmoid             elu        -> nn.ELU(elu_alpha)
    tanh       -> nn.Tanh                softplus   -> nn.Softplus()  (beta=1)
    relu       -> nn.ReLU                gelu       -> nn.GELU(approximate="tanh")
    softmax    -> nn.Softmax(dim=1)      (output layer only, see below)

A network with sizes ``[n0, n1, ..., nL]`` becomes ``nn.Sequential(Linear(n0, n1),
act_1, Linear(n1, n2), act_2, ..., Linear(n_{L-1}, nL)[, output])``: Linear
layers sit at the even indices, so the state-dict keys are ``"0.weight"``,
``"0.bias"``, ``"2.weight"``, ... and ``W_l`` of fastbp (``(n_out, n_in)``)
is exactly ``nn.Linear.weight``.

Batch norm and dropout (hidden layers only) add modules in fastbp's order of
operations, ``Linear -> BatchNorm1d(eps, momentum) -> activation ->
Dropout(p)``, which shifts the indices after them; the state dict then also
holds ``gamma``/``beta`` as ``"<i>.weight"``/``"<i>.bias"`` of the
BatchNorm1d and its ``running_mean``/``running_var`` (fastbp keeps the
unbiased running variance and torch's momentum convention, so eval-mode
predictions agree).  Only the running statistics are exported as state, not
the dropout masks.

Output activation: sigmoid and tanh outputs are appended as modules, an
identity output appends nothing.  A softmax output is appended (as
``nn.Softmax(dim=1)``) only with ``include_output=True``: by default the
Sequential returns logits, which is what ``nn.CrossEntropyLoss`` expects.

Numerical agreement: parameters are copied exactly; predictions agree to
rounding (the order of floating-point operations differs).  torch's Softplus
switches to the identity above 20 (``threshold=20``), where fastbp keeps the
exact ``log1p(exp(x))``; the two differ there by less than ``2.1e-9``.
"""

import re

import numpy as np

from . import spec

__all__ = ["to_torch_state_dict", "to_torch_sequential", "from_torch"]


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("fastbp.interop needs PyTorch, which is not installed: "
                          "pip install torch") from exc
    return torch


def _torch_dtype(torch, dtype):
    return torch.float32 if np.dtype(dtype) == np.float32 else torch.float64


def _plan(net, include_output=True):
    """The Sequential's modules as ``(kind, layer)``: linear, bn, act, dropout, out."""
    plan = []
    for l in range(net.n_layers):
        plan.append(("linear", l))
        if l < net.n_layers - 1:
            if net.batch_norm[l]:
                plan.append(("bn", l))
            plan.append(("act", l))
            if net.dropout[l] > 0:
                plan.append(("dropout", l))
        else:
            act = net.activations[l]
            if act in ("sigmoid", "tanh") or (act == "softmax" and include_output):
                plan.append(("out", l))
    return plan


def _copy(torch, a):
    return torch.from_numpy(np.array(a, copy=True))


def to_torch_state_dict(net):
    """The parameters (and batch-norm statistics) of ``net`` as a torch state dict.

    Returns
    -------
    dict of str -> torch.Tensor
        Keys of :func:`to_torch_sequential`'s module: ``"{i}.weight"``
        (``(n_out, n_in)``) and ``"{i}.bias"`` for each Linear layer ``i``
        (``i = 2 l`` without batch norm or dropout), plus ``weight``, ``bias``,
        ``running_mean``, ``running_var`` and ``num_batches_tracked`` of each
        BatchNorm1d.  Copies, in the network's dtype (float32 or float64).
    """
    torch = _torch()
    out = {}
    for i, (kind, l) in enumerate(_plan(net)):
        if kind == "linear":
            out[f"{i}.weight"] = _copy(torch, net.weights[l])
            out[f"{i}.bias"] = _copy(torch, net.biases[l])
        elif kind == "bn":
            out[f"{i}.weight"] = _copy(torch, net.bn_gamma[l])
            out[f"{i}.bias"] = _copy(torch, net.bn_beta[l])
            out[f"{i}.running_mean"] = _copy(torch, net.running_mean[l])
            out[f"{i}.running_var"] = _copy(torch, net.running_var[l])
            out[f"{i}.num_batches_tracked"] = torch.tensor(net.steps, dtype=torch.long)
    return out


def _act_module(nn, name, net):
    if name == "identity":
        return nn.Identity()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(net.leaky_slope)
    if name == "elu":
        return nn.ELU(net.elu_alpha)
    if name == "softplus":
        return nn.Softplus()
    if name == "gelu":
        return nn.GELU(approximate="tanh")
    if name == "softmax":
        return nn.Softmax(dim=1)
    raise ValueError(f"no torch module for activation {name!r}")  # pragma: no cover


def to_torch_sequential(net, include_output=False):
    """An ``nn.Sequential`` computing the same function as ``net``.

    Parameters
    ----------
    net : fastbp.MLP
    include_output : bool, default False
        Append ``nn.Softmax(dim=1)`` for a softmax output layer.  Without it
        the Sequential returns logits (what ``nn.CrossEntropyLoss`` takes).
        Sigmoid and tanh outputs are always appended.  An exp output
        (``loss="poisson"``) is never appended: the Sequential returns the
        log-rates (what ``nn.PoissonNLLLoss(log_input=True)`` takes; apply
        ``torch.exp`` for rates), and ``include_output=True`` is refused.

    Returns
    -------
    torch.nn.Sequential
        Parameters are copies in the network's dtype; the module is in eval
        mode (batch norm uses the running statistics, dropout is off), where
        it predicts like :meth:`MLP.predict`.
    """
    if include_output and net.activations[-1] == "exp":
        raise ValueError("torch has no Exp module: export a poisson network with "
                         "include_output=False (it returns log-rates) and apply torch.exp")
    torch = _torch()
    nn = torch.nn
    tdt = _torch_dtype(torch, net.dtype)
    mods = []
    for kind, l in _plan(net, include_output):
        n_in, n_out = net.sizes[l], net.sizes[l + 1]
        if kind == "linear":
            mods.append(nn.Linear(n_in, n_out, dtype=tdt))
        elif kind == "bn":
            mods.append(nn.BatchNorm1d(n_out, eps=net.bn_eps, momentum=net.bn_momentum, dtype=tdt))
        elif kind == "dropout":
            mods.append(nn.Dropout(net.dropout[l]))
        else:
            mods.append(_act_module(nn, net.activations[l], net))
    seq = nn.Sequential(*mods)
    seq.load_state_dict(to_torch_state_dict(net))
    return seq.eval()


# ----------------------------------------------------------------- from torch
def _module_activation(nn, m):
    """fastbp activation name (and slope/alpha) of a torch activation module."""
    if isinstance(m, nn.Identity):
        return "identity", {}
    if isinstance(m, nn.Sigmoid):
        return "sigmoid", {}
    if isinstance(m, nn.Tanh):
        return "tanh", {}
    if isinstance(m, nn.ReLU):
        return "relu", {}
    if isinstance(m, nn.LeakyReLU):
        return "leaky_relu", {"leaky_slope": float(m.negative_slope)}
    if isinstance(m, nn.ELU):
        return "elu", {"elu_alpha": float(m.alpha)}
    if isinstance(m, nn.Softplus):
        if m.beta != 1:
            raise ValueError(f"fastbp's softplus has beta=1, got nn.Softplus(beta={m.beta})")
        return "softplus", {}
    if isinstance(m, nn.GELU):
        if m.approximate != "tanh":
            raise ValueError("fastbp's gelu is the tanh approximation; the module is "
                             f"nn.GELU(approximate={m.approximate!r}), use approximate='tanh'")
        return "gelu", {}
    if isinstance(m, nn.Softmax):
        if m.dim not in (1, -1):
            raise ValueError(f"a softmax output must act on dim=1, got nn.Softmax(dim={m.dim})")
        return "softmax", {}
    raise ValueError(f"unsupported module {m!r}: fastbp networks are nn.Linear layers, each "
                     "optionally followed by BatchNorm1d, then one of Identity, Sigmoid, Tanh, "
                     "ReLU, LeakyReLU, ELU, Softplus or GELU(approximate='tanh'), then Dropout; "
                     "optionally ending in Softmax(dim=1)")


def _to_numpy(t, what):
    arr = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    if arr.dtype.kind != "f":
        raise TypeError(f"{what} must be a floating tensor, got dtype {arr.dtype}")
    return arr


def _agree(settings, key, value):
    if key in settings and settings[key] != value:
        raise ValueError(f"fastbp uses one {key} for the whole network; the model has "
                         f"{settings[key]} and {value}")
    settings[key] = value


def _parse_sequential(torch, seq):
    """Layers as dicts (W, b, bn, act, drop) and the shared settings."""
    nn = torch.nn
    layers, settings = [], {}
    softmax = False
    for idx, m in enumerate(seq.children()):
        if softmax:
            raise ValueError(f"module {idx} ({m!r}) follows the softmax output")
        if isinstance(m, nn.Linear):
            W = _to_numpy(m.weight, f"module {idx} weight")
            b = (_to_numpy(m.bias, f"module {idx} bias") if m.bias is not None
                 else np.zeros(W.shape[0], dtype=W.dtype))
            layers.append({"W": W, "b": b, "bn": None, "act": None, "drop": None})
            continue
        if not layers:
            raise ValueError(f"the Sequential must start with nn.Linear, got {m!r} first")
        cur = layers[-1]
        if isinstance(m, nn.BatchNorm1d):
            if cur["bn"] is not None or cur["act"] is not None or cur["drop"] is not None:
                raise ValueError(f"BatchNorm1d (module {idx}) must directly follow an nn.Linear")
            if not (m.affine and m.track_running_stats) or m.momentum is None:
                raise ValueError("fastbp's batch norm has gamma/beta and running statistics "
                                 "with a fixed momentum: use BatchNorm1d(affine=True, "
                                 "track_running_stats=True, momentum=<float>)")
            _agree(settings, "bn_eps", float(m.eps))
            _agree(settings, "bn_momentum", float(m.momentum))
            cur["bn"] = [_to_numpy(t, f"module {idx} {k}") for k, t in
                         (("weight", m.weight), ("bias", m.bias), ("running_mean", m.running_mean),
                          ("running_var", m.running_var))]
            continue
        if isinstance(m, nn.Dropout):
            if cur["drop"] is not None:
                raise ValueError(f"two Dropout modules in a row at module {idx}")
            cur["drop"] = float(m.p)
            continue
        name, extra = _module_activation(nn, m)
        if cur["act"] is not None or cur["drop"] is not None:
            raise ValueError(f"unexpected {name} module at {idx}: each Linear takes at most one "
                             "activation, before its Dropout")
        for key, val in extra.items():
            _agree(settings, key, val)
        cur["act"] = name
        softmax = name == "softmax"
    if not layers:
        raise ValueError("the Sequential holds no nn.Linear layer")
    return layers, settings


_KEY = re.compile(r"(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)\Z")


def _parse_state_dict(state):
    groups = {}
    for key, t in state.items():
        m = _KEY.match(key) if isinstance(key, str) else None
        if m is None:
            raise ValueError(f"unexpected state-dict key {key!r}; expected '<index>.weight' and "
                             "'<index>.bias' of nn.Linear (and BatchNorm1d) layers of an "
                             "nn.Sequential")
        if m.group(2) != "num_batches_tracked":
            groups.setdefault(int(m.group(1)), {})[m.group(2)] = _to_numpy(t, key)
    layers = []
    for idx in sorted(groups):
        g = groups[idx]
        if "weight" not in g:
            raise ValueError(f"state dict has {sorted(f'{idx}.{k}' for k in g)} but no "
                             f"'{idx}.weight'")
        if "running_mean" in g or "running_var" in g or g["weight"].ndim == 1:
            if not layers or layers[-1]["bn"] is not None:
                raise ValueError(f"batch-norm entries '{idx}.*' must follow a Linear layer")
            missing = {"weight", "bias", "running_mean", "running_var"} - set(g)
            if missing:
                raise ValueError(f"batch-norm layer {idx} lacks {sorted(missing)}")
            layers[-1]["bn"] = [g["weight"], g["bias"], g["running_mean"], g["running_var"]]
            continue
        W = g["weight"]
        b = g.get("bias")
        if b is None:
            b = np.zeros(W.shape[0] if W.ndim == 2 else 0, dtype=W.dtype)
        layers.append({"W": W, "b": b, "bn": None, "act": None, "drop": None})
    if not layers:
        raise ValueError("the state dict holds no layer weights")
    return layers


def from_torch(module, sizes=None, activation=None, output=None, loss=None, dtype=None,
               seed=None, leaky_slope=None, elu_alpha=None, dropout=None, bn_momentum=None,
               bn_eps=None):
    """An :class:`fastbp.MLP` with the weights of a torch Sequential or its state dict.

    Parameters
    ----------
    module : torch.nn.Sequential or dict of str -> tensor
        A Sequential of ``nn.Linear`` layers, each optionally followed by
        ``BatchNorm1d``, an activation module and ``Dropout`` (see the module
        docstring), or such a Sequential's ``state_dict()``.  Linear layers
        without bias get zero biases.
    sizes : sequence of int, optional
        Checked against the layer shapes when given (they define the sizes).
    activation : str or sequence of str, optional
        Hidden activations.  For a Sequential they are read from its modules
        (if given, they must agree); for a state dict the default is "relu".
    output : str, optional
        Output activation.  For a Sequential, its trailing activation module
        if any; otherwise this argument, defaulting to the loss's (so a
        logits Sequential with ``loss="cross_entropy"`` gets softmax).
    loss : str, optional
        As for :class:`fastbp.MLP`; default "cross_entropy" for a softmax
        output, else "mse".
    dtype : {"float32", "float64"}, optional
        Default: the dtype of the weights (which must then be float32/float64).
    seed : int, optional
        As for :class:`fastbp.MLP` (it seeds the generator used for shuffling).
    leaky_slope, elu_alpha, dropout, bn_momentum, bn_eps : optional
        Read from the LeakyReLU/ELU/Dropout/BatchNorm1d modules of a Sequential
        (if given too, they must agree); otherwise the MLP defaults.  A state
        dict does not record them.

    Raises
    ------
    ImportError
        PyTorch is not installed.
    ValueError, TypeError
        Unsupported modules, inconsistent shapes or settings.
    """
    from .network import MLP

    torch = _torch()
    nn = torch.nn
    settings = {}
    if isinstance(module, nn.Module):
        if not isinstance(module, nn.Sequential):
            raise TypeError(f"pass an nn.Sequential or its state_dict(), got {type(module).__name__}")
        layers, settings = _parse_sequential(torch, module)
        for l, layer in enumerate(layers[:-1]):
            if layer["act"] == "softmax":
                raise ValueError("nn.Softmax may only follow the last nn.Linear")
            if layer["act"] is None:
                layer["act"] = "identity"
            if layer["act"] not in spec.HIDDEN_ACTIVATIONS:  # pragma: no cover
                raise ValueError(f"hidden activation {layer['act']!r} is not supported")
        last = layers[-1]
        if last["bn"] is not None or last["drop"] is not None:
            raise ValueError("fastbp applies batch norm and dropout to hidden layers only; "
                             "the output layer has BatchNorm1d or Dropout")
        hidden = [layer["act"] for layer in layers[:-1]]
        if activation is not None:
            given = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
            if [spec.ACTIVATION_NAMES[spec.activation_code(a)] for a in given] != hidden:
                raise ValueError(f"activation={activation!r} disagrees with the Sequential's "
                                 f"hidden activations {hidden}")
        if last["act"] is not None:
            if last["act"] not in spec.OUTPUT_ACTIVATIONS:
                raise ValueError(f"output activation {last['act']!r} is not supported; fastbp "
                                 f"outputs are {', '.join(spec.OUTPUT_ACTIVATIONS)}")
            if output is not None and spec.ACTIVATION_NAMES[
                    spec.activation_code(output, hidden=False)] != last["act"]:
                raise ValueError(f"output={output!r} disagrees with the Sequential's final "
                                 f"{last['act']} module")
            output = last["act"]
        activation = hidden
        drops = [layer["drop"] or 0.0 for layer in layers[:-1]]
        if any(drops):
            settings["dropout"] = drops
    elif isinstance(module, dict) or hasattr(module, "items"):
        layers = _parse_state_dict(module)
        if activation is None:
            activation = "relu"
    else:
        raise TypeError("from_torch needs an nn.Sequential or a state dict, got "
                        f"{type(module).__name__}")
    for key, val in (("leaky_slope", leaky_slope), ("elu_alpha", elu_alpha),
                     ("bn_momentum", bn_momentum), ("bn_eps", bn_eps), ("dropout", dropout)):
        if val is not None:
            if key in settings and settings[key] != val:
                raise ValueError(f"{key}={val} disagrees with the Sequential's {settings[key]}")
            settings[key] = val

    # shapes: W_l is (n_out, n_in), chained
    shapes = []
    for l, layer in enumerate(layers):
        W, b = layer["W"], layer["b"]
        if W.ndim != 2:
            raise ValueError(f"layer {l} weight must be 2-D (n_out, n_in), got shape {W.shape}")
        if b.shape != (W.shape[0],):
            raise ValueError(f"layer {l} bias must have shape ({W.shape[0]},), got {b.shape}")
        if layer["bn"] is not None and any(a.shape != (W.shape[0],) for a in layer["bn"]):
            raise ValueError(f"layer {l} batch-norm arrays must have shape ({W.shape[0]},)")
        if l and W.shape[1] != shapes[-1]:
            raise ValueError(f"layer {l} takes {W.shape[1]} inputs but layer {l - 1} has "
                             f"{shapes[-1]} outputs")
        if not l:
            shapes.append(W.shape[1])
        shapes.append(W.shape[0])
    if sizes is not None and list(sizes) != shapes:
        raise ValueError(f"sizes={list(sizes)} disagrees with the layer shapes, which give {shapes}")
    arrays = [a for layer in layers for a in [layer["W"], layer["b"]] + (layer["bn"] or [])]
    if dtype is None:
        dts = {a.dtype for a in arrays}
        if len(dts) != 1 or next(iter(dts)) not in (np.float32, np.float64):
            raise TypeError(f"weights have dtype(s) {sorted(d.name for d in dts)}; pass "
                            "dtype='float32' or 'float64' to convert")
        dtype = next(iter(dts))
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("the torch weights contain NaN or infinite values")
    if loss is None:
        loss = "cross_entropy" if output is not None and spec.ACTIVATION_NAMES[
            spec.activation_code(output, hidden=False)] == "softmax" else "mse"
    bn_flags = [layer["bn"] is not None for layer in layers[:-1]]
    if layers[-1]["bn"] is not None:
        raise ValueError("fastbp applies batch norm to hidden layers only")
    net = MLP(shapes, activation=activation, output=output, loss=loss, dtype=dtype, seed=seed,
              batch_norm=bn_flags, **settings)
    for l, layer in enumerate(layers):
        net.weights[l][:] = layer["W"]
        net.biases[l][:] = layer["b"]
        if layer["bn"] is not None:
            gamma, beta, mean, var = layer["bn"]
            if np.any(var < 0):
                raise ValueError(f"layer {l} has negative batch-norm running variances")
            net.bn_gamma[l][:] = gamma
            net.bn_beta[l][:] = beta
            net.running_mean[l][:] = mean
            net.running_var[l][:] = var
    return net
