"""``MLP.summary()``: a per-layer table and totals, as Keras' ``model.summary()`` prints."""

import numpy as np


def _bytes(n):
    """``n`` bytes in human units (1 KiB = 1024 bytes)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024.0
    return ""  # pragma: no cover


def summary(net):
    """The text of :meth:`fastbp.MLP.summary`."""
    itemsize = np.dtype(net.dtype).itemsize
    head = ("layer", "in", "out", "activation", "batch norm", "dropout", "params")
    rows = []
    n_stats = 0
    for l in range(net.n_layers):
        n_in, n_out = net.sizes[l], net.sizes[l + 1]
        hidden = l < net.n_layers - 1
        bn = hidden and net.batch_norm[l]
        drop = net.dropout[l] if hidden else 0.0
        count = n_out * n_in + n_out + (2 * n_out if bn else 0)
        n_stats += 2 * n_out if bn else 0
        rows.append((f"dense_{l}" + ("" if hidden else " (output)"), str(n_in), str(n_out),
                     net.activations[l], "yes" if bn else "-", f"{drop:g}" if drop else "-",
                     f"{count:,}"))
    widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
    right = {1, 2, 6}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(head))
    total = net.n_params
    out = [f"MLP {' -> '.join(map(str, net.sizes))}   loss: {net.loss}   "
           f"dtype: {np.dtype(net.dtype).name}", rule, line(head), rule]
    out += [line(r) for r in rows]
    out += [rule,
            f"Total params: {total:,} ({_bytes(total * itemsize)})",
            f"Trainable params: {total:,}",
            f"Non-trainable values: {n_stats:,} batch-norm running statistics "
            f"({_bytes(n_stats * itemsize)})"]
    return "\n".join(out)
