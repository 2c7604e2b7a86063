"""Hand-written NumPy backprop: preallocated float32 buffers, every product
through ``np.matmul(..., out=)`` (OpenBLAS sgemm), every elementwise op in
place; a Python loop over the mini-batches.  Meant as a strong, fair peer."""

import numpy as np

NAME = "numpy"


def available():
    return True, ""


def versions():
    return {"numpy": np.__version__}


class Trainer:
    note = ""

    def __init__(self, case, X, y, init):
        self.case = case
        B = case.batch
        self.B = B
        self.X = np.ascontiguousarray(X, np.float32)
        self.n = len(X) // B * B
        self.W = [np.array(W, np.float32, order="C") for W, _ in init]
        self.b = [np.array(b, np.float32) for _, b in init]
        sizes = case.sizes
        L = len(self.W)
        self.L = L
        # activations A[0] is a view of the input batch; A[l] (B, sizes[l])
        self.A = [None] + [np.empty((B, s), np.float32) for s in sizes[1:]]
        self.D = [None] + [np.empty((B, s), np.float32) for s in sizes[1:]]
        self.mask = [None] + [np.empty((B, s), np.bool_) for s in sizes[1:-1]]
        self.tmp = [None] + [np.empty((B, s), np.float32) for s in sizes[1:-1]]
        self.gW = [np.empty_like(W) for W in self.W]
        self.gb = [np.empty_like(b) for b in self.b]
        self.rowmax = np.empty((B, 1), np.float32)
        self.rowsum = np.empty((B, 1), np.float32)
        self.rows = np.arange(B)
        if case.loss == "mse":
            self.Y = np.ascontiguousarray(y, np.float32).reshape(len(X), -1)
        else:
            self.Y = np.ascontiguousarray(y, np.intp)
        # lr/B folded into one float32 step
        self.step = np.float32(case.lr / B)
        self.invB = np.float32(1.0 / B)

    def epoch(self):
        case, B, L = self.case, self.B, self.L
        X, Y = self.X, self.Y
        W, b, A, D, gW, gb = self.W, self.b, self.A, self.D, self.gW, self.gb
        mask, tmp = self.mask, self.tmp
        hidden = case.hidden
        softmax = case.output == "softmax"
        step = self.step
        matmul, add, sub, mult = np.matmul, np.add, np.subtract, np.multiply
        for s in range(0, self.n, B):
            A[0] = X[s:s + B]
            # ---- forward
            for l in range(1, L + 1):
                a = A[l]
                matmul(A[l - 1], W[l - 1], out=a)
                add(a, b[l - 1], out=a)
                if l < L:
                    if hidden == "relu":
                        np.maximum(a, 0, out=a)
                    elif hidden == "tanh":
                        np.tanh(a, out=a)
                    else:  # sigmoid, in place
                        np.negative(a, out=a)
                        np.exp(a, out=a)
                        add(a, 1, out=a)
                        np.reciprocal(a, out=a)
            # ---- output delta (dLoss/dlogits, not yet divided by B)
            out, d = A[L], D[L]
            if softmax:
                np.max(out, axis=1, keepdims=True, out=self.rowmax)
                sub(out, self.rowmax, out=d)
                np.exp(d, out=d)
                np.sum(d, axis=1, keepdims=True, out=self.rowsum)
                np.divide(d, self.rowsum, out=d)
                d[self.rows, Y[s:s + B]] -= 1
            else:  # identity output, 1/2 sum of squares
                sub(out, Y[s:s + B], out=d)
            # ---- backward + update, top layer first
            for l in range(L, 0, -1):
                d = D[l]
                if l > 1:  # input gradient with the old weights
                    dp = D[l - 1]
                    matmul(d, W[l - 1].T, out=dp)
                    if hidden == "relu":
                        np.greater(A[l - 1], 0, out=mask[l - 1])
                        mult(dp, mask[l - 1], out=dp)
                    elif hidden == "tanh":  # 1 - a^2
                        t = tmp[l - 1]
                        mult(A[l - 1], A[l - 1], out=t)
                        sub(1, t, out=t)
                        mult(dp, t, out=dp)
                    else:  # sigmoid: a (1 - a)
                        t = tmp[l - 1]
                        sub(1, A[l - 1], out=t)
                        mult(t, A[l - 1], out=t)
                        mult(dp, t, out=dp)
                # scale the (small) delta by lr/B rather than the gradient
                mult(d, step, out=d)
                g = gW[l - 1]
                matmul(A[l - 1].T, d, out=g)
                sub(W[l - 1], g, out=W[l - 1])
                gbl = gb[l - 1]
                np.sum(d, axis=0, out=gbl)
                sub(b[l - 1], gbl, out=b[l - 1])

    def params(self):
        return [(W.copy(), b.copy()) for W, b in zip(self.W, self.b)]


def make_trainer(case, X, y, init):
    return Trainer(case, X, y, init)
