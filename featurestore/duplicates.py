"""The one definition of "duplicate videos": CV leakage groups (``fusion.cv``) and the data
audit (``featurestore.audit``) both call :func:`duplicate_pairs`.

Two videos are duplicates when any rule holds:

* media: the same media path, or the same SHA-256 of the media bytes;
* transcript: identical :func:`normalise_transcript` text (any length);
* near transcript: Jaccard similarity >= ``TRANSCRIPT_JACCARD`` of the sets of character
  5-gram shingles of the normalised texts, both texts long enough (``MIN_NEAR_CHARS``,
  ``MIN_NEAR_SHINGLES``) for the similarity to mean something;
* vectors: every deciding modality (dim >= ``MIN_DECIDING_DIM``) both videos have reaches
  cosine (standardised per dimension) >= ``VECTOR_COSINE`` of the per-video mean-pooled vectors, or is equal to
  float rounding.

``leakage_groups`` joins the pairs (and a manifest ``group`` column) into connected
components: CV never splits one between training and validation.

Measured on the 498 public competition transcripts (``reels-transcripts/labels.csv``, windows
concatenated by the ``video_evidence`` query of ``sql/queries.sql``; ``python scripts/measure_transcript_duplicates.py``):
497 speak, none is shorter than ``MIN_NEAR_CHARS``. Identical normalised transcripts merge 28
reels (498 -> 470 groups); every copy there is character-identical, so near transcripts add
none at any threshold from 0.32 to 0.99: each reel's best non-identical match has Jaccard
<= 0.31 (median 0.11, 90th percentile 0.20). The pairs just below, 0.31 and 0.26, are one
creator's template ("aslinya nih ya kalian ngelakuin goblet squat ... 8 12 kali" vs "sebenernya
nih ya kalian ngelakuin rose ... 8 12x"): shared phrasing, different clips, not to be merged.
A re-upload transcribed again by ASR is what the rule is for: replacing ~10 % of a real
transcript's words with random corpus words (and dropping ~3 %) leaves Jaccard >= 0.56 for 99 %
of the reels (median 0.68; ~5 %: median 0.81; ~20 %: median 0.52, 67 % >= 0.5). 0.5 sits
between the two. Per-word ``char_wb`` shingles separate worse (unrelated reels up to 0.41), as
do word unigrams (0.40); word bigrams and trigrams lose two or three shingles per ASR word
error, so an error rate that char 5-grams tolerate breaks them.
"""
from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .sqlfiles import define_rules, read_sql, relation_columns

#: Near-duplicate transcripts: Jaccard similarity of the sets of character 5-gram shingles
#: (``analyzer="char"``: shingles cross word boundaries, so word order counts; per-word
#: ``char_wb`` shingles made "kata 1 2" and "kata 3 4" 0.8 similar) of the normalised texts.
TRANSCRIPT_JACCARD = 0.5
#: Shingle length in characters: 5 is about a syllable and a half of Indonesian, long enough
#: that unrelated texts share few shingles, short enough that one ASR word error only spoils
#: the five shingles around it.
SHINGLE_CHARS = 5
#: Texts shorter than this (normalised characters) or with fewer distinct shingles only match
#: exactly: over a few shingles the Jaccard says little ("terima kasih" and "terima kasih
#: semua", two unrelated thank-yous, score 0.57).
MIN_NEAR_CHARS = 15
MIN_NEAR_SHINGLES = 3
#: Near-duplicate vectors: cosine of per-video mean-pooled vectors standardised per dimension
#: over the compared videos (:func:`centred_unit`), in every deciding modality both videos
#: have. Centring by the mean over the compared videos matters: sentence
#: encoders are anisotropic (raw cosines of unrelated videos' e5 vectors have a median of 0.96
#: on the 498 real transcripts, centred ones about 0), so 0.98 only means "near duplicate" after
#: it; re-uploads of one clip reach > 0.99.
VECTOR_COSINE = 0.98
#: Modalities with fewer dims report their similarity but do not decide: the cosine of two 3-D
#: facial-expression vectors is high for most unrelated videos, and so, measured, is that of
#: the 22-D ``fer-expressions`` vectors of one actor's different clips (on Java-SED they
#: chained the 144 clips of 6 actors into 3 groups at 0.98); 128-D descriptors and sentence
#: vectors merged no unrelated clip there.
MIN_DECIDING_DIM = 32
#: Two pooled vectors are "equal" when their distance is at most this share of the (centred)
#: vector's norm (at least of 1): float32 rounding of means over the same windows, not a
#: similarity.
EQUAL_RTOL = 1e-4
#: Merge rules of :func:`leakage_groups`, in report order.
RULES = ("transcript", "near_transcript", "vectors", "media", "manifest_group")
NO_SPEECH = "[NO_SPEECH]"
#: Rows per block of the pairwise products: a block is (CHUNK, n_videos) dense at most,
#: 8 MB at 1,000 videos of float64, so memory stays bounded however many videos there are.
CHUNK = 1024


# ------------------------------------------------------------------ transcripts
def normalise_transcript(text: str | None) -> str | None:
    """``text`` in Unicode NFKC, lower-cased, punctuation and symbols (Whisper's "♪" too)
    replaced by spaces, whitespace collapsed; None when nothing is left (None, blank,
    ``[NO_SPEECH]`` only)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    t = unicodedata.normalize("NFKC", str(text)).replace(NO_SPEECH, " ").lower()
    t = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in t)
    t = " ".join(t.split())
    return t or None


def shingle_matrix(texts: list[str]) -> sparse.csr_matrix:
    """Binary int32 (n_texts, n_shingles) CSR: which character ``SHINGLE_CHARS``-grams each
    (normalised) text contains. A text shorter than a shingle has an empty row."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not any(len(t) >= SHINGLE_CHARS for t in texts):
        return sparse.csr_matrix((len(texts), 0), dtype=np.int32)
    vec = CountVectorizer(analyzer="char", ngram_range=(SHINGLE_CHARS, SHINGLE_CHARS), binary=True,
                          lowercase=False, dtype=np.int32)
    return vec.fit_transform(texts).tocsr()


def jaccard_of_pairs(B: sparse.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 (n_pairs,): Jaccard similarity of rows ``a[k]`` and ``b[k]`` of binary ``B``
    (NaN where both rows are empty)."""
    if len(a) == 0:
        return np.zeros(0)
    inter = np.asarray(B[a].multiply(B[b]).sum(axis=1)).ravel().astype(np.float64)
    size = np.diff(B.indptr).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (size[a] + size[b] - inter)


def near_transcript_pairs(B: sparse.csr_matrix, eligible: np.ndarray,
                          threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``(i, j, jaccard)`` with i < j, both ``eligible`` (bool (n,)), Jaccard >= ``threshold``.

    Exact: the intersections are one sparse product ``B[rows] @ B.T`` per block of ``CHUNK``
    rows, so work grows with the number of pairs sharing a shingle (quadratic in the worst
    case) but memory stays one block. On the 498 real transcripts (1.5 M characters) the
    products take 0.05 s (building the shingles 1.1 s); 5,000 synthetic texts that share
    shingles in every pair take about 5 s in all. MinHash would only pay off from tens of
    thousands of videos, at the price of missing and inventing pairs near the threshold.
    """
    rows = np.flatnonzero(eligible)
    if len(rows) < 2 or B.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    sub = B[rows]
    subT = sub.T.tocsc()
    size = np.diff(sub.indptr).astype(np.float64)
    out_i, out_j, out_s = [], [], []
    for start in range(0, len(rows), CHUNK):
        inter = (sub[start:start + CHUNK] @ subT).tocoo()
        r, c = inter.row + start, inter.col
        upper = r < c
        r, c, k = r[upper], c[upper], inter.data[upper].astype(np.float64)
        sim = k / (size[r] + size[c] - k)
        hit = sim >= threshold
        out_i.append(rows[r[hit]])
        out_j.append(rows[c[hit]])
        out_s.append(sim[hit])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)


# ------------------------------------------------------------------ vectors
def centred_unit(V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise float (n, d) ``V`` per dimension over its non-NaN rows (centre, then divide
    by the dimension's spread) and scale rows to unit length.

    Dividing by the spread matters for descriptor vectors: without it the few dimensions in
    large units (a spectral centroid in Hz beside MFCCs near 1) decide the cosine alone, and
    on the 144 real Java-SED clips 70 pairs of different clips by different actors reached
    0.98 and chained every clip into one group.

    Returns ``(unit float64 (n, d), centred norm (n,), present bool (n,))``; rows that are
    absent (NaN) or centred to zero get a zero unit row, so they never reach a threshold.
    """
    V = np.asarray(V, dtype=np.float64)
    present = ~np.isnan(V).any(axis=1)
    unit = np.zeros_like(V)
    norm = np.zeros(len(V))
    if present.any():
        C = V[present] - V[present].mean(axis=0)
        spread = C.std(axis=0)
        C = np.where(spread > 1e-12, C / np.where(spread > 1e-12, spread, 1.0), 0.0)
        n = np.linalg.norm(C, axis=1)
        norm[present] = n
        with np.errstate(invalid="ignore", divide="ignore"):
            unit[present] = np.where(n[:, None] > 0, C / n[:, None], 0.0)
    return unit, norm, present


def near_vector_candidates(unit: np.ndarray, present: np.ndarray, threshold: float) -> np.ndarray:
    """int64 pair codes ``i * n + j`` (i < j, both present) of centred cosine >= ``threshold``,
    from chunked products ``unit[block] @ unit.T`` (one (CHUNK, n) block in memory)."""
    n = len(unit)
    rows = np.flatnonzero(present)
    U = unit[rows]
    codes = []
    for start in range(0, len(rows), CHUNK):
        sim = U[start:start + CHUNK] @ U.T
        r, c = np.nonzero(sim >= threshold)
        r = r + start
        upper = r < c
        codes.append(rows[r[upper]].astype(np.int64) * n + rows[c[upper]])
    return np.concatenate(codes) if codes else np.zeros(0, np.int64)


# ------------------------------------------------------------------ pairs
def _members(keys: list | None) -> list[list[int]]:
    """Positions sharing each non-empty key (None, NaN, blank: no key), groups of two or more."""
    by_key: dict = {}
    for i, k in enumerate(keys or []):
        if k is None or (isinstance(k, float) and np.isnan(k)) or (isinstance(k, str) and not k.strip()):
            continue
        by_key.setdefault(k, []).append(i)
    return [m for m in by_key.values() if len(m) > 1]


def _same_key_codes(keys: list | None, n: int) -> np.ndarray:
    """Pair codes ``i * n + j`` (i < j) of every two positions with the same non-empty key."""
    codes = [np.int64(a) * n + b for members in _members(keys)
             for x, a in enumerate(members) for b in members[x + 1:]]
    return np.array(codes, np.int64)


def _check_length(name: str, values, n: int) -> None:
    if values is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} video_ids")


def duplicate_pairs(video_ids, transcripts: list[str | None] | None = None,
                    vectors: dict[str, np.ndarray] | None = None,
                    media: list[str | None] | None = None, paths: list[str | None] | None = None, *,
                    transcript_jaccard: float = TRANSCRIPT_JACCARD, cosine: float = VECTOR_COSINE,
                    min_dim: int = MIN_DECIDING_DIM) -> pd.DataFrame:
    """Every pair of duplicate videos with the rules it meets.

    Args:
        video_ids: n distinct ids.
        transcripts: n raw transcripts (None: no speech); normalised here.
        vectors: modality -> float (n, d) per-video mean-pooled vectors, an all-NaN row where a
            video lacks the modality (``featurestore.pooling.pooled_means``). Modalities with
            ``d >= min_dim`` decide; the others only report their similarity.
        media: n SHA-256 hex digests of the media (None where unknown).
        paths: n media paths (None where unknown).
    Returns:
        One row per pair, ``video_a < video_b``, sorted: ``video_a, video_b, same_path,
        same_media, same_transcript, near_transcript`` (near but not identical),
        ``transcript_jaccard`` (NaN unless both speak), ``near_vectors``, ``equal_vectors``,
        ``n_deciding`` (deciding modalities both have), then ``<modality>_sim`` (centred
        cosine, NaN unless both have it) per modality of ``vectors``.
    """
    ids = np.asarray([str(v) for v in video_ids], dtype=object)
    n = len(ids)
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"video_ids repeat {uniq[counts > 1][0]!r}; one row per video is needed")
    if not 0.0 < transcript_jaccard <= 1.0:
        raise ValueError(f"transcript_jaccard={transcript_jaccard}: a Jaccard similarity in (0, 1] is needed")
    if not 0.0 < cosine <= 1.0:
        raise ValueError(f"cosine={cosine}: a cosine similarity in (0, 1] is needed, e.g. 0.98")
    for name, values in (("transcripts", transcripts), ("media", media), ("paths", paths)):
        _check_length(name, values, n)
    vectors = dict(vectors or {})
    for m, V in vectors.items():
        if np.ndim(V) != 2 or len(V) != n:
            raise ValueError(f"vectors[{m!r}] has shape {np.shape(V)}; expected ({n}, d)")

    texts = [normalise_transcript(t) for t in transcripts] if transcripts is not None else [None] * n
    spoken = np.array([t is not None for t in texts], dtype=bool)   # bool even for no videos
    B = shingle_matrix([t or "" for t in texts])
    n_shingles = np.diff(B.indptr)
    eligible = spoken & np.array([t is not None and len(t) >= MIN_NEAR_CHARS for t in texts], dtype=bool) \
        & (n_shingles >= MIN_NEAR_SHINGLES)
    ni, nj, _ = near_transcript_pairs(B, eligible, transcript_jaccard)

    units = {m: centred_unit(V) for m, V in vectors.items()}
    deciding = [m for m, V in vectors.items() if np.shape(V)[1] >= min_dim]
    vec_codes = [near_vector_candidates(units[m][0], units[m][2], cosine) for m in deciding]

    rule_codes = {
        "same_path": _same_key_codes(paths, n),
        "same_media": _same_key_codes(media, n),
        "same_transcript": _same_key_codes(texts, n),
        "near_transcript": ni.astype(np.int64) * n + nj,
    }
    cand = np.unique(np.concatenate([*rule_codes.values(), *vec_codes, np.zeros(0, np.int64)]))
    a, b = cand // n, cand % n
    out = pd.DataFrame({k: np.isin(cand, v) for k, v in rule_codes.items()})
    both_speak = spoken[a] & spoken[b]
    jac = np.full(len(cand), np.nan)
    jac[both_speak] = jaccard_of_pairs(B, a[both_speak], b[both_speak])
    out["near_transcript"] &= ~out["same_transcript"].to_numpy()
    out["transcript_jaccard"] = jac

    all_near = np.ones(len(cand), bool)
    all_equal = np.ones(len(cand), bool)
    n_deciding = np.zeros(len(cand), np.int64)
    sims = {}
    for m, V in vectors.items():
        unit, norm, present = units[m]
        shared = present[a] & present[b]
        # A vector centred to zero (every compared video has the same one) has no direction.
        defined = shared & (norm[a] > 0) & (norm[b] > 0)
        sim = np.where(defined, np.einsum("ij,ij->i", unit[a], unit[b]), np.nan)
        sims[m] = sim
        if m not in deciding:
            continue
        Vf = np.asarray(V, dtype=np.float64)
        dist = np.linalg.norm(Vf[a] - Vf[b], axis=1)
        equal = dist <= EQUAL_RTOL * np.maximum(1.0, norm[a])
        n_deciding += shared
        all_near &= ~shared | (sim >= cosine)
        all_equal &= ~shared | equal
    out["near_vectors"] = (n_deciding > 0) & all_near
    out["equal_vectors"] = (n_deciding > 0) & all_equal
    out["n_deciding"] = n_deciding
    for m, sim in sims.items():
        out[f"{m}_sim"] = sim

    # Order each pair by id (rows of video_ids need not be sorted).
    swap = ids[a].astype(str) > ids[b].astype(str)
    out.insert(0, "video_a", np.where(swap, ids[b], ids[a]).astype(str))
    out.insert(1, "video_b", np.where(swap, ids[a], ids[b]).astype(str))
    rules = out[["same_path", "same_media", "same_transcript", "near_transcript",
                 "near_vectors", "equal_vectors"]].any(axis=1)
    return out[rules].sort_values(["video_a", "video_b"]).reset_index(drop=True)


# ------------------------------------------------------------------ groups
def rule_edges(pairs: pd.DataFrame) -> dict[str, pd.Series]:
    """Rule of :data:`RULES` (except ``manifest_group``) -> bool per row of ``pairs``."""
    return {"transcript": pairs["same_transcript"],
            "near_transcript": pairs["near_transcript"],
            "vectors": pairs["near_vectors"] | pairs["equal_vectors"],
            "media": pairs["same_path"] | pairs["same_media"]}


def _components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)


def leakage_groups(video_ids, pairs: pd.DataFrame,
                   manifest_groups: list | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Connected components of the duplicate pairs (and shared manifest groups).

    Args:
        video_ids: n distinct ids; ``pairs`` (from :func:`duplicate_pairs`) name only these.
        manifest_groups: n manifest ``group`` values (None / NaN / blank: none): videos sharing
            one are merged (same account or speaker), though they are not duplicates.
    Returns:
        ``(codes int64 (n,), merged)``: the component of each video (numbered by first
        video), and per rule of :data:`RULES` how many videos that rule alone merged
        (n minus the number of components of its edges alone; rules overlap, so the counts
        need not add up to n minus the number of groups).
    """
    ids = [str(v) for v in video_ids]
    n = len(ids)
    pos = {v: i for i, v in enumerate(ids)}
    if len(pos) != n:
        raise ValueError("video_ids repeat an id; one row per video is needed")
    unknown = sorted((set(pairs["video_a"]) | set(pairs["video_b"])) - set(pos)) if len(pairs) else []
    if unknown:
        raise ValueError(f"pairs name video {unknown[0]!r}, which is not among the {n} video_ids")
    _check_length("manifest_groups", manifest_groups, n)
    pa_ = pairs["video_a"].map(pos).to_numpy(np.int64) if len(pairs) else np.zeros(0, np.int64)
    pb_ = pairs["video_b"].map(pos).to_numpy(np.int64) if len(pairs) else np.zeros(0, np.int64)
    edges = {rule: (pa_[mask.to_numpy(bool)], pb_[mask.to_numpy(bool)])
             for rule, mask in rule_edges(pairs).items()} if len(pairs) else \
        {rule: (pa_, pb_) for rule in RULES if rule != "manifest_group"}
    # A manifest group as a star (each member to the group's first): n - 1 edges, not n^2 / 2.
    groups = [None if g is None or pd.isna(g) else str(g) for g in manifest_groups] \
        if manifest_groups is not None else None
    stars = [(m[0], j) for m in _members(groups) for j in m[1:]]
    edges["manifest_group"] = (np.array([i for i, _ in stars], np.int64),
                               np.array([j for _, j in stars], np.int64))
    merged = {rule: n - _components(n, *edges[rule])[0] for rule in RULES}
    all_a = np.concatenate([edges[r][0] for r in RULES])
    all_b = np.concatenate([edges[r][1] for r in RULES])
    _, labels = _components(n, all_a, all_b)
    return labels.astype(np.int64), merged


# ------------------------------------------------------------------ evidence from a store
def video_evidence(con, video_ids) -> pd.DataFrame:
    """``DataFrame(video_id, transcript, sha256, path)``, one row per ``video_ids`` entry in
    its order (``sql/queries.sql``: video_evidence), from a DuckDB connection's ``videos`` and
    ``windows``; a missing relation or column gives NULLs (a bare connection works)."""
    ids = pd.DataFrame({"video_id": pd.Series([str(v) for v in video_ids], dtype=object)})
    define_rules(con)
    stand_ins = {"evidence_ids": ids}
    if "video_id" not in (relation_columns(con, "videos") or {}):
        stand_ins["videos"] = pa.table({"video_id": pa.array([], pa.string())})
    if not {"video_id", "window_idx", "transcript"} <= set(relation_columns(con, "windows") or {}):
        stand_ins["windows"] = pa.table({"video_id": pa.array([], pa.string()),
                                         "window_idx": pa.array([], pa.int32()),
                                         "transcript": pa.array([], pa.string())})
    for name, rel in stand_ins.items():
        con.register(name, rel)
    try:
        got = con.execute(read_sql("queries", "video_evidence")).df()
    finally:
        for name in stand_ins:
            con.unregister(name)
    got = got.drop_duplicates("video_id").set_index("video_id").reindex(ids["video_id"])
    got = got.astype(object).where(got.notna(), None)
    return got.reset_index()[["video_id", "transcript", "sha256", "path"]]
