"""PyTorch CPU eager: nn.Sequential + torch.optim.SGD (momentum 0, default
for-each/for-loop choice), per batch zero_grad / forward / loss / backward /
step, torch.set_num_threads(2)."""

NAME = "torch"


def available():
    try:
        import torch  # noqa: F401
    except Exception as e:  # pragma: no cover
        return False, "not importable (%s: %s)" % (type(e).__name__, e)
    return True, ""


def versions():
    import torch

    return {"torch": torch.__version__,
            "torch_blas": "mkl" if torch.backends.mkl.is_available() else "?",
            "torch_mkldnn": bool(torch.backends.mkldnn.is_available())}


class Trainer:
    note = ""

    def __init__(self, case, X, y, init):
        import torch
        from torch import nn

        from .common import THREADS

        torch.set_num_threads(THREADS)
        self.torch = torch
        layers = []
        L = len(case.sizes) - 1
        for i, (a, b) in enumerate(zip(case.sizes[:-1], case.sizes[1:])):
            lin = nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(init[i][0].T.copy()))
                lin.bias.copy_(torch.from_numpy(init[i][1]))
            layers.append(lin)
            if i < L - 1:
                layers.append({"relu": nn.ReLU, "tanh": nn.Tanh,
                               "sigmoid": nn.Sigmoid}[case.hidden]())
        self.model = nn.Sequential(*layers).float()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=case.lr,
                                   momentum=0.0)
        self.B = case.batch
        self.X = torch.from_numpy(X)
        if case.loss == "mse":
            self.y = torch.from_numpy(y.reshape(len(y), -1))
            self.loss = lambda out, t: 0.5 * ((out - t) ** 2).sum(1).mean()
        else:
            self.y = torch.from_numpy(y.astype("int64"))
            self.loss = nn.CrossEntropyLoss()
        self.n = len(X) // self.B * self.B

    def epoch(self):
        model, opt, loss_fn, X, y, B = (self.model, self.opt, self.loss,
                                        self.X, self.y, self.B)
        for s in range(0, self.n, B):
            opt.zero_grad()
            loss = loss_fn(model(X[s:s + B]), y[s:s + B])
            loss.backward()
            opt.step()

    def params(self):
        lins = [m for m in self.model if hasattr(m, "weight")]
        return [(m.weight.detach().numpy().T.copy(),
                 m.bias.detach().numpy().copy()) for m in lins]


def make_trainer(case, X, y, init):
    return Trainer(case, X, y, init)
