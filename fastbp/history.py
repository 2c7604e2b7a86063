"""Per-epoch training record returned by :meth:`fastbp.MLP.fit`."""


class History:
    """What happened during ``fit``, one entry per completed epoch.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch (evaluated batch by batch, before
        each batch's update, as PyTorch and scikit-learn report it).
    lr : list of float
        Learning rate used in each epoch.
    epoch_time : list of float
        Wall time of each epoch in seconds.
    samples : int
        Training samples processed.
    stop_reason : str or None
        ``None`` when all epochs ran; ``"interrupted"`` (KeyboardInterrupt),
        ``"diverged"`` (non-finite loss) or ``"callback"`` otherwise.
    """

    def __init__(self):
        self.loss = []
        self.lr = []
        self.epoch_time = []
        self.samples = 0
        self.stop_reason = None

    @property
    def epochs(self):
        """Number of completed epochs."""
        return len(self.loss)

    def __len__(self):
        return len(self.loss)

    def __getitem__(self, key):
        return getattr(self, key)

    def __repr__(self):
        last = f", last loss {self.loss[-1]:.6g}" if self.loss else ""
        stop = f", stopped: {self.stop_reason}" if self.stop_reason else ""
        return f"History({self.epochs} epochs{last}{stop})"
