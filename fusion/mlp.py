"""A small torch MLP over window vectors, scikit-learn style.

Missing modalities are imputed with training means and flagged by one 0/1
presence column per modality; inputs are standardised inside the estimator,
so callers pass raw ``WindowData.X`` rows (NaN blocks allowed).

Fitting leaves torch's global state alone: initial weights, batch order and dropout masks
come from generators of the estimator's own, seeded by ``random_state`` (torch's global
generator is neither seeded nor advanced), and the thread count ``num_threads`` holds only
while ``fit``/``predict_proba`` run (the caller's setting is restored after). On CPU a fit
gives bit for bit what it gave when it seeded torch's global generator.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from featurestore.schema import N_CLASSES

from .preprocess import Imputer, LabelSpaceMixin, expand_proba, inner_split, present_classes, sample_weights


def resolve_device(device: str) -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``num_threads`` (None: 1) inside the block and
    restored after."""
    before = torch.get_num_threads()
    wanted = max(1, int(num_threads or 1))
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _seed(random_state: int | None) -> int:
    """``random_state``, or a fresh seed for None (scikit-learn's meaning)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(random_state)


class _Dropout(nn.Module):
    """``nn.Dropout`` drawing its masks from ``generator`` (set while fitting) instead of
    torch's global generator; the identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return torch.zeros_like(x)
        # The draws and arithmetic of torch's CPU dropout kernel, so a generator in the state
        # of the global one gives the same masks and values.
        noise = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        noise.div_(1.0 - self.p)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
    """An ``nn.Linear`` initialised as torch's default (Kaiming-uniform weights, biases uniform
    in +-1/sqrt(n_in)) from ``generator``; left uninitialised without one (weights to be loaded)."""
    layer = torch.nn.utils.skip_init(nn.Linear, n_in, n_out)
    if generator is not None:
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(n_in) if n_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _build_net(d_in: int, n_out: int, hidden: int, depth: int, dropout: float,
               generator: torch.Generator | None = None) -> nn.Sequential:
    """(Linear, GELU, Dropout) x ``depth``, then Linear to ``n_out`` logits; the layer order
    is the layout of saved state dicts (``0.weight``, ``0.bias``, ``3.weight``, ...)."""
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(depth):
        layers += [_linear(width, hidden, generator), nn.GELU(), _Dropout(dropout)]
        width = hidden
    layers.append(_linear(width, n_out, generator))
    return nn.Sequential(*layers)


def _set_dropout_generator(net: nn.Module, generator: torch.Generator | None) -> None:
    for module in net.modules():
        if isinstance(module, _Dropout):
            module.generator = generator


class MLPClassifier(LabelSpaceMixin, ClassifierMixin, BaseEstimator):
    """Torch MLP classifier with early stopping on an inner grouped split.

    Args:
        hidden: units per hidden layer. depth: hidden layers (0 = multinomial logistic).
        dropout: dropout after each hidden layer. lr, weight_decay: AdamW settings.
        max_epochs, patience: early stopping on weighted validation loss.
        batch_size: rows per step. label_smoothing: cross-entropy smoothing.
        class_weight: None | 'balanced' | 'sqrt' (frequencies measured with sample weights).
        val_fraction: share of groups (videos) held out for early stopping.
        n_classes: width of ``predict_proba`` (labels are 0..n_classes-1), or None for the
            classes of ``y`` (``fusion.preprocess.LabelSpaceMixin``).
        blocks: (start, stop) column ranges of each modality, for presence columns.
        device: 'auto' (CUDA if available) | 'cpu' | 'cuda'.
        random_state: seed for initialisation, shuffling, dropout and the inner split.
        num_threads: torch CPU threads while fitting and predicting (restored after; None =
            1). One by default: these networks are small, so per-op overhead dominates and a
            second OpenMP thread mostly spin-waits (15 epochs on 1687 windows, 2-core box:
            1.2-4.6 s wall and 0.4-1.6 s CPU on one thread, 8.6-14.6 s wall and 3.7-6.2 s CPU
            on two). Raise it for wide layers on bigger machines.
    """

    def __init__(self, hidden: int = 256, depth: int = 2, dropout: float = 0.2, lr: float = 1e-3,
                 weight_decay: float = 1e-4, max_epochs: int = 60, patience: int = 8,
                 batch_size: int = 256, label_smoothing: float = 0.0, class_weight: str | None = None,
                 val_fraction: float = 0.15, n_classes: int | None = N_CLASSES,
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
        """Fit on X (n, d) float (NaN allowed), y (n,) class indices in [0, n_classes).

        ``groups`` (n,) keeps each group (video) on one side of the early-stopping split.
        """
        X, y = self._validate_fit(X, y)
        if len(y) < 2:
            raise ValueError(f"MLPClassifier needs 2 or more samples (n_samples = {len(y)}): one to train "
                             "on and one to stop early on")
        with torch_threads(self.num_threads):
            return self._fit(X, y, sample_weight, groups)

    def _fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None,
             groups: np.ndarray | None) -> "MLPClassifier":
        seed = _seed(self.random_state)
        dev = resolve_device(self.device)
        self.present_, yy = present_classes(y, self.n_classes_)
        w = sample_weights(y, self.n_classes_, self.class_weight, sample_weight)

        tr, va = inner_split(y, groups, self.val_fraction, self.random_state)
        self.imputer_ = Imputer(self.blocks).fit(X[tr])
        Z = self.imputer_.transform(X)
        # One generator initialises the weights and then draws the dropout masks, as the global
        # one did after torch.manual_seed(seed): on CPU the fit is that of global seeding, bit
        # for bit, without touching global state. (CUDA masks need a CUDA generator.)
        stream = torch.Generator().manual_seed(seed)
        net = _build_net(Z.shape[1], len(self.present_), self.hidden, self.depth, self.dropout,
                         generator=stream).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=self.label_smoothing)

        def tensors(rows):
            return (torch.as_tensor(Z[rows], device=dev), torch.as_tensor(yy[rows], device=dev),
                    torch.as_tensor(w[rows], dtype=torch.float32, device=dev))

        Xt, yt, wt = tensors(tr)
        Xv, yv, wv = tensors(va)
        order = torch.Generator(device="cpu").manual_seed(seed)
        best, best_state, bad_epochs = np.inf, None, 0
        self.history_ = []
        masks = stream if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(seed)
        _set_dropout_generator(net, masks)
        try:
            for epoch in range(self.max_epochs):
                net.train()
                perm = torch.randperm(len(tr), generator=order).to(dev)
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
        finally:
            _set_dropout_generator(net, None)  # a fitted net holds no generator (pickles small)
        net.load_state_dict(best_state)
        self.best_epoch_ = int(np.argmin(self.history_)) + 1
        self.net_ = net.eval()
        return self

    # ---------------------------------------------------------- inference
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes_) class probabilities; zero for classes absent in training."""
        X = self._validate_predict(X)
        Z = self.imputer_.transform(X)
        dev = next(self.net_.parameters()).device
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for i in range(0, len(Z), 8192):
                logits = self.net_(torch.as_tensor(Z[i:i + 8192], device=dev))
                out.append(torch.softmax(logits, dim=1).float().cpu().numpy())
        proba = np.concatenate(out) if out else np.zeros((0, len(self.present_)), np.float32)
        return expand_proba(proba, self.present_, self.n_classes_)

    # ----------------------------------------------------------------- IO
    def save(self, directory: str | Path) -> None:
        """Write ``mlp.pt`` (state dict) and ``mlp.json`` (params + preprocessing) to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, directory / "mlp.pt")
        config = {"params": self.get_params(), "classes": self.classes_.tolist(), "present": self.present_.tolist(),
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
        est.classes_ = np.asarray(config["classes"]) if "classes" in config else np.arange(est.n_classes)
        est.n_classes_ = len(est.classes_)
        est.present_ = np.asarray(config["present"], dtype=np.int64)
        est.n_features_in_ = config["n_features_in"]
        est.imputer_ = Imputer.from_state(config["imputer"])
        est.best_epoch_ = config.get("best_epoch")
        net = _build_net(est.n_features_in_ + len(est.imputer_._blocks(est.n_features_in_)),
                         len(est.present_), est.hidden, est.depth, est.dropout)
        net.load_state_dict(torch.load(directory / "mlp.pt", map_location="cpu", weights_only=True))
        est.net_ = net.to(resolve_device(device)).eval()
        return est
