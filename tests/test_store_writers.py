"""Many writers at once, files that come back, a store that heals: through the CLI, as users
type it in two terminals, a cron job and a notebook (sql/schema.sql, "What concurrent writers
are guaranteed")."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featurestore.store import FeatureStore
import media_fixtures as mf

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("espeak_ng")]
ROOT = Path(__file__).resolve().parent.parent
TEXT = ("--modalities", "text", "--text-encoder", "e5-small")
AUDIO = ("--modalities", "audio", "--audio-encoder", "librosa-descriptors")
#: The default audio feature set: slow enough (Whisper's encoder) that its commits interleave
#: with a text run's, which is what the rounds below are about.
DEFAULT_AUDIO = ("--modalities", "audio")


def _cli(*args, prefix=(), env=None):
    return subprocess.Popen([*prefix, sys.executable, "cli.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _run(*args, prefix=(), env=None, expect=0):
    p = _cli(*args, prefix=prefix, env=env)
    out, err = p.communicate(timeout=900)
    assert p.returncode == expect, f"{args}: exit {p.returncode}\n{out}\n{err}"
    return out, err


def _wait_for_store(store: Path, deadline_s: float = 300) -> None:
    end = time.time() + deadline_s
    while not (store / "store.json").exists() and time.time() < end:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Three talking-face clips with espeak-ng speech, and a manifest of them (no transcript:
    a text run transcribes them with Whisper)."""
    d = tmp_path_factory.mktemp("speech")
    texts = (mf.CLEAR_TEXT, "Terima kasih banyak atas bantuan anda semua", "Selamat pagi semuanya apa kabar")
    for i, t in enumerate(texts):
        mf.make_talking_face_video(d / f"c{i}.mp4", text=t)
    (d / "m.csv").write_text("id,video,emotion\n" + "".join(f"c{i},c{i}.mp4,Joy\n" for i in range(len(texts))))
    return d / "m.csv"


#: Feature sets a text run and an audio run leave: text, audio, and the speaker stage's voice
#: vectors (which every local audio run computes beside the audio feature set).
TEXT_AND_AUDIO = 3


def _check_complete(store: Path, n_videos: int, encoders: int = TEXT_AND_AUDIO) -> list:
    """Every row of every run is there once: one grid per video, one vector row per window per
    feature set, a transcript on each window the text run found speech in, every video ok.
    Returns the window texts in order (to compare between rounds)."""
    con = FeatureStore(store, create=False).connect()
    try:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT (video_id, window_idx)) FROM windows").fetchone()
        assert n == distinct and n > 0
        assert con.execute("SELECT count(DISTINCT video_id) FROM windows").fetchone() == (n_videos,)
        per_encoder = con.execute("SELECT encoder_id, count(*), count(DISTINCT (video_id, window_idx)) "
                                  "FROM embeddings GROUP BY 1").fetchall()
        assert len(per_encoder) == encoders and all(c == d == n for _, c, d in per_encoder), per_encoder
        assert con.execute("SELECT count(*) FROM video_features").fetchone() == (n_videos * encoders,)
        # The text run's transcripts survived the audio run: a text vector exactly where a window speaks.
        spoken, vectors = con.execute(
            "SELECT count(*) FILTER (WHERE speaks(w.transcript)), count(e.embedding) FROM windows w "
            "JOIN embeddings e USING (video_id, window_idx) JOIN encoders c USING (encoder_id) "
            "WHERE c.modality = 'text'").fetchone()
        assert spoken == vectors and spoken > 0, (spoken, vectors)
        assert con.execute("SELECT count(*) FROM videos WHERE status = 'ok' AND transcript_source IS NOT NULL "
                           "AND failed_modalities IS NULL").fetchone() == (n_videos,)
        return con.execute("SELECT video_id, window_idx, transcript FROM windows ORDER BY ALL").fetchall()
    finally:
        con.close()


#: (which run starts first, seconds before the other starts, extra writers in the round)
ROUNDS = [("text", 0.0, ()), ("audio", 0.0, ()), ("text", 2.0, ("compact",)), ("audio", 2.0, ("sql",)),
          ("text", 5.0, ("compact", "sql")), ("audio", 5.0, ()), ("text", 0.5, ("sql",)),
          ("audio", 8.0, ("compact",)), ("text", 10.0, ()), ("audio", 0.5, ("compact", "sql"))]


def test_text_and_audio_embeds_at_once_keep_every_row(tmp_path, speech):
    """Ten rounds of a text and an audio embed of the same new videos started together, in both
    orders and at several delays, some with a compact and a `sql --write` of a notebook user
    running meanwhile: after each, the store holds everything each run computed, once."""
    reference = None
    for k, (first, delay, extras) in enumerate(ROUNDS):
        store = tmp_path / f"s{k}"
        common = ("embed", "--store", str(store), "--manifest", str(speech), "--quiet", "--chunk-size", "1")
        runs = {"text": (*common, *TEXT), "audio": (*common, *DEFAULT_AUDIO)}
        second = "audio" if first == "text" else "text"
        procs = [_cli(*runs[first])]
        time.sleep(delay)
        procs.append(_cli(*runs[second]))
        if extras:
            _wait_for_store(store)
            time.sleep(1.0)
        for extra in extras:
            if extra == "compact":
                # Replaced files deleted at once in the last round: a writer whose snapshot still
                # listed one retries against the current files.
                soon = ("--cleanup-older-than", "0 seconds") if k == len(ROUNDS) - 1 else ()
                procs.append(_cli("compact", "--store", str(store), *soon))
            else:
                procs.append(_cli("sql", "--store", str(store), "--write",
                                  "CREATE TABLE IF NOT EXISTS notes (video_id VARCHAR, note VARCHAR); "
                                  "INSERT INTO notes VALUES ('c0', 'checked')"))
        outs = [p.communicate(timeout=900) for p in procs]
        assert [p.returncode for p in procs] == [0] * len(procs), (k, outs)
        texts = _check_complete(store, 3)
        assert reference is None or texts == reference, f"round {k}: other window texts"
        reference = texts
        if "sql" in extras:
            assert FeatureStore(store).query("SELECT count(*) AS n FROM notes")["n"][0].as_py() == 1
        # A later text run finds everything done: nothing was lost that it would redo.
        out, _ = _run(*runs["text"])
        assert "embedded 0 video(s)" in out and "skipped 3 already embedded" in out, out
        shutil.rmtree(store)


def test_two_text_encoders_and_a_ray_run_at_once(tmp_path, speech, ray_cluster):
    """Two text runs of different text encoders, and a Ray text run against a local audio run."""
    store = tmp_path / "s"
    common = ("embed", "--store", str(store), "--manifest", str(speech), "--quiet", "--modalities", "text")
    procs = [_cli(*common, "--text-encoder", "e5-small"), _cli(*common, "--text-encoder", "mpnet")]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    con = FeatureStore(store).connect()
    n = con.execute("SELECT count(*) FROM windows").fetchone()[0]
    assert con.execute("SELECT count(DISTINCT encoder_id), count(*) FROM embeddings").fetchone() == (2, 2 * n)
    assert con.execute("SELECT count(*) FROM windows WHERE speaks(transcript)").fetchone()[0] > 0
    con.close()

    store = tmp_path / "r"
    base = ("embed", "--store", str(store), "--manifest", str(speech), "--quiet", "--chunk-size", "1")
    procs = [_cli(*base, *TEXT, "--engine", "ray", "--ray-address", ray_cluster), _cli(*base, *AUDIO)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    _check_complete(store, 3)


def test_kill_9_of_one_of_two_writers_then_a_rerun(tmp_path, speech):
    store = tmp_path / "s"
    common = ("embed", "--store", str(store), "--manifest", str(speech), "--quiet", "--chunk-size", "1")
    text = _cli(*common, *TEXT)
    audio = _cli(*common, *AUDIO)
    end = time.time() + 300

    def text_rows() -> int:
        try:
            return FeatureStore(store, create=False).query(
                "SELECT count(*) AS n FROM video_features WHERE modality = 'text'")["n"][0].as_py()
        except Exception:  # noqa: BLE001 - not created yet
            return 0
    while text_rows() < 1 and text.poll() is None and time.time() < end:
        time.sleep(0.05)
    text.send_signal(signal.SIGKILL)
    text.wait()
    rc = audio.wait(timeout=900)
    assert rc == 0, "\n".join(audio.communicate())
    _run(*common, *TEXT)
    _run(*common, *AUDIO)
    _check_complete(store, 3)


# ---------------------------------------------------------------- files that go and come back
def _text_manifest(root: Path, n: int = 3) -> Path:
    return mf.text_corpus(root, n, 6)


def test_a_transcript_missing_for_one_run_heals_on_the_next(tmp_path):
    m = _text_manifest(tmp_path)
    store = tmp_path / "s"
    args = ("embed", "--store", str(store), "--manifest", str(m), "--quiet", *TEXT)
    _run(*args)
    (tmp_path / "t1.txt").rename(tmp_path / "away.txt")
    out, err = _run(*args, expect=1)
    assert "t1.txt" in err and "tries each of them again" in err, err
    st = FeatureStore(store)
    row = st.query("SELECT status, failed_modalities, error FROM videos WHERE video_id = 'v1'").to_pylist()[0]
    assert row["status"] == "failed" and row["failed_modalities"] == ["text"] and "t1.txt" in row["error"]
    assert st.query("SELECT count(*) AS n FROM training_videos")["n"][0].as_py() == 2
    (tmp_path / "away.txt").rename(tmp_path / "t1.txt")
    out, _ = _run(*args)
    assert "embedded 1 video(s)" in out and "skipped 2 already embedded; 0 failed" in out, out
    assert st.query("SELECT count(*) AS n FROM training_videos")["n"][0].as_py() == 3
    assert st.query("SELECT count(*) AS n FROM videos WHERE status = 'ok' AND error IS NULL "
                    "AND failed_modalities IS NULL")["n"][0].as_py() == 3


def test_media_missing_for_one_run_heals_and_keeps_the_other_modalitys_failure(tmp_path, speech):
    """A clip moved away fails the audio run (and its speaker stage); the file back, a text run
    embeds text but the video stays failed for those (not hidden by the text run's success)
    until audio runs."""
    d = tmp_path / "m"
    shutil.copytree(speech.parent, d)
    store = tmp_path / "s"
    common = ("embed", "--store", str(store), "--manifest", str(d / "m.csv"), "--quiet")
    _run(*common, *AUDIO)
    (d / "c2.mp4").rename(tmp_path / "c2.mp4")
    _, err = _run(*common, *AUDIO, expect=1)
    assert "c2.mp4" in err
    (tmp_path / "c2.mp4").rename(d / "c2.mp4")
    _run(*common, *TEXT)
    st = FeatureStore(store)
    row = st.query("SELECT status, failed_modalities FROM videos WHERE video_id = 'c2'").to_pylist()[0]
    assert row == {"status": "failed", "failed_modalities": ["audio", "speaker"]}
    out, _ = _run(*common, *AUDIO)
    assert "embedded 1 video(s)" in out and "skipped 2 already embedded" in out, out
    _check_complete(store, 3)


def test_a_folder_made_unreadable_then_readable_again(tmp_path):
    """Permission taken from the transcripts' folder and one file for a run, then given back.
    As root the CLI runs without the capabilities that let root read any file (setpriv), so
    the permission bits apply to it as to any user."""
    prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search") if os.geteuid() == 0 else ()
    texts = tmp_path / "texts"
    texts.mkdir()
    m = _text_manifest(texts)
    store = tmp_path / "s"
    args = ("embed", "--store", str(store), "--manifest", str(m), "--quiet", *TEXT)
    _run(*args, prefix=prefix)
    texts.chmod(0o311)   # entries can no longer be listed
    (texts / "t0.txt").chmod(0o000)
    try:
        _, err = _run(*args, prefix=prefix, expect=1)
        assert "t0.txt" in err and "Permission denied" in err, err
    finally:
        (texts / "t0.txt").chmod(0o644)
        texts.chmod(0o755)
    out, _ = _run(*args, prefix=prefix)
    assert "embedded 1 video(s)" in out and "0 failed" in out, out
    assert FeatureStore(store).query("SELECT count(*) AS n FROM videos WHERE status = 'ok'")["n"][0].as_py() == 3


def test_a_same_size_same_mtime_replacement_is_embedded_again(tmp_path):
    """cp -p / rsync -t / a tar restore: other bytes, same size and mtime."""
    m = _text_manifest(tmp_path)
    store = tmp_path / "s"
    args = ("embed", "--store", str(store), "--manifest", str(m), "--quiet", *TEXT)
    _run(*args)
    q = "SELECT transcript FROM windows WHERE video_id = 'v0' ORDER BY window_idx"
    before = FeatureStore(store).query(q).column(0).to_pylist()
    path = tmp_path / "t0.txt"
    st = path.stat()
    text = path.read_text()
    replaced = text.replace("senang", "marahh")   # same length
    assert len(replaced) == len(text) and replaced != text
    (tmp_path / "new.txt").write_text(replaced)
    os.utime(tmp_path / "new.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "new.txt", path)        # what rsync -t does
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    out, _ = _run(*args)
    assert "embedded 1 video(s)" in out, out
    after = FeatureStore(store).query(q).column(0).to_pylist()
    assert after != before and any("marahh" in (t or "") for t in after)
    # In place, same inode (cp -p onto the file): caught by its change time.
    st = path.stat()
    with open(path, "r+") as f:
        restored = f.read().replace("marahh", "senang")
        f.seek(0)
        f.write(restored)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    out, _ = _run(*args)
    assert "embedded 1 video(s)" in out, out
    assert FeatureStore(store).query(q).column(0).to_pylist() == before
