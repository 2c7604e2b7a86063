"""Per-epoch training record returned by :meth:`fastbp.MLP.fit`."""


class History:
    """What happened during ``fit``, one entry per completed epoch.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch (evaluated batch by batch, before
        each batch's update, as PyTorch and scikit-learn report it).
    val_loss, val_score : list of float
        Validation loss and score (accuracy for classification losses,
        ``None`` for mse) per epoch, when validation data was given.
    lr : list of float
        Learning rate used in each epoch.
    epoch_time : list of float
        Wall time of each epoch's training in seconds.
    grad_norms : list of list of float
        Per-layer weight-gradient norms after each epoch (``record_grad_norms``).
    samples : int
        Training samples processed.
    best_epoch : int or None
        Epoch (0-based) whose parameters were restored by early stopping.
    stop_reason : str or None
        ``None`` when all epochs ran; ``"early_stopping"``, ``"interrupted"``
        (KeyboardInterrupt), ``"diverged"`` (non-finite loss), ``"callback"``
        (a callback returned True), or the string a callback returned to stop
        (e.g. ``"time_budget"`` from :class:`fastbp.callbacks.TimeBudget`).
    """

    def __init__(self):
        self.loss = []
        self.val_loss = []
        self.val_score = []
        self.lr = []
        self.epoch_time = []
        self.grad_norms = []
        self.samples = 0
        self.best_epoch = None
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

    def plot(self, path=None, ax=None):
        """Plot the loss curves (training, and validation if recorded).

        Parameters
        ----------
        path : str or PathLike, optional
            Save the figure there (PNG by extension) and close it.
        ax : matplotlib Axes, optional
            Draw into these axes instead of a new figure.

        Returns
        -------
        matplotlib Axes
        """
        try:
            import matplotlib
            if path is not None and ax is None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'fastbp[plot]'") from None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        epochs = range(1, self.epochs + 1)
        ax.plot(epochs, self.loss, label="training loss")
        if self.val_loss:
            ax.plot(range(1, len(self.val_loss) + 1), self.val_loss, label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_yscale("log" if self.loss and min(self.loss) > 0 else "linear")
        ax.legend()
        ax.grid(True, alpha=0.3)
        if path is not None:
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=100)
            plt.close(ax.figure)
        return ax
