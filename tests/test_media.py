"""featurestore.media on tiny real media made by tests/media_fixtures.py."""
from __future__ import annotations

import numpy as np
import pytest

import media_fixtures as mf
from featurestore.media import (
    MediaError,
    Window,
    decode_video,
    window_frame_times,
    window_grid,
)
from featurestore.schema import FRAMES_PER_WINDOW, SAMPLE_RATE

FPS = 15


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    mf.make_talking_face_video(d / "talk10.mp4", text=mf.LONG_TEXT, seconds=10.0, fps=FPS)
    mf.make_silent_video(d / "silent.mp4", seconds=2.0, fps=FPS)
    mf.make_audio_only(d / "voice.wav", seconds=2.3)
    mf.make_audio_only(d / "voice.mp3", seconds=2.3)
    return d


# ------------------------------------------------------------------ window grid
@pytest.mark.parametrize("duration, n, last", [
    (10.0, 19, (9.0, 10.0)),     # exact multiple: no trailing window
    (10.3, 20, (9.5, 10.3)),     # trailing partial window covers 10.0-10.3
    (1.0, 1, (0.0, 1.0)),
    (1.2, 2, (0.5, 1.2)),
    (0.3, 1, (0.0, 0.3)),        # shorter than a window: one window
])
def test_window_grid_counts_and_times(duration, n, last):
    windows = window_grid(duration)
    assert len(windows) == n
    assert [w.idx for w in windows] == list(range(n))
    assert (windows[-1].start_s, windows[-1].end_s) == pytest.approx(last)
    full = [w for w in windows if w.length_s == pytest.approx(1.0)]
    assert all(w.start_s == pytest.approx(0.5 * w.idx) for w in full)
    assert all(w.end_s <= duration + 1e-9 for w in windows)


def test_window_grid_min_last_and_edge_cases():
    # hop == window: a 0.4 s tail is below min_last_s and dropped, a 0.6 s tail is kept
    assert len(window_grid(3.4, window_s=1.0, hop_s=1.0)) == 3
    tail = window_grid(3.6, window_s=1.0, hop_s=1.0)
    assert len(tail) == 4 and tail[-1] == Window(3, 3.0, 3.6)
    assert window_grid(0.0) == []
    with pytest.raises(ValueError, match="duration_s"):
        window_grid(-1.0)
    with pytest.raises(ValueError, match="duration_s"):
        window_grid(float("nan"))


def test_window_frame_times_even_spacing_and_dedup():
    windows = window_grid(10.0)
    times, index = window_frame_times(windows, frames_per_window=4)
    assert index.shape == (19, 4)
    np.testing.assert_allclose(times[index[0]], [0.125, 0.375, 0.625, 0.875])
    # consecutive windows share two sample times (0.5 s hop over 1.0 s windows)
    assert set(index[0][2:]) == set(index[1][:2])
    assert len(times) == 2 * 19 + 2
    assert np.all(np.diff(times) > 0)
    for w, row in zip(windows, index):
        assert np.all((times[row] > w.start_s) & (times[row] < w.end_s))


# ------------------------------------------------------------------ decoding
def test_decode_talking_video(media_dir):
    m = decode_video(media_dir / "talk10.mp4")
    assert m.duration_s == pytest.approx(10.0, abs=1e-3)
    assert m.has_video and m.has_audio
    assert m.audio.dtype == np.float32 and m.audio.ndim == 1
    assert len(m.audio) == pytest.approx(10.0 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.01)
    assert np.abs(m.audio).max() > 0.05  # real speech, not silence
    assert len(m.windows) == 19
    assert m.frame_index.shape == (19, FRAMES_PER_WINDOW)
    assert m.frames.shape == (len(m.frame_times), 240, 320, 3) and m.frames.dtype == np.uint8
    # each returned frame is the source frame nearest to its sample time
    assert np.abs(m.source_frame_times - m.frame_times).max() <= 0.5 / FPS + 1e-6
    expected = [round(t * FPS) % (256 // mf.MARKER_STEP) for t in m.source_frame_times]
    assert [mf.frame_number_from_marker(f) for f in m.frames] == expected
    assert m.window_frames(3).shape == (FRAMES_PER_WINDOW, 240, 320, 3)
    assert len(m.window_audio(m.windows[3])) == SAMPLE_RATE


def test_decode_downscales_frames(media_dir):
    m = decode_video(media_dir / "talk10.mp4", max_short_side=120)
    assert m.frames.shape[1:] == (120, 160, 3)
    expected = [round(t * FPS) % (256 // mf.MARKER_STEP) for t in m.source_frame_times]
    assert [mf.frame_number_from_marker(f) for f in m.frames] == expected


def test_decode_explicit_and_callable_frame_times(media_dir):
    m = decode_video(media_dir / "talk10.mp4", frame_times=[0.0, 2.0, 20.0])
    assert m.frames.shape[0] == 3 and m.frame_index is None
    # past the end: the last frame
    np.testing.assert_allclose(m.source_frame_times, [0.0, 2.0, 149 / FPS], atol=1e-6)
    half = decode_video(media_dir / "talk10.mp4", frame_times=lambda d: [d / 2], audio=False)
    np.testing.assert_allclose(half.source_frame_times, [5.0], atol=1e-6)
    assert half.audio is None


def test_video_without_audio(media_dir):
    m = decode_video(media_dir / "silent.mp4")
    assert m.audio is None and not m.has_audio
    assert m.has_video and m.frames.shape[0] == len(m.frame_times)
    assert m.duration_s == pytest.approx(2.0, abs=1e-3) and len(m.windows) == 3


@pytest.mark.parametrize("name", ["voice.wav", "voice.mp3"])
def test_audio_only_files(media_dir, name):
    m = decode_video(media_dir / name)
    assert not m.has_video and m.frames is None
    assert m.duration_s == pytest.approx(2.3, abs=0.06)
    assert len(m.audio) == pytest.approx(m.duration_s * SAMPLE_RATE, abs=2)
    assert len(m.windows) == 4 and m.windows[-1].end_s == pytest.approx(m.duration_s)


def test_container_without_duration_metadata(tmp_path):
    # A raw H.264 stream declares no duration (FFmpeg assumes 25 fps): the grid and
    # the frames come from what actually decodes.
    path = mf.make_silent_video(tmp_path / "raw.h264", seconds=2.0, fps=25)
    m = decode_video(path)
    assert m.duration_s == pytest.approx(2.0) and len(m.windows) == 3
    assert m.frames.shape[0] == len(m.frame_times) == 8
    expected = [round(t * 25) % (256 // mf.MARKER_STEP) for t in m.source_frame_times]
    assert [mf.frame_number_from_marker(f) for f in m.frames] == expected


def test_skip_video_decoding(media_dir):
    m = decode_video(media_dir / "talk10.mp4", video=False)
    assert m.frames is None and m.has_video and m.audio is not None
    assert m.frame_index.shape == (19, FRAMES_PER_WINDOW)


# ------------------------------------------------------------------ errors
def _bad_files(d, src):
    return {
        "missing": (d / "nope.mp4", "not found"),
        "empty": (mf.make_zero_byte(d / "empty.mp4"), "empty"),
        "text": (mf.make_text_as_video(d / "page.mp4"), "not a readable media file"),
        "corrupt": (mf.make_corrupt_video(d / "corrupt.mp4", src), "no decodable"),
        "directory": (d, "directory"),
    }


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "corrupt", "directory"])
def test_bad_files_raise_media_error(media_dir, tmp_path, kind):
    path, reason = _bad_files(tmp_path, media_dir / "talk10.mp4")[kind]
    with pytest.raises(MediaError) as err:
        decode_video(path)
    assert str(path) in str(err.value)
    assert reason in err.value.reason
    assert err.value.hint  # says what to do


def test_audio_only_file_without_audio_decoding_is_an_error(media_dir):
    with pytest.raises(MediaError, match="voice.wav.*no video stream"):
        decode_video(media_dir / "voice.wav", audio=False)
