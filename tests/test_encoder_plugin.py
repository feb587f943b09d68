"""A new encoder is one class and one registration: no file of the toolkit is edited.

The encoder here lives in a package installed only for the test (a real ``.dist-info``
with an entry point in ``reels_emotion.encoders`` on ``PYTHONPATH``), and a user's command
sequence runs through it: ``encoders`` lists it, ``embed`` stores its vectors, ``tune-fusion``
trains on them and ``predict-video`` rebuilds it from the model's lineage.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featurestore.encoders import AudioEncoder, get_encoder, register_encoder
from featurestore.encoders.base import check_output
from featurestore.encoders.registry import _REGISTRY

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
import numpy as np
from featurestore.encoders import AudioEncoder, REASON_SILENT


class BandEnergy(AudioEncoder):
    """Log energy of each window in 8 equal FFT bands (0-8 kHz)."""

    name = "band-energy"
    dim = 8

    def config(self):
        return {"bands": self.dim}

    def weights_sha256(self):
        return None

    def encode(self, batch):
        X = np.full((len(batch), self.dim), np.nan, np.float32)
        reasons = []
        for i, y in enumerate(batch):
            power = np.abs(np.fft.rfft(np.asarray(y, np.float64))) ** 2
            bands = np.array([b.sum() for b in np.array_split(power, self.dim)])
            if bands.sum() < 1e-8:
                reasons.append(REASON_SILENT)
                continue
            X[i] = np.log(bands + 1e-10)
            reasons.append(None)
        return X, reasons
'''


def _install_plugin(root: Path) -> Path:
    """A package ``bandplugin`` and its distribution metadata, as pip would leave them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bandplugin.py").write_text(PLUGIN)
    dist = root / "bandplugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bandplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reels_emotion.encoders]\nband-energy = bandplugin:BandEnergy\n")
    return root


def test_register_encoder_in_code_and_the_default_whole_video_path():
    class Loudness(AudioEncoder):
        name, dim = "test-loudness", 1

        def config(self):
            return {}

        def weights_sha256(self):
            return None

        def encode(self, batch):
            return np.array([[float(np.sqrt(np.mean(np.square(y))))] for y in batch], np.float32), [None] * len(batch)

    register_encoder("test-loudness", Loudness, "audio", 1, "RMS per window")
    try:
        enc = get_encoder("test-loudness", device="cpu")
        audio = np.concatenate([np.zeros(8000), np.ones(8000)]).astype(np.float32)   # 0.5 s silence, 0.5 s of 1.0
        X, reasons = enc.encode_video(audio, [(0.0, 0.5), (0.5, 1.0), (0.25, 0.75)])
        check_output(enc, X, reasons, 3)
        np.testing.assert_allclose(X[:, 0], [0.0, 1.0, np.sqrt(0.5)], atol=1e-6)
        X, reasons = enc.encode_video(None, [(0.0, 1.0)])
        assert np.isnan(X).all() and reasons == ["no audio track"]
        with pytest.raises(ValueError, match="already registered"):
            register_encoder("test-loudness", Loudness, "audio", 1)
        with pytest.raises(ValueError, match="modality 'smell'"):
            register_encoder("test-smell", Loudness, "smell", 1)
    finally:
        _REGISTRY.pop("test-loudness", None)
    with pytest.raises(ValueError, match="register_encoder"):
        get_encoder("test-loudness")


@pytest.mark.slow
def test_an_installed_encoder_runs_through_embed_tune_and_predict(tmp_path, espeak_ng):
    import media_fixtures as mf

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_install_plugin(tmp_path / "site")), str(REPO)])}

    def cli(*args):
        return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=600)

    listed = cli("encoders")
    assert listed.returncode == 0 and "band-energy" in listed.stdout, listed.stdout + listed.stderr

    texts = ["Saya senang sekali", "Hari ini indah", "Terima kasih teman"]
    lines = ["id,video,emotion"]
    for k in range(6):
        label = "Joy" if k % 2 == 0 else "Sadness"
        path = mf.make_talking_face_video(tmp_path / f"c{k}.mp4", text=texts[k // 2], face=False,
                                          pitch=95 if label == "Joy" else 5, speed=190 if label == "Joy" else 110)
        lines.append(f"c{k},{path},{label}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"

    r = cli("embed", "--store", str(store), "--manifest", str(tmp_path / "m.csv"), "--modalities", "audio",
            "--audio-encoder", "band-energy", "--device", "cpu", "--speaker-encoder", "none", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    q = cli("sql", "--store", str(store), "--format", "json",
            "SELECT e.name, e.dim, count(*) AS n FROM embeddings JOIN encoders AS e USING (encoder_id) GROUP BY ALL")
    assert q.returncode == 0, q.stdout + q.stderr
    assert [(r["name"], r["dim"]) for r in json.loads(q.stdout)] == [("band-energy", 8)]

    r = cli("tune-fusion", "--store", str(store), "--trials", "1", "--folds", "2", "--families", "pooled-logreg",
            "--estimate", "off")
    assert r.returncode == 0, r.stdout + r.stderr

    # predict-video knows the encoder only by the name in the model's lineage
    r = cli("predict-video", "--store", str(store), "--json", str(tmp_path / "c0.mp4"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    out = out[0] if isinstance(out, list) else out
    assert out["emotion"] in ("Joy", "Sadness", "Anger", "Fear", "Neutral", "Proud", "Surprise", "Trust")
