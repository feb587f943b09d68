"""Speaker groups from the voice, where the manifest names no speaker.

The speaker stage of ``embed`` stores a voice vector per speech window (``resemblyzer``,
``featurestore.encoders.speaker``). Here each video's voice is the mean of its speech
windows' vectors (SQL ``voice_vectors``), centred on the store's mean voice (Resemblyzer's
vectors are non-negative, so every pair shares a large common component that hides who is
speaking; centring shows it). Acted
emotion moves a voice about as far as a change of speaker; on request (``remove_emotion``), where
the store holds videos with both a manifest group and a label, the directions along which their
voices move with the emotion (within a speaker) are projected out first
(:func:`emotion_directions`, a nuisance attribute projection; docs/benchmarks.md, section 8).
Then the videos are clustered by scikit-learn's
``AgglomerativeClustering`` (cosine distance, average linkage, a distance threshold): two
groups of videos join when their videos' mean pairwise cosine distance is below the threshold.

The threshold is chosen, and recorded with every row (``speaker_groups.threshold_source``):

* from the store's own manifest groups when at least two groups have two videos with speech
  each: the 0.9 quantile of the distances between two videos of one group
  (:data:`THRESHOLD_RULE`, :func:`pair_threshold`), so that nine in ten of one speaker's pairs
  are joined. The cut leans to merging on purpose: a speaker's clips split by how they sound
  (acted anger against sadness) would be normalised by emotion, which erases it: on the
  Java-SED sets, actors hidden, the balanced-error cut clusters about as well and normalises
  worse (docs/benchmarks.md, section 8);
* else :data:`DEFAULT_THRESHOLD`, the same rule's cut on the Java-SED speech clips' actors
  (``python -m bench.speakers``; docs/benchmarks.md, section 8).

A manifest group always wins (view ``video_speakers``); the inferred group is stored beside
it in ``speaker_groups``, whose only writer is :func:`infer_speaker_groups`, so ``embed``'s
writers never overwrite it. A video without speech has no voice and no inferred group: its
normalisation falls back to the pooled statistics of every stored window
(:func:`normalisation_pools`, rule :data:`FALLBACK`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from .sqlfiles import read_sql, relation_columns

#: Cosine-distance cut (of centred voices) when the store has no manifest groups to choose one
#: from: the THRESHOLD_RULE cut on javanese-speech's 288 clips of takes 1-2, 6 actors
#: (``python -m bench.speakers --corpus speech --takes 2``; docs/benchmarks.md, section 8).
DEFAULT_THRESHOLD = 1.059
#: How the cut is chosen from manifest groups (:func:`pair_threshold`).
THRESHOLD_RULE = "within-0.9"
#: An emotion enters :func:`emotion_directions` with at least this many voices of grouped,
#: labelled videos (a mean of fewer is mostly the speakers' own noise).
MIN_EMOTION_VIDEOS = 5
#: predict-video's cut for "this file is a stored speaker": the ASSIGN_QUANTILE of the distances
#: from each stored video to its own speaker's mean voice without it (:func:`assignment_threshold`),
#: so nine in ten of a known speaker's clips are recognised (bench/speakers.py, "assignment";
#: docs/benchmarks.md, section 8). DEFAULT_ASSIGN_THRESHOLD: that cut on the javanese-speech
#: store of takes 1-2, for a store with no speaker of two videos.
ASSIGN_QUANTILE = 0.9
DEFAULT_ASSIGN_THRESHOLD = 0.761
#: A speaker whose videos hold fewer windows than this is normalised by the fallback pool
#: (too few windows for a stable mean and spread of hundreds of dimensions: ~10 s of audio).
MIN_SPEAKER_WINDOWS = 20
#: Normalisation pool of videos without a usable speaker: the pooled statistics of every
#: stored window ("pooled"), or the statistics of the nearest speaker by voice ("nearest").
FALLBACK = "pooled"
FALLBACKS = ("pooled", "nearest")
#: Pool key of the pooled statistics (every stored window).
POOLED = "*"
GROUP_PREFIX = "voice-"


@dataclass
class VoiceVectors:
    """Per video with speech: its mean voice vector (float64 (n, d), unit norm), speech windows, group."""

    video_id: np.ndarray        # str (n,)
    voice: np.ndarray           # float64 (n, d)
    n_windows: np.ndarray       # int64 (n,)
    group: np.ndarray           # object (n,): manifest group or None
    encoder_id: str | None = None
    label: np.ndarray | None = None   # object (n,): the video's label or None

    def __len__(self) -> int:
        return len(self.video_id)


@dataclass
class SpeakerReport:
    """What :func:`infer_speaker_groups` did."""

    n_videos: int
    n_clusters: int
    threshold: float
    threshold_source: str
    encoder_id: str | None
    sizes: list[int] = field(default_factory=list)
    agreement: dict = field(default_factory=dict)
    #: Emotion directions projected out of the voices before clustering (:func:`emotion_directions`).
    n_emotion_directions: int = 0

    def describe(self) -> str:
        if not self.n_videos:
            return "speaker groups: no voice vectors in the store (embed with the speaker stage first)"
        agree = ""
        if self.agreement:
            a = self.agreement
            agree = (f"; against the {a['n_groups']} manifest groups of {a['n_videos']} videos: ARI "
                     f"{a['ari']:.3f}, purity {a['purity']:.3f}, pair error {a['pair_error']:.3f}")
        return (f"speaker groups: {self.n_videos} videos with speech -> {self.n_clusters} voice clusters "
                f"(sizes {sorted(self.sizes, reverse=True)[:10]}{'...' if len(self.sizes) > 10 else ''}); "
                f"threshold {self.threshold:.3f} from {self.threshold_source}{agree}")


def _unit(V: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(V, axis=1, keepdims=True)
    return V / np.where(norm > 0, norm, 1.0)


def centre(V: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows of ``V`` less ``mean``, the mean used): ``mean`` None takes ``V``'s own
    (label-free: the store's mean voice)."""
    V = np.asarray(V, dtype=np.float64)
    mu = V.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    if len(V) < 2 and mean is None:
        return _unit(V), mu * 0
    return _unit(V - mu), mu


def emotion_directions(V: np.ndarray, groups: np.ndarray, labels: np.ndarray | None) -> np.ndarray | None:
    """float64 (k, d) orthonormal directions along which a speaker's voice moves with the emotion.

    Learned from the videos that have both a manifest group and a label (their own speaker
    groups are never inferred: a manifest group wins): each voice is centred on its speaker's
    mean voice, and the directions are the span of the emotions' means of those residuals
    (k = emotions - 1, an SVD). Removing them (:func:`remove_directions`) is a nuisance
    attribute projection: the voices of one speaker acting anger and sadness come closer,
    so a cluster follows the speaker rather than the emotion, which per-speaker normalisation
    would otherwise erase. Hand-written because it is one SVD; no maintained library ships it.

    Args:
        V: float (n, d) unit voices (centred on the store's mean voice).
        groups, labels: (n,) manifest group and label per row, or None.
    Returns:
        The directions, or None when fewer than two emotions have :data:`MIN_EMOTION_VIDEOS`
        voices of speakers with two or more such videos.
    """
    if labels is None or not len(V):
        return None
    ok = np.array([isinstance(g, str) and isinstance(y, str) for g, y in zip(groups, labels)], dtype=bool)
    g, y = np.asarray(groups, dtype=object)[ok].astype(str), np.asarray(labels, dtype=object)[ok].astype(str)
    R = np.asarray(V, dtype=np.float64)[ok]
    names, counts = np.unique(g, return_counts=True)
    keep = np.isin(g, names[counts >= 2])
    g, y, R = g[keep], y[keep], R[keep]
    for name in np.unique(g):
        m = g == name
        R[m] = R[m] - R[m].mean(axis=0)
    emotions, n = np.unique(y, return_counts=True)
    emotions = emotions[n >= MIN_EMOTION_VIDEOS]
    if len(emotions) < 2:
        return None
    M = np.array([R[y == e].mean(axis=0) for e in emotions])
    _, sv, Vt = np.linalg.svd(M, full_matrices=False)
    k = int(min(len(emotions) - 1, (sv > sv[0] * 1e-9).sum()))
    return Vt[:k] if k else None


def remove_directions(V: np.ndarray, B: np.ndarray | None) -> np.ndarray:
    """Unit rows of ``V`` less their projection on the orthonormal rows of ``B`` (None: ``V``)."""
    if B is None or not len(V):
        return V
    V = np.asarray(V, dtype=np.float64)
    return _unit(V - (V @ B.T) @ B)


def speaker_encoder_id(con) -> str | None:
    """The speaker feature set of the store on ``con`` (None without one)."""
    if relation_columns(con, "video_features") is None:
        return None
    row = con.execute(read_sql("queries", "speaker_encoder")).fetchone()
    return row[0] if row else None


def voice_vectors(con, encoder_id: str | None = None) -> VoiceVectors:
    """Every embedded video's mean voice vector (SQL ``voice_vectors``); empty without a speaker set."""
    encoder_id = encoder_id or speaker_encoder_id(con)
    if encoder_id is None:
        return VoiceVectors(np.array([], str), np.zeros((0, 0)), np.array([], np.int64), np.array([], object))
    t = con.execute(read_sql("queries", "voice_vectors"), [encoder_id]).to_arrow_table()
    ids = np.array(t["video_id"].to_pylist(), dtype=str)
    V = np.array(t["voice"].to_pylist(), dtype=np.float64).reshape(len(ids), -1)
    return VoiceVectors(ids, _unit(V), np.array(t["n_speech_windows"].to_pylist(), np.int64),
                        np.array(t["group"].to_pylist(), dtype=object), encoder_id,
                        np.array(t["label"].to_pylist(), dtype=object))


def cosine_distances(V: np.ndarray) -> np.ndarray:
    """float64 (n, n) cosine distances of unit rows."""
    from sklearn.metrics.pairwise import cosine_distances as cd
    return cd(V)


def pair_threshold(V: np.ndarray, groups: np.ndarray, rule: str | None = None) -> tuple[float, dict] | None:
    """The cut of the "same speaker" decision chosen on the grouped videos' pairs.

    Args:
        V: float (n, d) voice vectors; groups: (n,) manifest group or None.
        rule: ``"balanced"``: the cut minimising the balanced pair error; ``"within-q"``
            (q a share, e.g. ``"within-0.9"``): the q-quantile of the same-group distances,
            so that share of one speaker's pairs is joined (a cut that leans to merging:
            splitting one speaker's clips by how they sound, e.g. by emotion, would normalise
            the emotion away). Default :data:`THRESHOLD_RULE`.
    Returns:
        (threshold, details) or None when fewer than two groups have two grouped videos each.
    """
    g = np.array([x if isinstance(x, str) and x.strip() else None for x in groups], dtype=object)
    keep = np.flatnonzero(g != None)  # noqa: E711 - elementwise
    if len(keep) < 2:
        return None
    names, counts = np.unique(g[keep].astype(str), return_counts=True)
    if (counts >= 2).sum() < 2:
        return None
    D = cosine_distances(V[keep])
    iu = np.triu_indices(len(keep), 1)
    d = D[iu]
    same = (g[keep][iu[0]] == g[keep][iu[1]])
    cand = np.unique(d)
    cand = np.r_[cand[:-1] + np.diff(cand) / 2, cand[-1]] if len(cand) > 1 else cand
    ws, bs = np.sort(d[same]), np.sort(d[~same])
    frr = 1.0 - np.searchsorted(ws, cand, side="right") / max(len(ws), 1)   # same pairs cut apart
    far = np.searchsorted(bs, cand, side="right") / max(len(bs), 1)         # different pairs joined
    err = (frr + far) / 2
    rule = rule or THRESHOLD_RULE
    if rule == "balanced":
        k = int(np.argmin(err))
    elif rule.startswith("within-"):
        q = float(rule.split("-", 1)[1])
        k = int(np.clip(np.searchsorted(cand, np.quantile(ws, q)), 0, len(cand) - 1))
    else:
        raise ValueError(f"rule={rule!r}: use 'balanced' or 'within-<share>'")
    return float(cand[k]), {"n_videos": int(len(keep)), "n_groups": int(len(names)), "rule": rule,
                            "balanced_pair_error": float(err[k]),
                            "within_median": float(np.median(ws)) if len(ws) else None,
                            "between_median": float(np.median(bs)) if len(bs) else None}


def cluster(V: np.ndarray, threshold: float) -> np.ndarray:
    """int64 (n,) cluster per row of unit ``V``: average-linkage agglomerative clustering on
    cosine distance, cut at ``threshold`` (one cluster for a single row)."""
    if len(V) == 0:
        return np.zeros(0, np.int64)
    if len(V) == 1:
        return np.zeros(1, np.int64)
    from sklearn.cluster import AgglomerativeClustering
    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=float(threshold))
    return model.fit_predict(V).astype(np.int64)


def agreement(truth, pred) -> dict:
    """ARI, purity (share of videos in their cluster's majority group) and the pair error rate
    (share of video pairs whose "same speaker" decision differs from the truth) of ``pred``."""
    from sklearn.metrics import adjusted_rand_score
    from sklearn.metrics.cluster import contingency_matrix
    truth, pred = np.asarray(truth).astype(str), np.asarray(pred).astype(str)
    n = len(truth)
    if n < 2:
        return {"n_videos": n, "n_groups": len(set(truth)), "n_clusters": len(set(pred)),
                "ari": float("nan"), "purity": float("nan"), "pair_error": float("nan")}
    C = contingency_matrix(truth, pred)
    iu = np.triu_indices(n, 1)
    same_t = truth[iu[0]] == truth[iu[1]]
    same_p = pred[iu[0]] == pred[iu[1]]
    return {"n_videos": n, "n_groups": int(C.shape[0]), "n_clusters": int(C.shape[1]),
            "ari": float(adjusted_rand_score(truth, pred)), "purity": float(C.max(axis=0).sum() / n),
            "pair_error": float(np.mean(same_t != same_p)),
            "false_same": float(np.mean(same_p[~same_t])) if (~same_t).any() else 0.0,
            "false_different": float(np.mean(~same_p[same_t])) if same_t.any() else 0.0}


def group_names(codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """'voice-<k>' per row, k numbered by each cluster's first video id (stable for a clustering)."""
    order = {}
    for c in codes[np.argsort(ids, kind="stable")]:
        order.setdefault(int(c), len(order))
    return np.array([f"{GROUP_PREFIX}{order[int(c)] + 1}" for c in codes], dtype=object)


def choose_threshold(vv: VoiceVectors, threshold: float | None = None) -> tuple[float, str]:
    """(threshold, how it was chosen): given, from the manifest groups' pairs, or the default."""
    if threshold is not None:
        return float(threshold), "given"
    chosen = pair_threshold(vv.voice, vv.group) if len(vv) else None
    if chosen is not None:
        t, d = chosen
        return t, (f"manifest groups ({d['n_groups']} groups, {d['n_videos']} videos: balanced pair "
                   f"error {d['balanced_pair_error']:.3f})")
    return DEFAULT_THRESHOLD, f"default ({THRESHOLD_RULE} cut on javanese-speech actors)"


def infer_speaker_groups(store, threshold: float | None = None, log=None,
                         remove_emotion: bool = False) -> SpeakerReport:
    """Cluster every embedded video's voice and replace the store's ``speaker_groups`` rows.

    ``remove_emotion``: project the emotion directions (:func:`emotion_directions`) out of the
    voices first, where the store's grouped, labelled videos give them. Off by default: on the
    Java-SED sets, actors hidden, it makes the clusters follow the actors much more closely on
    both corpora, but per-speaker normalisation by those clusters scored better on one corpus
    and worse on the other (docs/benchmarks.md, section 8)."""
    from .store import WriteBatch, utcnow
    con = store.connect()
    try:
        vv = voice_vectors(con)
        old = (con.execute(read_sql("queries", "clustered_videos")).to_arrow_table()
               if relation_columns(con, "speaker_groups") is not None else None)
    finally:
        con.close()
    if old is None:
        from .store import StoreError
        raise StoreError(f"the store {store.root} has no speaker_groups table (its schema predates "
                           "speaker groups); open it with this version's featurestore to upgrade it")
    vv = replace(vv, voice=centre(vv.voice)[0]) if len(vv) else vv
    B = emotion_directions(vv.voice, vv.group, vv.label) if remove_emotion else None
    vv = replace(vv, voice=remove_directions(vv.voice, B))
    t, source = choose_threshold(vv, threshold)
    if B is not None:
        source += f"; {len(B)} emotion directions removed (learned from the labelled, grouped videos)"
    elif remove_emotion:
        source += (f"; no emotion directions removed (they need two emotions with {MIN_EMOTION_VIDEOS} "
                   "or more voices of videos with a manifest group and a label)")
    codes = cluster(vv.voice, t)
    names = group_names(codes, vv.video_id) if len(vv) else np.array([], object)
    rows = None
    if len(vv):
        now = utcnow()
        rows = pa.table({
            "video_id": pa.array(vv.video_id.tolist(), pa.string()),
            "speaker_group": pa.array(names.tolist(), pa.string()),
            "n_speech_windows": pa.array(vv.n_windows.tolist(), pa.int32()),
            "encoder_id": pa.array([vv.encoder_id] * len(vv), pa.string()),
            "threshold": pa.array([t] * len(vv), pa.float64()),
            "threshold_source": pa.array([source] * len(vv), pa.string()),
            "clustered_at": pa.array([now] * len(vv), pa.timestamp("us", tz="UTC"))})

    def plan(con) -> WriteBatch:
        # Every row is replaced: the rows committed when the transaction runs are deleted
        # (read here, so a concurrent clustering's rows go too; the last clustering wins whole).
        batch = WriteBatch()
        current = con.execute(read_sql("queries", "clustered_videos")).to_arrow_table()
        if current.num_rows:
            batch.delete("speaker_groups", current)
        if rows is not None:
            batch.replace("speaker_groups", rows)
        return batch

    if old.num_rows or rows is not None:
        store.commit(plan)
    grouped = np.array([isinstance(g, str) for g in vv.group], dtype=bool)
    agree = agreement(vv.group[grouped], names[grouped]) if grouped.sum() >= 2 else {}
    report = SpeakerReport(len(vv), int(len(np.unique(codes))), t, source, vv.encoder_id,
                           np.bincount(codes).tolist() if len(codes) else [], agree,
                           0 if B is None else len(B))
    if log:
        log(report.describe())
    return report


# ---------------------------------------------------------------------- what fusion reads
def video_speakers(con) -> pd.DataFrame | None:
    """video_id, group, inferred_group, speaker, speaker_source, n_speech_windows, n_windows
    (view ``video_speakers``); None on a connection without speaker groups."""
    if relation_columns(con, "video_speakers") is None:
        return None
    return con.execute(read_sql("queries", "video_speakers")).to_arrow_table().to_pandas()


def normalisation_pools(speakers: pd.DataFrame, window_counts: dict[str, int] | None = None,
                        fallback: str = FALLBACK, voices: VoiceVectors | None = None) -> dict[str, str]:
    """video_id -> the statistics pool that normalises it.

    A video's pool is its ``speaker`` (manifest group, else inferred group) when that speaker's
    stored videos hold at least :data:`MIN_SPEAKER_WINDOWS` windows (``window_counts``: windows
    per video; None: the stored windows, column n_windows). Otherwise the fallback: ``"pooled"`` ->
    :data:`POOLED` (every stored window), ``"nearest"`` -> the speaker, among those with enough
    windows, whose mean voice is nearest the video's (``voices`` needed; a video without a
    voice still gets :data:`POOLED`).
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback={fallback!r}: use one of {FALLBACKS}")
    sp = speakers.copy()
    sp["speaker"] = sp["speaker"].where(sp["speaker"].notna(), None)
    if window_counts is not None:
        sp["n"] = sp["video_id"].map(window_counts).fillna(0)
    else:
        sp["n"] = sp["n_windows" if "n_windows" in sp else "n_speech_windows"].fillna(0)
    totals = sp.dropna(subset=["speaker"]).groupby("speaker")["n"].sum()
    big = set(totals[totals >= MIN_SPEAKER_WINDOWS].index)
    pools = {v: (s if s in big else POOLED) for v, s in zip(sp["video_id"], sp["speaker"])}
    if fallback == "nearest" and voices is not None and len(voices) and big:
        voices = replace(voices, voice=centre(voices.voice)[0])
        idx = {v: i for i, v in enumerate(voices.video_id)}
        sp_of = dict(zip(sp["video_id"], sp["speaker"]))
        names = sorted(big)
        cents = []
        for name in names:
            rows = [idx[v] for v, s in sp_of.items() if s == name and v in idx]
            cents.append(voices.voice[rows].mean(axis=0) if rows else np.full(voices.voice.shape[1], np.nan))
        C = _unit(np.nan_to_num(np.array(cents)))
        for v, pool in pools.items():
            if pool == POOLED and v in idx:
                pools[v] = names[int(np.argmax(C @ voices.voice[idx[v]]))]
    return pools


def nearest_speaker(voice: np.ndarray, centroids: dict[str, np.ndarray],
                    threshold: float, mean: np.ndarray | None = None) -> tuple[str | None, float]:
    """(the stored speaker whose mean voice is nearest ``voice``, its cosine distance), or
    (None, distance) when even the nearest is farther than ``threshold`` (a new speaker).
    ``centroids`` are centred voices (:func:`speaker_centroids`); ``mean`` is the store's mean
    voice, which ``voice`` is centred on first."""
    if not centroids:
        return None, float("nan")
    names = sorted(centroids)
    C = _unit(np.array([centroids[n] for n in names], dtype=np.float64))
    v = centre(np.asarray(voice, dtype=np.float64)[None], mean)[0][0] if mean is not None else voice
    v = v / (np.linalg.norm(v) or 1.0)
    d = 1.0 - C @ v
    k = int(np.argmin(d))
    return (names[k] if d[k] <= threshold else None), float(d[k])


def assignment_threshold(V: np.ndarray, speakers: list) -> float:
    """:data:`ASSIGN_QUANTILE` of the distances from each video (unit centred rows of ``V``)
    to the mean voice of the other videos of its speaker (``speakers``: one name or None per
    row; speakers of two or more videos), or :data:`DEFAULT_ASSIGN_THRESHOLD` without any."""
    names = np.array([s if isinstance(s, str) else "" for s in speakers], dtype=object)
    d = []
    for name in set(names) - {""}:
        rows = np.flatnonzero(names == name)
        if len(rows) < 2:
            continue
        total = V[rows].sum(axis=0)
        for i in rows:
            c = total - V[i]
            d.append(1.0 - float(c @ V[i]) / (np.linalg.norm(c) or 1.0))
    return float(np.quantile(d, ASSIGN_QUANTILE)) if d else DEFAULT_ASSIGN_THRESHOLD


def speaker_centroids(con) -> tuple[dict[str, np.ndarray], float, np.ndarray | None]:
    """Mean centred voice of every stored speaker (manifest group, else inferred group), the
    cut for matching a new file to one (:func:`assignment_threshold`), and the store's mean
    voice (what a new file's voice is centred on)."""
    vv = voice_vectors(con)
    sp = video_speakers(con)
    if sp is None or not len(vv):
        return {}, DEFAULT_ASSIGN_THRESHOLD, None
    V, mu = centre(vv.voice)
    vv = replace(vv, voice=V)
    of = dict(zip(sp["video_id"], sp["speaker"]))
    out: dict[str, list] = {}
    for i, v in enumerate(vv.video_id):
        s = of.get(v)
        if isinstance(s, str):
            out.setdefault(s, []).append(vv.voice[i])
    t = assignment_threshold(vv.voice, [of.get(v) for v in vv.video_id])
    return {k: np.mean(v, axis=0) for k, v in out.items()}, t, mu
