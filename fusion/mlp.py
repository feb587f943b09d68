"""A small torch MLP over window vectors, scikit-learn style.

Missing modalities are imputed with training means and flagged by one 0/1
presence column per modality; inputs are standardised inside the estimator,
so callers pass raw ``WindowData.X`` rows (NaN blocks allowed).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from featurestore.schema import N_CLASSES

from .preprocess import Imputer, expand_proba, inner_split, present_classes, sample_weights


def resolve_device(device: str) -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _set_threads(num_threads: int | None) -> None:
    # Default one thread: these networks are small, so per-op overhead dominates and a
    # second OpenMP thread mostly spin-waits (measured ~9x more CPU, 2x slower wall on a
    # 2-core box). Pass num_threads for wide inputs/hidden layers on bigger machines.
    n = max(1, int(num_threads or 1))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _build_net(d_in: int, n_out: int, hidden: int, depth: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Torch MLP classifier with early stopping on an inner grouped split.

    Args:
        hidden: units per hidden layer. depth: hidden layers (0 = multinomial logistic).
        dropout: dropout after each hidden layer. lr, weight_decay: AdamW settings.
        max_epochs, patience: early stopping on weighted validation loss.
        batch_size: rows per step. label_smoothing: cross-entropy smoothing.
        class_weight: None | 'balanced' | 'sqrt' (frequencies measured with sample weights).
        val_fraction: share of groups (videos) held out for early stopping.
        n_classes: width of ``predict_proba`` (labels are 0..n_classes-1).
        blocks: (start, stop) column ranges of each modality, for presence columns.
        device: 'auto' (CUDA if available) | 'cpu' | 'cuda'.
        random_state: seed for initialisation, shuffling and the inner split.
        num_threads: torch CPU threads (None = 1, fastest for these small networks).
    """

    def __init__(self, hidden: int = 256, depth: int = 2, dropout: float = 0.2, lr: float = 1e-3,
                 weight_decay: float = 1e-4, max_epochs: int = 60, patience: int = 8,
                 batch_size: int = 256, label_smoothing: float = 0.0, class_weight: str | None = None,
                 val_fraction: float = 0.15, n_classes: int = N_CLASSES,
                 blocks: list[tuple[int, int]] | None = None, device: str = "auto",
                 random_state: int = 0, num_threads: int | None = None):
        self.hidden = hidden
        self.depth = depth
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.val_fraction = val_fraction
        self.n_classes = n_classes
        self.blocks = blocks
        self.device = device
        self.random_state = random_state
        self.num_threads = num_threads

    # ----------------------------------------------------------- training
    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "MLPClassifier":
        """Fit on X (n, d) float (NaN allowed), y (n,) int in [0, n_classes).

        ``groups`` (n,) keeps each group (video) on one side of the early-stopping split.
        """
        y = np.asarray(y, dtype=np.int64)
        _set_threads(self.num_threads)
        torch.manual_seed(self.random_state)
        dev = resolve_device(self.device)
        self.classes_ = np.arange(self.n_classes)
        self.present_, yy = present_classes(y, self.n_classes)
        w = sample_weights(y, self.n_classes, self.class_weight, sample_weight)

        tr, va = inner_split(y, groups, self.val_fraction, self.random_state)
        self.imputer_ = Imputer(self.blocks).fit(X[tr])
        Z = self.imputer_.transform(X)
        self.n_features_in_ = X.shape[1]
        net = _build_net(Z.shape[1], len(self.present_), self.hidden, self.depth, self.dropout).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=self.label_smoothing)

        def tensors(rows):
            return (torch.as_tensor(Z[rows], device=dev), torch.as_tensor(yy[rows], device=dev),
                    torch.as_tensor(w[rows], dtype=torch.float32, device=dev))

        Xt, yt, wt = tensors(tr)
        Xv, yv, wv = tensors(va)
        gen = torch.Generator(device="cpu").manual_seed(self.random_state)
        best, best_state, bad_epochs = np.inf, None, 0
        self.history_ = []
        for epoch in range(self.max_epochs):
            net.train()
            perm = torch.randperm(len(tr), generator=gen).to(dev)
            for i in range(0, len(tr), self.batch_size):
                b = perm[i:i + self.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = (loss_fn(net(Xt[b]), yt[b]) * wt[b]).sum() / wt[b].sum()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                vloss = float((loss_fn(net(Xv), yv) * wv).sum() / wv.sum())
            self.history_.append(vloss)
            if vloss < best - 1e-4:
                best, bad_epochs = vloss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad_epochs += 1
                if bad_epochs >= self.patience:
                    break
        net.load_state_dict(best_state)
        self.best_epoch_ = int(np.argmin(self.history_)) + 1
        self.net_ = net.eval()
        return self

    # ---------------------------------------------------------- inference
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes) class probabilities; zero for classes absent in training."""
        Z = self.imputer_.transform(X)
        dev = next(self.net_.parameters()).device
        out = []
        with torch.no_grad():
            for i in range(0, len(Z), 8192):
                logits = self.net_(torch.as_tensor(Z[i:i + 8192], device=dev))
                out.append(torch.softmax(logits, dim=1).float().cpu().numpy())
        proba = np.concatenate(out) if out else np.zeros((0, len(self.present_)), np.float32)
        return expand_proba(proba, self.present_, self.n_classes)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    # ----------------------------------------------------------------- IO
    def save(self, directory: str | Path) -> None:
        """Write ``mlp.pt`` (state dict) and ``mlp.json`` (params + preprocessing) to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, directory / "mlp.pt")
        config = {"params": self.get_params(), "present": self.present_.tolist(),
                  "n_features_in": self.n_features_in_, "imputer": self.imputer_.state(),
                  "best_epoch": self.best_epoch_}
        (directory / "mlp.json").write_text(json.dumps(config))

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> "MLPClassifier":
        """Inverse of :meth:`save`; the network goes to ``device`` ('auto' = CUDA if available)."""
        directory = Path(directory)
        config = json.loads((directory / "mlp.json").read_text())
        params = config["params"]
        params["blocks"] = [tuple(b) for b in params["blocks"]] if params.get("blocks") else None
        est = cls(**params)
        est.classes_ = np.arange(est.n_classes)
        est.present_ = np.asarray(config["present"], dtype=np.int64)
        est.n_features_in_ = config["n_features_in"]
        est.imputer_ = Imputer.from_state(config["imputer"])
        est.best_epoch_ = config.get("best_epoch")
        net = _build_net(est.n_features_in_ + len(est.imputer_._blocks(est.n_features_in_)),
                         len(est.present_), est.hidden, est.depth, est.dropout)
        net.load_state_dict(torch.load(directory / "mlp.pt", map_location="cpu", weights_only=True))
        est.net_ = net.to(resolve_device(device)).eval()
        return est
