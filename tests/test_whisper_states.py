"""One Whisper encoder pass per clip for ASR and the audio feature set; rows independent of
how the videos are chunked and batched. Real Whisper base on real espeak-ng speech."""
import numpy as np
import pytest

from featurestore import whisper_states
from featurestore.asr import Transcriber
from featurestore.encoders.registry import get_encoder
from featurestore.media import Window, decode_video
from featurestore.schema import SAMPLE_RATE
from reels_demo.corpus import write_talking_video
import media_fixtures as mf

pytestmark = pytest.mark.usefixtures("espeak_ng")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two spoken clips and one of 36 s (speech, a long pause, speech: two 30 s chunks)."""
    d = tmp_path_factory.mktemp("states")
    a = decode_video(mf.make_talking_face_video(d / "a.mp4", text=mf.CLEAR_TEXT), video=False).audio
    b = decode_video(mf.make_talking_face_video(d / "b.mp4", text=mf.LONG_TEXT), video=False).audio
    gap = np.zeros(int((36.0 * SAMPLE_RATE - a.size - b.size)), np.float32)
    return [a, b, np.concatenate([a, gap, b])]


def test_track_chunks_cover_the_track_in_30_s_pieces():
    n = whisper_states.CHUNK_N
    pieces = whisper_states.track_chunks(np.zeros(2 * n + 5, np.float32))
    assert [p.size for p in pieces] == [n, n, 5]
    assert [p.size for p in whisper_states.track_chunks(np.zeros(0, np.float32))] == [0]
    frames = whisper_states.context_frames
    assert [frames(int(s * SAMPLE_RATE), "fit") for s in (0.5, 4.0, 10.5, 15.0, 29.1, 30.0)] == \
        [1000, 1000, 1200, 1600, 3000, 3000]
    assert {frames(int(s * SAMPLE_RATE), "full") for s in (0.5, 15.0, 30.0)} == {3000}
    with pytest.raises(ValueError, match="context"):
        frames(10, "half")


def test_one_encoder_pass_serves_asr_and_the_audio_features(clips):
    tr = Transcriber(language="id", device="cpu", word_timestamps=True, context="fit").load()
    enc = get_encoder("descriptors-whisper-fit", device="cpu")
    assert enc.whisper._pass is tr._pass, "the run's Whisper users must share one model"
    p = tr._pass
    p.clear()
    before = p.n_encoded
    segments = tr.transcribe_many(clips)
    assert p.n_encoded - before == 1 + 1 + 2          # every 30 s chunk once
    assert any("senang" in s.text.lower() for s in segments[0]), segments[0]
    assert any(s.start_s > 30.0 for s in segments[2]), "speech of the second chunk found"
    rows = []
    for c in clips:
        n = int((c.size / SAMPLE_RATE - 1.0) / 0.5) + 1
        wins = [Window(i, 0.5 * i, 0.5 * i + 1.0) for i in range(n)]
        encoded = p.n_encoded
        X, reasons = enc.encode_video(c, wins)
        assert p.n_encoded == encoded, "the audio features re-ran the encoder ASR had run"
        rows.append((X, reasons, wins))
    # The states ASR left are the numbers a pass of the encoder's own gives (cache emptied).
    p.clear()
    for c, (X, reasons, wins) in zip(clips, rows):
        X2, reasons2 = enc.encode_video(c, wins)
        assert reasons2 == reasons
        np.testing.assert_array_equal(X2, X)
    # ... and the text of a clip does not depend on the clips decoded with it.
    assert [tr.transcribe_segments(c) for c in clips] == segments


def test_a_full_chunk_is_shared_across_contexts_a_short_one_is_not(clips):
    """descriptors-whisper (30 s padding, the feature set stored before) keeps its numbers
    beside a Transcriber that fits short chunks: they share only the full 30 s chunks."""
    tr = Transcriber(language="id", device="cpu", word_timestamps=False, context="fit").load()
    full = get_encoder("descriptors-whisper", device="cpu")
    fit = get_encoder("descriptors-whisper-fit", device="cpu")
    assert full.encoder_id != fit.encoder_id
    p = tr._pass
    long_clip = clips[2]
    n = int((long_clip.size / SAMPLE_RATE - 1.0) / 0.5) + 1
    wins = [Window(i, 0.5 * i, 0.5 * i + 1.0) for i in range(n)]
    p.clear()
    X_alone, _ = full.encode_video(long_clip, wins)
    p.clear()
    tr.transcribe_many([long_clip])                    # chunk 1 (30 s) and chunk 2 (6 s, fit)
    encoded = p.n_encoded
    X_after, _ = full.encode_video(long_clip, wins)
    assert p.n_encoded == encoded + 1                  # only the short chunk, at 30 s
    np.testing.assert_array_equal(X_after, X_alone)
    X_fit, _ = fit.encode_video(long_clip, wins)
    first = [w.end_s <= 30.0 for w in wins]
    np.testing.assert_array_equal(X_fit[first], X_alone[first])
    assert not np.allclose(X_fit[~np.array(first)], X_alone[~np.array(first)], equal_nan=True)


@pytest.fixture(scope="module")
def speech_videos(tmp_path_factory):
    """Three spoken talking-face videos, one of them 36 s long (two Whisper chunks)."""
    d = tmp_path_factory.mktemp("videos")
    mf.make_talking_face_video(d / "a.mp4", text=mf.CLEAR_TEXT)
    mf.make_talking_face_video(d / "b.mp4", text=mf.LONG_TEXT)
    first, rate = mf.espeak(mf.CLEAR_TEXT)
    second, _ = mf.espeak(mf.LONG_TEXT)
    fps, seconds = 15, 36.0
    track = np.zeros(int(seconds * rate), np.float32)   # speech at 1 s and at 31 s
    track[rate:rate + first.size] = first
    track[31 * rate:31 * rate + second.size] = second[:track.size - 31 * rate]
    face = mf.face_image(True)
    write_talking_video(d / "c.mp4", (face for _ in range(int(seconds * fps))), fps, track, rate)
    (d / "m.csv").write_text("id,video,emotion\na,a.mp4,Joy\nb,b.mp4,Fear\nc,c.mp4,Trust\n")
    return d / "m.csv"


def _rows(store):
    con = store.connect()
    try:
        texts = con.execute("SELECT video_id, window_idx, transcript FROM windows "
                            "ORDER BY video_id, window_idx").fetchall()
        emb = con.execute("SELECT encoder_id, video_id, window_idx, embedding, missing_reason "
                          "FROM embeddings ORDER BY encoder_id, video_id, window_idx").fetchall()
    finally:
        con.close()
    return texts, emb


#: Largest difference allowed between a float of two runs that chunk or batch the videos
#: differently (observed: none; the text encoder batches distinct texts, the only float
#: path that may sum in another order).
ROW_TOLERANCE = 1e-5


@pytest.mark.slow
def test_rows_do_not_depend_on_chunk_size_or_workers(tmp_path, speech_videos):
    """--chunk-size 1 against 3, and 2 worker threads (the next chunk decoding while one is
    encoded, the modalities' encoders side by side) against 1: the same windows with the
    same text, the same vectors, the speaker stage's included."""
    from featurestore.embed import build_embedder
    from featurestore.manifest import read_manifest
    from featurestore.store import FeatureStore

    manifest = read_manifest(speech_videos)
    results = []
    for chunk, workers in ((1, 1), (3, 1), (2, 2)):
        for p in whisper_states._PASSES.values():
            p.clear()   # each run computes its own states
        store = FeatureStore(tmp_path / f"s{chunk}-{workers}")
        embedder, _ = build_embedder(store, manifest, device="cpu", chunk_size=chunk, progress=False,
                                     speaker_encoder="resemblyzer", workers=workers)
        assert embedder.workers == workers
        embedder.log = lambda m: None
        report = embedder.run(manifest)
        assert report.ok and report.n_embedded == 3
        results.append(_rows(store))
    t1, e1 = results[0]
    assert sum(t is not None for *_, t in t1) > 10
    assert len({r[0] for r in e1}) == 4      # audio, video, text and the speaker stage
    for t, e in results[1:]:
        assert t == t1
        assert [r[:3] + (r[4],) for r in e] == [r[:3] + (r[4],) for r in e1]
        for a, b in zip(e1, e):
            if a[3] is not None:
                np.testing.assert_allclose(np.array(a[3]), np.array(b[3]), atol=ROW_TOLERANCE, rtol=0)
