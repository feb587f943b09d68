"""End to end: real media -> real encoders -> store. One Whisper load per session."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from featurestore.embed import Embedder, parse_shard
from featurestore.encoders.registry import get_encoder
from featurestore.manifest import read_manifest
from featurestore.store import FeatureStore
import media_fixtures as mf

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("espeak_ng")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four real clips plus broken files, and a manifest naming them all."""
    d = tmp_path_factory.mktemp("media")
    mf.make_talking_face_video(d / "talk.mp4", text=mf.CLEAR_TEXT)
    mf.make_talking_face_video(d / "noface.mp4", text="Terima kasih banyak", face=False)
    mf.make_silent_video(d / "silent.mp4", seconds=2.2)
    mf.make_audio_only(d / "voice.wav", text="Selamat pagi")
    mf.make_zero_byte(d / "empty.mp4")
    mf.make_text_as_video(d / "notes.mp4")
    (d / "m.csv").write_text(
        "id,video,emotion\n"
        "talk,talk.mp4,Senang\nnoface,noface.mp4,Percaya\nsilent,silent.mp4,Netral\n"
        "voice,voice.wav,Joy\nempty,empty.mp4,Joy\nnotes,notes.mp4,Sedih\nmissing,gone.mp4,Joy\n")
    return d


@pytest.fixture(scope="module")
def encoders():
    return {m: get_encoder(n, device="cpu") for m, n in
            (("audio", "librosa-descriptors"), ("video", "fer-face"), ("text", "e5-small"))}


@pytest.fixture(scope="module")
def transcriber():
    from featurestore.asr import Transcriber
    return Transcriber(language="id", device="cpu").load()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, corpus, encoders, transcriber):
    store = FeatureStore(tmp_path_factory.mktemp("store") / "s")
    manifest = read_manifest(corpus / "m.csv")
    report = Embedder(store, encoders, transcriber, chunk_size=3, progress=False,
                      log=lambda m: None).run(manifest)
    return store, report, manifest


def test_good_videos_stored_bad_ones_named(embedded):
    store, report, _ = embedded
    assert report.n_embedded == 4 and {f.video_id for f in report.failures} == {"empty", "notes", "missing"}
    con = store.connect()
    status = dict(con.execute("SELECT video_id, status FROM videos").fetchall())
    assert status == {"talk": "ok", "noface": "ok", "silent": "ok", "voice": "ok",
                      "empty": "failed", "notes": "failed", "missing": "failed"}
    errors = dict(con.execute("SELECT video_id, error FROM videos WHERE status = 'failed'").fetchall())
    assert "empty.mp4" in errors["empty"] and "gone.mp4" in errors["missing"]
    assert "notes.mp4" in errors["notes"]
    assert con.execute("SELECT label, raw_label FROM videos WHERE video_id = 'talk'").fetchone() == ("Joy", "Senang")


def test_windows_times_and_transcript_words(embedded):
    store, _, _ = embedded
    con = store.connect()
    dur = con.execute("SELECT duration_s FROM videos WHERE video_id = 'talk'").fetchone()[0]
    rows = con.execute("SELECT window_idx, start_s, end_s, transcript FROM windows "
                       "WHERE video_id = 'talk' ORDER BY window_idx").fetchall()
    n_full = int(np.floor((dur - 1.0) / 0.5 + 1e-9)) + 1
    assert len(rows) in (n_full, n_full + 1)
    for i, (idx, s, e, _) in enumerate(rows):
        assert idx == i and s == pytest.approx(0.5 * i) and e - s <= 1.0 + 1e-6
    text = " ".join(t for *_, t in rows if t).lower()
    assert "senang" in text, text
    src = con.execute("SELECT transcript_source FROM videos WHERE video_id = 'talk'").fetchone()[0]
    # a fresh store has no windows to match: each window gets its own words
    assert src.startswith("asr:faster-whisper") and src.endswith("/id#word")


def test_dims_and_missing_modalities_are_null_with_reasons(embedded, encoders):
    store, _, _ = embedded
    con = store.connect()
    dims = con.execute("SELECT max(len(audio)), max(len(video)), max(len(text)) FROM fusion_vectors").fetchone()
    assert dims == tuple(encoders[m].dim for m in ("audio", "video", "text"))
    served = dict(con.execute("SELECT modality, encoder_id FROM feature_sets").fetchall())
    assert served == {m: e.encoder_id for m, e in encoders.items()}
    # the talking face: every modality present somewhere, face share 1 where a face is found
    got = con.execute("SELECT count(audio), count(video), count(text), count(*) FROM fusion_vectors "
                      "WHERE video_id = 'talk'").fetchone()
    assert got[0] == got[3] and got[1] == got[3] and got[2] >= 1
    assert con.execute("SELECT min(video[1]) FROM fusion_vectors WHERE video_id = 'talk'").fetchone()[0] > 0.5

    def reasons(vid, modality):
        return {r for (r,) in con.execute(
            "SELECT DISTINCT e.missing_reason FROM embeddings e JOIN encoders c USING (encoder_id) "
            "WHERE c.modality = ? AND e.video_id = ? AND e.embedding IS NULL", [modality, vid]).fetchall()}
    assert reasons("silent", "audio") == {"no audio track"}
    assert reasons("silent", "text") == {"no audio track"}
    assert reasons("voice", "video") == {"no video stream"}
    assert any("face" in r for r in reasons("noface", "video"))
    # NULLs, never zeros
    assert con.execute("SELECT count(*) FROM fusion_vectors WHERE list_sum(audio) = 0").fetchone() == (0,)


def test_rerun_is_a_noop(embedded, encoders, transcriber):
    store, _, manifest = embedded
    rows = "SELECT * FROM {} ORDER BY ALL"
    before = {t: store.query(rows.format(t)) for t in ("windows", "embeddings", "segments", "video_features")}
    snap = store.current_snapshot()
    report = Embedder(store, encoders, transcriber, progress=False, log=lambda m: None).run(manifest)
    assert report.n_skipped == 4 and report.n_embedded == 0
    # nothing rewritten: one commit, the failed videos' status (they are tried again)
    assert store.current_snapshot() == snap + 1
    assert all(store.query(rows.format(t)).equals(before[t]) for t in before)


def test_parse_shard():
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "cli.py", *args], cwd=os.path.dirname(os.path.dirname(__file__)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory):
    """24 text-only videos of 12 windows, the first [NO_SPEECH] (fast to embed)."""
    return mf.text_corpus(tmp_path_factory.mktemp("texts"), 24, 12, no_speech_first=True).parent


def test_two_shards_write_one_store(tmp_path, text_corpus):
    store = tmp_path / "s"
    procs = [_cli("embed", "--store", str(store), "--manifest", str(text_corpus / "m.csv"),
                  "--modalities", "text", "--text-encoder", "e5-small", "--shard", f"{i}/2", "--quiet")
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    con = FeatureStore(store).connect()
    assert con.execute("SELECT count(*), count(DISTINCT video_id) FROM windows").fetchone() == (24 * 12, 24)
    assert con.execute("SELECT count(*) FROM videos WHERE status = 'ok'").fetchone() == (24,)
    assert con.execute("SELECT count(*) FROM fusion_vectors WHERE text IS NULL").fetchone() == (24,)


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path, text_corpus):
    store = tmp_path / "s"
    args = ("embed", "--store", str(store), "--manifest", str(text_corpus / "m.csv"),
            "--modalities", "text", "--text-encoder", "e5-small", "--chunk-size", "2", "--quiet")
    p = _cli(*args)
    deadline = time.time() + 300

    def n_ok() -> int:
        try:
            return FeatureStore(store, create=False).query(
                "SELECT count(*) AS n FROM videos WHERE status = 'ok'").column("n")[0].as_py()
        except Exception:  # noqa: BLE001 - not created yet
            return 0
    # kill -9 once at least one chunk is done but (very likely) not all
    while time.time() < deadline and n_ok() < 4 and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done_before = FeatureStore(store).query("SELECT count(*) AS n FROM videos WHERE status='ok'").column("n")[0].as_py()
    p2 = _cli(*args)
    out, err = p2.communicate(timeout=600)
    assert p2.returncode == 0, err
    assert f"skipped {done_before} already embedded" in out
    con = FeatureStore(store).connect()
    assert con.execute("SELECT count(*) FROM videos WHERE status = 'ok'").fetchone() == (24,)
    assert con.execute("SELECT count(*), count(DISTINCT (video_id, window_idx)) FROM windows").fetchone() \
        == (24 * 12, 24 * 12)
    assert con.execute("SELECT count(*) FROM embeddings").fetchone() == (24 * 12,)
    assert con.execute("SELECT count(*) FROM video_features").fetchone() == (24,)
    con.close()


def test_changed_manifest_facts_update_without_reembedding(tmp_path, text_corpus, encoders):
    """A fixed label, a row moved to test: recorded, while embeddings are reused."""
    store = FeatureStore(tmp_path / "s")
    text_only = {"text": encoders["text"]}
    first = read_manifest(text_corpus / "m.csv")
    Embedder(store, text_only, progress=False).run(first)
    rows = (text_corpus / "m.csv").read_text().splitlines()
    rows[1] = rows[1].replace(",senang,", ",,")        # v0: label removed (now a test video)
    rows[2] = rows[2].replace(",marah,", ",Sedih,")    # v1: label fixed
    changed = tmp_path / "m2.csv"
    changed.write_text("\n".join(rows) + "\n")
    manifest = read_manifest(changed)
    manifest.videos["transcript_path"] = first.videos["transcript_path"]
    report = Embedder(store, text_only, progress=False).run(manifest)
    assert report.n_embedded == 0 and report.n_skipped == 24
    got = {r["video_id"]: (r["label"], r["split"]) for r in store.query(
        "SELECT video_id, label, split FROM videos WHERE video_id IN ('v0', 'v1')").to_pylist()}
    assert got == {"v0": (None, "test"), "v1": ("Sadness", "train")}
    assert store.query("SELECT count(*) AS n FROM videos WHERE status = 'ok'").column(0)[0].as_py() == 24


def test_text_unit_change_reembeds_text(tmp_path, corpus, encoders, transcriber):
    """Word-unit windows are other texts than segment-unit ones: a store embedded one way
    is not reused for the other (nor are pre-unit stores, whose ASR text was per word)."""
    (tmp_path / "m.csv").write_text(f"id,video,emotion\ntalk,{corpus / 'talk.mp4'},Joy\n")
    manifest = read_manifest(tmp_path / "m.csv")
    store = FeatureStore(tmp_path / "s")
    text_only = {"text": encoders["text"]}

    def run(unit):
        return Embedder(store, text_only, transcriber, progress=False, log=lambda m: None,
                        text_unit=unit).run(manifest)

    def texts():
        con = store.connect()
        src = con.execute("SELECT transcript_source FROM videos").fetchone()[0]
        rows = con.execute("SELECT transcript FROM windows ORDER BY window_idx").fetchall()
        return src, [t for (t,) in rows if t]

    assert run("segment").n_embedded == 1
    src, by_segment = texts()
    assert src.endswith("#segment")
    assert run("segment").n_skipped == 1
    assert run("word").n_embedded == 1
    src, by_word = texts()
    assert src.endswith("#word")
    assert sum(len(t.split()) for t in by_word) < sum(len(t.split()) for t in by_segment)
    assert run("word").n_skipped == 1
    assert run("auto").n_skipped == 1  # matches the labelled video's word windows
    with pytest.raises(ValueError, match="text_unit must be one of"):
        Embedder(store, text_only, transcriber, text_unit="sentence")
    from featurestore.asr import Transcriber
    with pytest.raises(ValueError, match="word_timestamps=True"):
        Embedder(store, text_only, Transcriber(device="cpu", word_timestamps=False),
                 text_unit="word").run(manifest)


def test_other_text_source_reembeds_text(tmp_path, corpus, encoders, transcriber):
    """Another Whisper model or language, or a transcript file in place of ASR, gives other
    window texts: the video is embedded again; the same source is skipped."""
    from featurestore.asr import Transcriber
    (tmp_path / "t.txt").write_text("0\tsaya senang\n1\tsaya senang\n")
    asr = tmp_path / "asr.csv"
    asr.write_text(f"id,video,emotion\ntalk,{corpus / 'talk.mp4'},Joy\n")
    from_file = tmp_path / "file.csv"
    from_file.write_text(f"id,video,emotion,transcript\ntalk,{corpus / 'talk.mp4'},Joy,t.txt\n")
    store = FeatureStore(tmp_path / "s")

    def run(manifest, tr):
        return Embedder(store, {"text": encoders["text"]}, tr, progress=False, log=lambda m: None,
                        text_unit="word").run(read_manifest(manifest))

    def source():
        return store.query("SELECT transcript_source FROM videos").column(0)[0].as_py()

    assert run(asr, transcriber).n_embedded == 1 and source().startswith("asr:") and "/id#" in source()
    assert run(asr, transcriber).n_skipped == 1
    malay = Transcriber(language="ms", device="cpu")
    assert run(asr, malay).n_embedded == 1 and "/ms#word" in source()
    assert run(asr, malay).n_skipped == 1
    assert run(from_file, malay).n_embedded == 1 and source() == f"file:{tmp_path / 't.txt'}"
    assert run(from_file, malay).n_skipped == 1
    assert run(asr, transcriber).n_embedded == 1 and "/id#" in source()


def test_whisper_segments_are_stored_and_reused(tmp_path, corpus, encoders, transcriber):
    """A change of text unit re-windows the stored Whisper segments instead of running
    Whisper again; another model or language, or segments without the word times word
    windows need, runs it again."""
    from featurestore.asr import Transcriber
    (tmp_path / "m.csv").write_text(f"id,video,emotion\ntalk,{corpus / 'talk.mp4'},Joy\n")
    manifest = read_manifest(tmp_path / "m.csv")
    store = FeatureStore(tmp_path / "s")

    def run(unit, tr=transcriber, store=store):
        return Embedder(store, {"text": encoders["text"]}, tr, progress=False, log=lambda m: None,
                        text_unit=unit).run(manifest)

    def windows(store):
        return [t for (t,) in store.connect().execute(
            "SELECT transcript FROM windows ORDER BY window_idx").fetchall()]

    first = run("word")
    assert first.n_embedded == 1 and first.n_transcripts_reused == 0 and first.stage_s["asr"] > 0
    segs = store.query("SELECT * FROM segments ORDER BY segment_idx").to_pylist()
    assert segs and all(r["video_id"] == "talk" and r["word_timestamps"] for r in segs)
    assert segs[0]["source"] == f"asr:{transcriber.name}/id" and abs(segs[0]["duration_s"] - 4.8) < 1
    assert "senang" in " ".join(r["text"].lower() for r in segs)
    assert all(r["words"] and r["start_s"] == r["words"][0]["start_s"] for r in segs)

    second = run("segment")
    assert second.n_embedded == 1 and second.n_transcripts_reused == 1 and second.stage_s["asr"] == 0
    assert "Whisper segments reused" in second.summary()
    by_segment = windows(store)
    assert any(t and "senang" in t.lower() for t in by_segment)
    # the same windows as Whisper run afresh for segment windows
    other = FeatureStore(tmp_path / "s2")
    assert run("segment", store=other).n_transcripts_reused == 0
    assert windows(other) == by_segment

    malay = Transcriber(language="ms", device="cpu", word_timestamps=False)
    third = run("segment", malay)
    assert third.n_embedded == 1 and third.n_transcripts_reused == 0
    # the Malay segments carry no word times: word windows for Malay need Whisper again
    fourth = run("word", Transcriber(language="ms", device="cpu"))
    assert fourth.n_embedded == 1 and fourth.n_transcripts_reused == 0
    assert run("segment", malay).n_transcripts_reused == 1  # word-timed segments serve both units



def test_text_unit_of_stored_sources():
    from featurestore.embed import text_unit_of
    assert text_unit_of("asr:faster-whisper:whisper-base-ct2/id#segment") == "segment"
    assert text_unit_of("asr:faster-whisper:whisper-base-ct2/id") == "word"  # written before units
    assert text_unit_of("file:/data/a#1.srt#word") == "word"
    assert text_unit_of("file:/data/t_1#x.txt") is None and text_unit_of(None) is None


# ---------------------------------------------------------------- command sequences a user types
def _embed(store, manifest, *extra):
    p = _cli("embed", "--store", str(store), "--manifest", str(manifest), "--quiet", *extra)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err
    return out


def test_text_then_audio_then_text_keeps_the_transcripts(tmp_path, corpus):
    """An audio run writes only audio: the windows' text from the text run stays, and a second
    text run finds the text done."""
    (tmp_path / "m.csv").write_text(f"id,video,emotion\ntalk,{corpus / 'talk.mp4'},Joy\n"
                                    f"noface,{corpus / 'noface.mp4'},Trust\n")
    store = tmp_path / "s"
    _embed(store, tmp_path / "m.csv", "--modalities", "text")
    q = "SELECT video_id, window_idx, transcript FROM windows ORDER BY ALL"
    texts = FeatureStore(store).query(q)
    assert sum(t is not None for t in texts.column("transcript").to_pylist()) >= 4
    out = _embed(store, tmp_path / "m.csv", "--modalities", "audio")
    assert "embedded 2 video(s)" in out
    assert FeatureStore(store).query(q).equals(texts)
    out = _embed(store, tmp_path / "m.csv", "--modalities", "text")
    assert "embedded 0 video(s)" in out and "skipped 2 already embedded" in out
    con = FeatureStore(store).connect()
    # every window has its audio row (a vector, or NULL with the reason it is missing)
    assert con.execute("SELECT count(*) FROM windows w ANTI JOIN (SELECT * FROM embeddings e JOIN encoders c "
                       "USING (encoder_id) WHERE c.modality = 'audio') e USING (video_id, window_idx)"
                       ).fetchone() == (0,)
    assert con.execute("SELECT count(text) FROM fusion_vectors").fetchone()[0] >= 4
    con.close()


def test_a_new_file_under_an_old_id_is_embedded_again(tmp_path, corpus):
    media = tmp_path / "clip.mp4"
    shutil.copy(corpus / "talk.mp4", media)
    (tmp_path / "m.csv").write_text(f"id,video,emotion\nclip,{media},Joy\n")
    store = tmp_path / "s"
    _embed(store, tmp_path / "m.csv", "--modalities", "audio,text")
    q = "SELECT count(*) AS n, sum(list_sum(audio)) AS s FROM fusion_vectors"
    first = FeatureStore(store).query(q).to_pylist()[0]
    shutil.copy(corpus / "noface.mp4", media)          # same id and path, other content
    out = _embed(store, tmp_path / "m.csv", "--modalities", "audio")
    assert "embedded 1 video(s)" in out
    st = FeatureStore(store)
    second = st.query(q).to_pylist()[0]
    assert second != first
    # The old file's text was computed from other media: it is gone, not mixed in.
    assert st.query("SELECT count(*) AS n FROM embeddings e JOIN encoders c USING (encoder_id) "
                    "WHERE c.modality = 'text'").column("n")[0].as_py() == 0
    assert st.query("SELECT count(*) AS n FROM windows WHERE transcript IS NOT NULL").column("n")[0].as_py() == 0
    assert st.query("SELECT media_sha256 FROM videos").column(0)[0].as_py() == \
        __import__("featurestore.media", fromlist=["file_sha256"]).file_sha256(media)
    out = _embed(store, tmp_path / "m.csv", "--modalities", "audio")
    assert "skipped 1 already embedded" in out


def test_a_trial_encoder_does_not_change_fusion_vectors(tmp_path, text_corpus):
    store = tmp_path / "s"
    _embed(store, text_corpus / "m.csv", "--modalities", "text", "--text-encoder", "e5-small")
    before = FeatureStore(store).query("SELECT * FROM fusion_vectors ORDER BY video_id, window_idx")
    few = tmp_path / "few.csv"
    few.write_text("\n".join((text_corpus / "m.csv").read_text().splitlines()[:3]).replace(
        "t0.txt", str(text_corpus / "t0.txt")).replace("t1.txt", str(text_corpus / "t1.txt")) + "\n")
    # another text encoder on two videos: its own feature set
    p = _cli("embed", "--store", str(store), "--manifest", str(few), "--modalities", "text",
             "--text-encoder", "mpnet", "--quiet")
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err
    assert "fusion_vectors still serves" in err
    st = FeatureStore(store)
    assert st.query("SELECT * FROM fusion_vectors ORDER BY video_id, window_idx").equals(before)
    inventory = {r["name"]: r for r in st.query(
        "SELECT e.name, count(DISTINCT x.video_id) AS n FROM encoders e JOIN embeddings x USING (encoder_id) "
        "GROUP BY 1").to_pylist()}
    assert inventory["mpnet"]["n"] == 2 and inventory["e5-small"]["n"] == 24


def test_an_encoder_failure_fails_only_its_video(tmp_path, corpus):
    """An exception inside an encoder on one decodable video, or output that breaks the
    encoder contract, is recorded on that video; the chunk's other videos are stored."""
    from featurestore.encoders.audio import LibrosaDescriptors

    class FailsOnLongClips(LibrosaDescriptors):
        """The real encoder, raising on clips over 4 s as a crashing model would."""
        def encode_video(self, audio, windows):
            if audio is not None and len(audio) > 4 * 16000:
                raise RuntimeError("out of memory on a long clip")
            return super().encode_video(audio, windows)

    class BreaksTheContract(LibrosaDescriptors):
        """The real encoder, returning one row short on clips over 4 s."""
        def encode_video(self, audio, windows):
            X, reasons = super().encode_video(audio, windows)
            return (X[:-1], reasons[:-1]) if audio is not None and len(audio) > 4 * 16000 else (X, reasons)

    (tmp_path / "m.csv").write_text(f"id,video,emotion\ntalk,{corpus / 'talk.mp4'},Joy\n"
                                    f"voice,{corpus / 'voice.wav'},Joy\n")
    for enc, message in ((FailsOnLongClips(device="cpu"), "out of memory on a long clip"),
                         (BreaksTheContract(device="cpu"), "expected (")):
        store = FeatureStore(tmp_path / type(enc).__name__)
        report = Embedder(store, {"audio": enc}, progress=False, log=lambda m: None, chunk_size=2).run(
            read_manifest(tmp_path / "m.csv"))
        assert [f.video_id for f in report.failures] == ["talk"] and report.n_embedded == 1
        rows = {r["video_id"]: r for r in store.query("SELECT video_id, status, error FROM videos").to_pylist()}
        assert rows["voice"]["status"] == "ok" and rows["talk"]["status"] == "failed"
        assert message in rows["talk"]["error"] and "audio encoder" in rows["talk"]["error"]
        assert store.query("SELECT DISTINCT video_id FROM embeddings").column(0).to_pylist() == ["voice"]
