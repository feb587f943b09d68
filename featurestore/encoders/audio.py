"""Audio encoders: 128 acoustic emotion descriptors, or pooled Whisper encoder states.

``librosa-descriptors`` (default, no weights)
    Frame-level features on 40 ms Hann frames every 10 ms (MFCC, spectral
    shape, energy, autocorrelation pitch + periodicity), pooled per window into
    the 128 statistics named in :data:`FEATURE_NAMES`. Frames never cross a
    window edge and every statistic uses only the window's own frames, so the
    fast whole-video path (:meth:`LibrosaDescriptors.encode_video`) gives the
    same numbers as encoding each window alone (:meth:`~LibrosaDescriptors.encode`)
    whenever window starts fall on the 10 ms frame grid (they do for the
    0.5 s hop).

``whisper-stats``
    Whisper base encoder states (512 values per 20 ms), their mean and std per
    window, reduced 1024 -> 128 by a PCA fitted once on public synthetic speech
    and shipped with the package (:class:`WhisperStats`).

``whisper-encoder``
    The same states mean-pooled per window and projected to 128-D with a fixed
    random orthogonal matrix (``numpy.random.default_rng(seed)`` Gaussian
    512x128, QR, Q kept); kept for comparison.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from featurestore.encoders.base import (
    REASON_NO_AUDIO,
    REASON_SHORT_AUDIO,
    REASON_SILENT,
    AudioEncoder,
    missing_rows,
    window_bounds,
)
from featurestore import whisper_states
from featurestore.schema import SAMPLE_RATE

# ------------------------------------------------------------------ frame grid
FRAME_LENGTH = 640          # samples = 40 ms at 16 kHz: holds >= 3 periods at 75 Hz
HOP_LENGTH = 160            # samples = 10 ms
N_MELS = 40
N_MFCC = 20
N_DELTA2 = 10               # MFCCs whose 2nd-difference spread is kept
PITCH_FMIN = 75.0           # Hz
PITCH_FMAX = 500.0          # Hz
OCTAVE_COST = 0.08          # per octave, favours the shorter lag; Praat uses 0.01 plus a path
                            # finder, without which 0.08 is needed against sub-octave errors at
                            # loudness ramps
VOICING_THRESHOLD = 0.45    # normalised autocorrelation peak needed to call a frame voiced
VOICED_MIN_DB = -50.0       # frames quieter than this (dBFS) are never voiced
PAUSE_DB = -50.0            # frames quieter than this (dBFS) count as pause
F0_REF_HZ = 55.0            # semitone reference: f0_st = 12 * log2(f0 / 55 Hz)
SYLLABLE_PROMINENCE_DB = 6.0
SYLLABLE_MIN_GAP = 8        # frames (80 ms) between energy peaks
CONTRAST_FMIN = 100.0       # Hz; 6 octave bands up to 6.4 kHz (+ 1 residual band)
CONTRAST_BANDS = 6
MIN_FRAMES = 5              # a window needs >= 80 ms of audio
_DB_FLOOR = 1e-10           # power floor (-100 dB)


def _names() -> tuple[str, ...]:
    n: list[str] = []
    n += [f"mfcc{i:02d}_mean" for i in range(N_MFCC)]
    n += [f"mfcc{i:02d}_std" for i in range(N_MFCC)]
    n += [f"mfcc{i:02d}_delta_std" for i in range(N_MFCC)]
    n += [f"contrast{i}_mean" for i in range(CONTRAST_BANDS + 1)]
    n += [f"contrast{i}_std" for i in range(CONTRAST_BANDS + 1)]
    for s in _SPECTRAL:
        n += [f"{s}_mean", f"{s}_std"]
    n += ["rms_db_mean", "rms_db_std", "rms_db_p05", "rms_db_p95", "rms_db_range",
          "rms_db_slope_per_s", "rms_db_delta_abs_mean", "pause_share",
          "syllable_rate_hz", "crest_db"]
    n += ["voiced_share", "periodicity_mean", "f0_st_mean", "f0_st_std", "f0_st_p10",
          "f0_st_p50", "f0_st_p90", "f0_st_range", "f0_st_slope_per_s",
          "f0_st_delta_abs_mean", "hnr_db_mean", "hnr_db_std", "voiced_run_mean_s",
          "voiced_onset_rate_hz"]
    n += [f"mfcc{i:02d}_delta2_std" for i in range(N_DELTA2)]
    return tuple(n)


#: Per-frame spectral descriptors pooled by mean and std (in this order).
_SPECTRAL = ("centroid_hz", "bandwidth_hz", "rolloff85_hz", "flatness_db", "zcr",
             "flux_db", "entropy", "slope_db_per_khz", "alpha_ratio_db", "hammarberg_db")

#: The 128 window descriptors, in output order. Frame-level inputs (40 ms frames,
#: 10 ms hop): MFCC 0-19 of a 40-band log-mel power spectrogram (dB); spectral
#: contrast in 7 bands from 100 Hz (librosa); centroid/bandwidth/85% roll-off of
#: the magnitude spectrum; flatness (dB); zero-crossing rate; flux = mean positive
#: log-mel change from the previous frame; normalised spectral entropy; spectral
#: slope of the dB spectrum 0-5 kHz; alpha ratio (1-5 kHz vs 50 Hz-1 kHz energy,
#: dB); Hammarberg index (peak dB 0-2 kHz minus 2-5 kHz); frame RMS (dBFS).
#: Pitch: normalised autocorrelation (Boersma 1993) over 75-500 Hz with an
#: octave cost (0.08/octave); voiced = peak >= 0.45 and RMS > -50 dBFS; f0 in semitones re
#: 55 Hz; HNR = 10 log10(r / (1 - r)). Window statistics: ``_mean``/``_std`` over
#: the window's frames; ``delta``/``delta2`` = 1st/2nd frame differences inside
#: the window; p05/p10/... percentiles; ``slope_per_s`` = least-squares slope
#: over time; pause_share = share of frames below -50 dBFS; syllable_rate_hz =
#: RMS peaks (prominence >= 6 dB, >= 80 ms apart) per second; crest_db = peak
#: sample over window RMS. Pitch statistics are 0 when the window has no voiced
#: frame (then ``voiced_share`` is 0).
FEATURE_NAMES: tuple[str, ...] = _names()
assert len(FEATURE_NAMES) == 128, len(FEATURE_NAMES)


@dataclass
class FrameFeatures:
    """Frame-level features of one signal; every array has ``n_frames`` rows.

    Frame ``k`` covers samples ``[k * HOP_LENGTH, k * HOP_LENGTH + FRAME_LENGTH)``.
    """

    mfcc: np.ndarray        # (n, N_MFCC)
    logmel: np.ndarray      # (n, N_MELS) dB
    contrast: np.ndarray    # (n, CONTRAST_BANDS + 1) dB
    spectral: np.ndarray    # (n, len(_SPECTRAL)); the flux column is filled at pooling
    rms_db: np.ndarray      # (n,)
    power: np.ndarray       # (n,) mean square per frame
    peak: np.ndarray        # (n,) max |sample| per frame
    f0_st: np.ndarray       # (n,) semitones re 55 Hz (valid where voiced)
    periodicity: np.ndarray  # (n,) 0..1
    voiced: np.ndarray      # (n,) bool

    def __len__(self) -> int:
        return len(self.rms_db)


class _Tables:
    """Constant filterbanks and windows, built once per process."""

    def __init__(self) -> None:
        import librosa

        self.window = np.hanning(FRAME_LENGTH + 1)[:-1].astype(np.float64)  # periodic Hann
        self.freqs = np.fft.rfftfreq(FRAME_LENGTH, 1.0 / SAMPLE_RATE)
        self.mel_fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=FRAME_LENGTH, n_mels=N_MELS,
                                          fmin=0.0, fmax=SAMPLE_RATE / 2).astype(np.float64)
        import scipy.fft
        self.dct = scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]
        self.acf_nfft = 1 << math.ceil(math.log2(FRAME_LENGTH + SAMPLE_RATE / PITCH_FMIN + 2))
        self.lag_min = int(math.floor(SAMPLE_RATE / PITCH_FMAX))
        self.lag_max = int(math.ceil(SAMPLE_RATE / PITCH_FMIN))
        w_acf = np.fft.irfft(np.abs(np.fft.rfft(self.window, self.acf_nfft)) ** 2)
        self.window_acf = w_acf[: self.lag_max + 2] / w_acf[0]
        lags = np.arange(self.lag_max + 2, dtype=np.float64)
        lags[0] = 1.0
        self.octave_term = OCTAVE_COST * np.log2(PITCH_FMIN * lags / SAMPLE_RATE)
        f = self.freqs
        self.band_lo = (f >= 50) & (f < 1000)
        self.band_hi = (f >= 1000) & (f < 5000)
        self.band_0_2k = f < 2000
        self.band_2_5k = (f >= 2000) & (f < 5000)
        self.slope_mask = f < 5000
        fk = f[self.slope_mask] / 1000.0
        self.slope_weights = (fk - fk.mean()) / np.sum((fk - fk.mean()) ** 2)
        self.contrast_bands = _contrast_bands(f)
        self.window32 = self.window.astype(np.float32)
        self.mel_fb32 = self.mel_fb.astype(np.float32)
        self.freqs32 = f.astype(np.float32)
        self.freqs32_sq = (f ** 2).astype(np.float32)
        self.slope_weights32 = self.slope_weights.astype(np.float32)


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, _DB_FLOOR))


def frame_features(y: np.ndarray) -> FrameFeatures:
    """Frame-level features of mono 16 kHz audio ``y`` (needs >= FRAME_LENGTH samples)."""
    import librosa

    import scipy.fft

    t = _tables()
    # float32 spectra: half the memory traffic of float64 and ~3x faster FFTs,
    # far below the resolution any descriptor needs.
    y = np.ascontiguousarray(y, dtype=np.float32)
    frames = librosa.util.frame(y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH, axis=0)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    peak = np.max(np.abs(frames), axis=1).astype(np.float64)
    xw = frames * t.window32
    spec = scipy.fft.rfft(xw, axis=1)
    pw = spec.real ** 2 + spec.imag ** 2                     # (n, 321) power, float32
    mag = np.sqrt(pw)

    logmel = _db((pw @ t.mel_fb32.T).astype(np.float64))
    mfcc = logmel @ t.dct.T
    contrast = _contrast(mag, t)

    f = t.freqs32
    msum = np.maximum(mag.sum(axis=1, dtype=np.float64), _DB_FLOOR)
    centroid = (mag @ f).astype(np.float64) / msum
    # E[f^2] - E[f]^2 instead of sum(mag * (f - centroid)^2): one matmul, no (n, 321) temporary
    bandwidth = np.sqrt(np.maximum((mag @ t.freqs32_sq).astype(np.float64) / msum
                                   - centroid ** 2, 0.0))
    cum = np.cumsum(mag, axis=1)
    rolloff = t.freqs[np.minimum((cum < 0.85 * cum[:, -1:]).sum(axis=1), len(f) - 1)]
    pws = np.maximum(pw, np.float32(_DB_FLOOR))
    logpw = np.log(pws)                                      # shared by flatness/entropy/slope
    psum = pws.sum(axis=1, dtype=np.float64)
    flatness = (10 / math.log(10)) * (logpw.mean(axis=1, dtype=np.float64)) - _db(psum / pw.shape[1])
    signs = np.signbit(frames)
    zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
    # normalised entropy of p = pw / psum: (log psum - sum(pw log pw) / psum) / log(n_bins)
    entropy = (np.log(psum) - (pws * logpw).sum(axis=1, dtype=np.float64) / psum) / math.log(pw.shape[1])
    slope = (10 / math.log(10)) * (logpw[:, t.slope_mask] @ t.slope_weights32).astype(np.float64)
    alpha = _db(pw[:, t.band_hi].sum(axis=1, dtype=np.float64)) - _db(pw[:, t.band_lo].sum(axis=1, dtype=np.float64))
    hammarberg = _db(pw[:, t.band_0_2k].max(axis=1).astype(np.float64)) - _db(pw[:, t.band_2_5k].max(axis=1).astype(np.float64))
    flux_placeholder = np.zeros_like(centroid)
    spectral = np.stack([centroid, bandwidth, rolloff, flatness, zcr, flux_placeholder,
                         entropy, slope, alpha, hammarberg], axis=1)

    rms_db = _db(power)
    f0_st, periodicity = _pitch(xw, t)
    voiced = (periodicity >= VOICING_THRESHOLD) & (rms_db > VOICED_MIN_DB)
    return FrameFeatures(mfcc=mfcc, logmel=logmel, contrast=contrast, spectral=spectral,
                         rms_db=rms_db, power=power, peak=peak, f0_st=f0_st,
                         periodicity=periodicity, voiced=voiced)


def _contrast(mag: np.ndarray, t: _Tables) -> np.ndarray:
    """Spectral contrast (dB) per frame, as ``librosa.feature.spectral_contrast``.

    Same octave bands and 2% quantile peaks/valleys, but without librosa's
    ``top_db`` clipping, which is relative to the loudest value of the whole
    input and would make a window's numbers depend on its neighbours.
    """
    out = np.empty((mag.shape[0], len(t.contrast_bands)))
    for k, (band, q) in enumerate(t.contrast_bands):
        srt = np.sort(mag[:, band], axis=1)
        out[:, k] = _db(srt[:, -q:].mean(axis=1)) - _db(srt[:, :q].mean(axis=1))
    return out


def _contrast_bands(freq: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """(bin indices, quantile count) per band, exactly as librosa 0.11 selects them."""
    octa = np.zeros(CONTRAST_BANDS + 2)
    octa[1:] = CONTRAST_FMIN * (2.0 ** np.arange(0, CONTRAST_BANDS + 1))
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(current)
        if k > 0:
            current[idx[0] - 1] = True
        if k == CONTRAST_BANDS:
            current[idx[-1] + 1:] = True
        q = max(int(np.rint(0.02 * current.sum())), 1)
        sel = np.flatnonzero(current)
        if k < CONTRAST_BANDS:
            sel = sel[:-1]
        bands.append((sel, q))
    return bands


def _pitch(xw: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame f0 (semitones re 55 Hz) and periodicity from windowed frames ``xw``.

    Boersma's normalised autocorrelation: the frame's ACF divided by the
    window's ACF, peak picked in the 75-500 Hz lag range with an octave cost,
    refined by parabolic interpolation.
    """
    import scipy.fft

    sp = scipy.fft.rfft(xw, t.acf_nfft, axis=1)
    acf = scipy.fft.irfft(sp.real ** 2 + sp.imag ** 2, t.acf_nfft, axis=1)
    acf = acf[:, : t.lag_max + 2].astype(np.float64)
    energy = acf[:, :1]
    r = acf / np.maximum(energy, 1e-20) / t.window_acf[None, :]
    lo, hi = t.lag_min, t.lag_max
    score = r[:, lo:hi + 1] - t.octave_term[None, lo:hi + 1]
    k = np.argmax(score, axis=1) + lo
    rows = np.arange(len(k))
    y0, y1, y2 = r[rows, k - 1], r[rows, k], r[rows, k + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    lag = k + shift
    peak = np.clip(y1 - 0.25 * (y0 - y2) * shift, 0.0, 0.999)
    peak[energy[:, 0] <= 1e-20] = 0.0
    f0_st = 12.0 * np.log2(SAMPLE_RATE / lag / F0_REF_HZ)
    return f0_st, peak


def _slope(x: np.ndarray, dt: float) -> float:
    """Least-squares slope of ``x`` sampled every ``dt`` seconds (0 for < 2 points)."""
    n = len(x)
    if n < 2:
        return 0.0
    tt = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    return float(np.dot(tt, x - x.mean()) / np.dot(tt, tt) / dt)


def _slope_xy(t: np.ndarray, x: np.ndarray) -> float:
    """Least-squares slope of ``x`` over times ``t`` (0 for < 2 distinct times)."""
    tc = t - t.mean()
    den = float(np.dot(tc, tc))
    return float(np.dot(tc, x - x.mean()) / den) if den > 0 else 0.0


def _std0(x: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.std(x, axis=axis) if x.shape[axis] > 1 else np.zeros(x.shape[1:] if x.ndim > 1 else ())


def pool_window(ff: FrameFeatures, a: int, b: int) -> np.ndarray:
    """The 128 descriptors (float64, :data:`FEATURE_NAMES` order) of frames ``[a, b)``."""
    dt = HOP_LENGTH / SAMPLE_RATE
    n = b - a
    span_s = ((n - 1) * HOP_LENGTH + FRAME_LENGTH) / SAMPLE_RATE
    mfcc = ff.mfcc[a:b]
    d1 = np.diff(mfcc, axis=0)
    d2 = np.diff(mfcc[:, :N_DELTA2], n=2, axis=0)
    contrast = ff.contrast[a:b]
    spectral = ff.spectral[a:b].copy()
    lm = ff.logmel[a:b]
    flux = np.concatenate([[0.0], np.mean(np.maximum(np.diff(lm, axis=0), 0.0), axis=1)])
    spectral[:, _SPECTRAL.index("flux_db")] = flux
    # The first frame has no predecessor inside the window: pool flux over the rest.
    spec_mean = spectral.mean(axis=0)
    spec_std = spectral.std(axis=0)
    fi = _SPECTRAL.index("flux_db")
    spec_mean[fi] = flux[1:].mean()
    spec_std[fi] = flux[1:].std()
    spec_stats = np.stack([spec_mean, spec_std], axis=1).ravel()

    rms = ff.rms_db[a:b]
    p05, p95 = np.percentile(rms, [5, 95])
    from scipy.signal import find_peaks
    peaks, _ = find_peaks(rms, prominence=SYLLABLE_PROMINENCE_DB, distance=SYLLABLE_MIN_GAP)
    win_power = float(ff.power[a:b].mean())
    crest = 20 * math.log10(max(float(ff.peak[a:b].max()), 1e-10) / math.sqrt(max(win_power, 1e-20)))
    energy = [rms.mean(), rms.std(), p05, p95, p95 - p05, _slope(rms, dt),
              np.abs(np.diff(rms)).mean(), float(np.mean(rms < PAUSE_DB)),
              len(peaks) / span_s, crest]

    voiced = ff.voiced[a:b]
    per = ff.periodicity[a:b]
    nv = int(voiced.sum())
    if nv:
        f0 = ff.f0_st[a:b]
        fv = f0[voiced]
        q10, q50, q90 = np.percentile(fv, [10, 50, 90])
        idx = np.flatnonzero(voiced)
        # slope over voiced frames at their true times
        f0_slope = _slope_xy(idx * dt, fv)
        both = voiced[1:] & voiced[:-1]
        f0_dabs = float(np.abs(np.diff(f0))[both].mean()) if both.any() else 0.0
        rv = per[voiced]
        hnr = 10 * np.log10(rv / (1 - rv))
        runs = int(voiced[0]) + int(np.sum(voiced[1:] & ~voiced[:-1]))
        pitch = [nv / n, per.mean(), fv.mean(), fv.std(), q10, q50, q90, q90 - q10, f0_slope,
                 f0_dabs, hnr.mean(), hnr.std(), nv * dt / runs, runs / span_s]
    else:
        pitch = [0.0, per.mean()] + [0.0] * 12

    out = np.concatenate([
        mfcc.mean(axis=0), mfcc.std(axis=0), _std0(d1),
        contrast.mean(axis=0), contrast.std(axis=0),
        spec_stats, np.asarray(energy, dtype=np.float64), np.asarray(pitch, dtype=np.float64),
        _std0(d2),
    ])
    return out


def _check_audio(y: Any, what: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{what}: audio must be 1-D mono samples at {SAMPLE_RATE} Hz, got "
                         f"shape {arr.shape}; downmix/resample first (featurestore.media does)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what}: audio must be float samples in [-1, 1], got dtype "
                         f"{arr.dtype}; divide integer PCM by its full scale first")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{what}: audio contains NaN or inf samples; re-decode the file")
    return arr


class LibrosaDescriptors(AudioEncoder):
    """128 acoustic emotion descriptors per window (see :data:`FEATURE_NAMES`).

    Args:
        silence_dbfs: windows whose RMS is below this level (dBFS) are "silent
            window" NaN rows: every descriptor of digital silence is degenerate.
        device: accepted for a uniform API; this encoder is numpy-only (CPU).
    """

    name = "librosa-descriptors"
    dim = 128
    version = "1"
    packages_used = ("numpy", "scipy", "librosa")

    def __init__(self, silence_dbfs: float = -70.0, device: str = "auto") -> None:
        super().__init__(device)
        self.silence_dbfs = float(silence_dbfs)

    def config(self) -> dict[str, Any]:
        return {
            "sample_rate": SAMPLE_RATE, "frame_length": FRAME_LENGTH, "hop_length": HOP_LENGTH,
            "n_mels": N_MELS, "n_mfcc": N_MFCC, "pitch_fmin": PITCH_FMIN,
            "pitch_fmax": PITCH_FMAX, "octave_cost": OCTAVE_COST,
            "voicing_threshold": VOICING_THRESHOLD, "voiced_min_db": VOICED_MIN_DB,
            "pause_db": PAUSE_DB, "silence_dbfs": self.silence_dbfs,
            "features": list(FEATURE_NAMES),
        }

    def weights_sha256(self) -> str | None:
        return None

    def _pool_or_reason(self, ff: FrameFeatures, a: int, b: int) -> tuple[np.ndarray | None, str | None]:
        if b - a < MIN_FRAMES:
            return None, REASON_SHORT_AUDIO
        if _db(np.array([ff.power[a:b].mean()]))[0] < self.silence_dbfs:
            return None, REASON_SILENT
        return pool_window(ff, a, b), None

    def _assemble(self, rows: list[tuple[np.ndarray | None, str | None]]) -> tuple[np.ndarray, list[str | None]]:
        X = np.full((len(rows), self.dim), np.nan, dtype=np.float32)
        reasons: list[str | None] = []
        for i, (vec, reason) in enumerate(rows):
            if vec is not None:
                X[i] = vec
            reasons.append(reason)
        return X, reasons

    def encode(self, batch: Sequence[np.ndarray | None]) -> tuple[np.ndarray, list[str | None]]:
        """Encode windows independently.

        Args:
            batch: per window, (n_samples,) float mono 16 kHz audio, or None when
                the video has no audio track.
        """
        rows: list[tuple[np.ndarray | None, str | None]] = []
        for i, y in enumerate(batch):
            if y is None:
                rows.append((None, REASON_NO_AUDIO))
                continue
            y = _check_audio(y, f"window {i}")
            if len(y) < FRAME_LENGTH:
                rows.append((None, REASON_SHORT_AUDIO))
                continue
            ff = frame_features(y)
            rows.append(self._pool_or_reason(ff, 0, len(ff)))
        return self._assemble(rows)

    def encode_video(self, audio: np.ndarray | None, windows: Any) -> tuple[np.ndarray, list[str | None]]:
        """Fast path: frame features once over the whole track, pooled per window.

        Args:
            audio: (n_samples,) float mono 16 kHz audio of the whole video, or None.
            windows: ``(n, 2)`` start/end seconds, or objects with ``start_s``/``end_s``.

        Returns:
            Same as :meth:`encode` on the windows' audio slices (equal within float
            rounding when window starts lie on the 10 ms grid).
        """
        bounds = window_bounds(windows)
        if audio is None:
            return missing_rows(len(bounds), self.dim, REASON_NO_AUDIO)
        audio = _check_audio(audio, "audio")
        if len(audio) < FRAME_LENGTH:
            return missing_rows(len(bounds), self.dim, REASON_SHORT_AUDIO)
        ff = frame_features(audio)
        rows = []
        for start_s, end_s in bounds:
            s = int(round(start_s * SAMPLE_RATE))
            e = min(int(round(end_s * SAMPLE_RATE)), len(audio))
            a = -(-s // HOP_LENGTH)                                   # first frame starting >= s
            b = min((e - FRAME_LENGTH) // HOP_LENGTH + 1, len(ff)) if e >= FRAME_LENGTH else 0
            rows.append(self._pool_or_reason(ff, a, max(a, b)))
        return self._assemble(rows)


# ------------------------------------------------------------------ whisper
class _WhisperStates(AudioEncoder):
    """Whisper base encoder states (512 values per 20 ms step), pooled per window.

    The track is cut into 30 s chunks (Whisper's context); each chunk's
    1500 x 512 encoder output is pooled over the 20 ms steps whose centre lies
    in the window by :meth:`_pool`, which subclasses define. The states come from
    the process's shared pass (``featurestore.whisper_states``): a Transcriber of
    the same run that encoded a chunk already leaves it for this encoder.

    :meth:`encode` (windows alone) pads each window with silence to 30 s, so its
    numbers differ from :meth:`encode_video` (windows in context) and it is ~30x
    slower: use it only for isolated clips.

    Args:
        model_dir: a CTranslate2 Whisper directory; default: the packaged Whisper
            base (``featurestore.weights.whisper_base_dir()``).
        device: "auto" | "cpu" | "cuda".
        compute_type: CTranslate2 compute type; default int8 on CPU, float16 on CUDA.
        cpu_threads: CTranslate2 intra-op threads on CPU (0 = one per core).
        batch_size: 30 s chunks encoded per call.
        silence_dbfs: windows quieter than this are "silent window" NaN rows.
        context: ``"full"``: every chunk padded to Whisper's 30 s (the stored feature sets
            of before); ``"fit"``: a chunk shorter than 30 s (a short clip, a track's last
            chunk) padded only to its length rounded up to 2 s, at least 10 s
            (``featurestore.whisper_states``): other numbers, so another feature set id.
    """

    packages_used = ("numpy", "faster-whisper", "ctranslate2")
    uses_gpu = True
    CHUNK_S = whisper_states.CHUNK_S
    STEP_S = whisper_states.STEP_S          # one encoder output step (20 ms)
    STATE_DIM = 512

    def __init__(self, model_dir: str | None = None, device: str = "auto",
                 compute_type: str | None = None, cpu_threads: int = 0,
                 batch_size: int = 4, silence_dbfs: float = -70.0, context: str = "full") -> None:
        super().__init__(device)
        self.silence_dbfs = float(silence_dbfs)
        if context not in whisper_states.CONTEXTS:
            raise ValueError(f"context={context!r}: use one of {whisper_states.CONTEXTS}")
        self.context = context
        if model_dir is None:
            from featurestore.weights import whisper_base_dir
            model_dir = str(whisper_base_dir())
        self.model_dir = str(model_dir)
        self.batch_size = int(batch_size)
        self.compute_type = compute_type or ("float16" if self.device.startswith("cuda") else "int8")
        # The process's one pass for these settings: the Transcriber of the same run reads
        # the states it leaves (featurestore.whisper_states), so each clip is encoded once.
        self._pass = whisper_states.shared_pass(self.model_dir, self.device, self.compute_type, cpu_threads)
        self._model = self._pass.model
        self._sha: str | None = None

    def _pool(self, states: np.ndarray) -> np.ndarray:
        """One window's vector (dim,) from its encoder states (steps, 512)."""
        raise NotImplementedError

    def _base_config(self) -> dict[str, Any]:
        cfg = {"model": "whisper-base-ct2", "state_dim": self.STATE_DIM, "chunk_s": self.CHUNK_S,
               "compute_type": self.compute_type, "silence_dbfs": self.silence_dbfs}
        if self.context != "full":
            # Only then: the feature sets stored before contexts existed keep their ids.
            cfg.update(context=self.context, min_context_s=whisper_states.MIN_CONTEXT_S,
                       context_step_s=whisper_states.CONTEXT_STEP_S)
        return cfg

    def weights_sha256(self) -> str | None:
        if self._sha is None:
            from featurestore.weights import sha256_file
            import os
            self._sha = sha256_file(os.path.join(self.model_dir, "model.bin"))
        return self._sha

    def _reason(self, y: np.ndarray) -> str | None:
        """Missing reason for one window's samples, or None when it is encodable."""
        if len(y) < MIN_FRAMES * HOP_LENGTH:
            return REASON_SHORT_AUDIO
        if _db(np.array([np.mean(np.square(y, dtype=np.float64))]))[0] < self.silence_dbfs:
            return REASON_SILENT
        return None

    def states(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """Encoder states, (steps, 512) float32 each, of <= 30 s, 16 kHz audio chunks in this
        encoder's context (1500 steps under ``"full"``; ``featurestore.whisper_states``)."""
        return self._pass.encode_chunks(chunks, self.batch_size, self.context)

    def encode(self, batch: Sequence[np.ndarray | None]) -> tuple[np.ndarray, list[str | None]]:
        """Encode each window alone (padded to 30 s); see the class docstring."""
        X = np.full((len(batch), self.dim), np.nan, dtype=np.float32)
        reasons: list[str | None] = [None] * len(batch)
        todo = []
        for i, y in enumerate(batch):
            if y is None:
                reasons[i] = REASON_NO_AUDIO
                continue
            y = _check_audio(y, f"window {i}").astype(np.float32)
            reasons[i] = self._reason(y)
            if reasons[i] is not None:
                continue
            todo.append((i, y[: int(self.CHUNK_S * SAMPLE_RATE)]))
        if todo:
            states = self._pass.encode_chunks([y for _, y in todo], self.batch_size, self.context)
            for (i, y), st in zip(todo, states):
                steps = max(1, int(round(len(y) / SAMPLE_RATE / self.STEP_S)))
                X[i] = self._pool(st[:steps])
        return X, reasons

    def encode_video(self, audio: np.ndarray | None, windows: Any) -> tuple[np.ndarray, list[str | None]]:
        """Encode all windows of one track with 30 s of context (see the class docstring)."""
        bounds = window_bounds(windows)
        if audio is None:
            return missing_rows(len(bounds), self.dim, REASON_NO_AUDIO)
        audio = _check_audio(audio, "audio").astype(np.float32)
        # 30 s track chunks from 0 s; a Transcriber of this run may have encoded them already.
        # Only a track's last chunk can be shorter than 30 s, so its chunks' steps laid end
        # to end are the track's global 20 ms steps under either context.
        states = np.concatenate(self._pass.track_states([audio], self.batch_size, self.context)[0])
        n_steps = int(math.ceil(len(audio) / SAMPLE_RATE / self.STEP_S))
        X = np.full((len(bounds), self.dim), np.nan, dtype=np.float32)
        reasons: list[str | None] = [None] * len(bounds)
        centres = (np.arange(n_steps) + 0.5) * self.STEP_S
        for w, (start_s, end_s) in enumerate(bounds):
            sel = np.flatnonzero((centres >= start_s) & (centres < end_s))
            s, e = int(round(start_s * SAMPLE_RATE)), int(round(end_s * SAMPLE_RATE))
            reasons[w] = self._reason(audio[s:e])
            if reasons[w] is None and len(sel) == 0:
                reasons[w] = REASON_SHORT_AUDIO
            if reasons[w] is not None:
                continue
            X[w] = self._pool(states[sel])
        return X, reasons


class WhisperEncoder(_WhisperStates):
    """``whisper-encoder``: the states' window mean, times a seeded random orthonormal 512 x 128.

    Kept for comparison and for stores embedded with it; ``whisper-stats`` replaces
    the random projection with a fitted one (see :class:`WhisperStats`).

    Args:
        seed: seed of the projection matrix; the rest as :class:`_WhisperStates`.
    """

    name = "whisper-encoder"
    dim = 128
    version = "1"

    def __init__(self, model_dir: str | None = None, seed: int = 0, **options: Any) -> None:
        super().__init__(model_dir, **options)
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.standard_normal((self.STATE_DIM, self.dim)))
        self.projection = q.astype(np.float32)        # (512, 128), orthonormal columns

    def config(self) -> dict[str, Any]:
        return {**self._base_config(), "pooling": "mean", "projection": "qr-gaussian", "seed": self.seed}

    def _pool(self, states: np.ndarray) -> np.ndarray:
        return states.mean(axis=0) @ self.projection


#: The reduction ``whisper-stats`` ships: a PCA of the 1024 window statistics, fitted once by
#: ``scripts/fit_whisper_pca.py`` on speech no evaluation uses (see :class:`WhisperStats`).
WHISPER_PCA_FILE = "whisper_base_stats_pca.npz"


def load_whisper_pca(path: str | None = None) -> dict[str, np.ndarray]:
    """The shipped PCA: ``mean``/``scale`` (1024,) and ``components`` (1024, 128) float32.

    Raises:
        FileNotFoundError: the file is missing (rebuild it with ``scripts/fit_whisper_pca.py``).
    """
    import os
    path = path or os.path.join(os.path.dirname(__file__), WHISPER_PCA_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: the whisper-stats PCA is missing; rebuild it with "
                                "`.venv/bin/python scripts/fit_whisper_pca.py`")
    with np.load(path) as z:
        return {k: z[k].astype(np.float32) for k in ("mean", "scale", "components")}


def apply_pca(stats: np.ndarray, pca: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 1024) window statistics -> (n, 128) float32 by :func:`load_whisper_pca`'s map
    (NaN rows, i.e. missing windows, stay NaN)."""
    z = (np.asarray(stats, dtype=np.float32) - pca["mean"]) / pca["scale"]
    return (z @ pca["components"]).astype(np.float32)


def window_stats(states: np.ndarray) -> np.ndarray:
    """``[mean, std]`` over the steps of one window's states (steps, 512) -> (1024,) float32."""
    return np.concatenate([states.mean(axis=0), states.std(axis=0)]).astype(np.float32)


class WhisperStats(_WhisperStates):
    """``whisper-stats``: per window, the mean and the std of Whisper base's encoder states.

    The std keeps what a mean loses: how much the voice moves within the second
    (pitch and energy contours show up there). The 1024 statistics are reduced to
    128 by a PCA (z-scored, then projected on the top 128 components) that
    ``scripts/fit_whisper_pca.py`` fitted once, without labels, on espeak-ng
    Indonesian speech of the public reel transcripts' sentences in many voices,
    pitches and rates. It is fitted on no corpus any figure is measured on, so it
    cannot leak; and because it is part of the encoder, a training fold and its
    validation videos see the same fixed map (a PCA refitted inside each fold
    would make one feature set mean different things per model).

    Args:
        reduction: ``"pca"`` (128-D, default) or ``"none"`` (the statistics themselves).
        pooling: ``"mean+std"`` (default, 1024 statistics) or ``"mean"`` (512; no PCA).
        pca_path: another PCA file with the same keys (for research).
        The rest as :class:`_WhisperStates`.
    """

    name = "whisper-stats"
    version = "1"

    def __init__(self, model_dir: str | None = None, reduction: str = "pca", pooling: str = "mean+std",
                 pca_path: str | None = None, **options: Any) -> None:
        if reduction not in ("pca", "none"):
            raise ValueError(f"reduction={reduction!r}: use 'pca' or 'none'")
        if pooling not in ("mean+std", "mean"):
            raise ValueError(f"pooling={pooling!r}: use 'mean+std' or 'mean'")
        if pooling == "mean" and reduction == "pca":
            raise ValueError("the shipped PCA reduces mean+std statistics; use reduction='none' with pooling='mean'")
        self.reduction, self.pooling = reduction, pooling
        self.dim = self.STATE_DIM * (2 if pooling == "mean+std" else 1)
        self._pca = None
        if reduction == "pca":
            self._pca = load_whisper_pca(pca_path)
            self.dim = int(self._pca["components"].shape[1])
        super().__init__(model_dir, **options)

    def config(self) -> dict[str, Any]:
        cfg = {**self._base_config(), "pooling": self.pooling, "reduction": self.reduction}
        if self._pca is not None:
            import hashlib
            cfg["pca_sha256"] = hashlib.sha256(self._pca["components"].tobytes()).hexdigest()[:16]
        return cfg

    def reduce(self, stats: np.ndarray) -> np.ndarray:
        """(n, 1024) window statistics -> (n, dim) float32 (the identity when reduction is none)."""
        if self._pca is None:
            return np.asarray(stats, dtype=np.float32)
        return apply_pca(stats, self._pca)

    def _pool(self, states: np.ndarray) -> np.ndarray:
        if self.pooling == "mean":
            return states.mean(axis=0)
        return self.reduce(window_stats(states)[None])[0]


class DescriptorsWhisper(AudioEncoder):
    """``descriptors-whisper``: the 128 librosa descriptors, then Whisper base's 512 state
    means, per window (640-D).

    The two see different things: the descriptors measure the voice (pitch, loudness,
    voice quality, tempo) and the Whisper states what a speech model attends to. On
    Java-SED speech, actor-grouped, per-speaker normalised, both together score above
    either alone (docs/benchmarks.md, section 6). A window missing from either part is missing here.

    Args:
        silence_dbfs: shared by both parts. ``whisper_options`` go to :class:`WhisperStats`
            (``model_dir``, ``compute_type``, ``cpu_threads``, ``batch_size``).
    """

    name = "descriptors-whisper"
    version = "1"
    packages_used = ("numpy", "faster-whisper", "ctranslate2")
    uses_gpu = True          # the Whisper part

    def __init__(self, device: str = "auto", silence_dbfs: float = -70.0, **whisper_options: Any) -> None:
        super().__init__(device)
        self.descriptors = LibrosaDescriptors(silence_dbfs=silence_dbfs, device=device)
        self.whisper = WhisperStats(pooling="mean", reduction="none", device=device,
                                    silence_dbfs=silence_dbfs, **whisper_options)
        self.dim = self.descriptors.dim + self.whisper.dim

    def config(self) -> dict[str, Any]:
        return {"descriptors": {"version": self.descriptors.version, **self.descriptors.config()},
                "whisper": {"version": self.whisper.version, **self.whisper.config()}}

    def weights_sha256(self) -> str | None:
        return self.whisper.weights_sha256()

    @staticmethod
    def _join(a: tuple[np.ndarray, list[str | None]],
              b: tuple[np.ndarray, list[str | None]]) -> tuple[np.ndarray, list[str | None]]:
        X = np.concatenate([a[0], b[0]], axis=1)
        reasons = [ra or rb for ra, rb in zip(a[1], b[1])]
        X[[r is not None for r in reasons]] = np.nan
        return X.astype(np.float32), reasons

    def encode(self, batch: Sequence[np.ndarray | None]) -> tuple[np.ndarray, list[str | None]]:
        """Each window alone (see :meth:`WhisperStats.encode`: prefer :meth:`encode_video`)."""
        return self._join(self.descriptors.encode(batch), self.whisper.encode(batch))

    def encode_video(self, audio: np.ndarray | None, windows: Any) -> tuple[np.ndarray, list[str | None]]:
        """All windows of one track (Whisper with 30 s of context)."""
        windows = list(windows)
        return self._join(self.descriptors.encode_video(audio, windows), self.whisper.encode_video(audio, windows))
