"""featurestore.transcripts: window TSV (seed format), SRT, WebVTT, Whisper JSON."""
from __future__ import annotations

import json

import pytest

from featurestore.media import Window, window_grid
from featurestore.transcripts import TranscriptError, detect_format, read_transcript

# Lines in the style of the seed's real Whisper transcripts (window_idx<TAB>text).
SEED_TSV = (
    "0\tSelamat pagi semuanya.\n"
    "1\tSelamat pagi semuanya. Hari ini\n"
    "2\tHari ini\n"
    "3\t[NO_SPEECH]\n"
    "4\t\n"
    "5\tTerima kasih.\n"
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ TSV
def test_tsv_defines_its_windows(tmp_path):
    r = read_transcript(_write(tmp_path, "t_1_Joy.txt", SEED_TSV))
    assert r.format == "tsv" and r.segments == []
    assert [w.idx for w in r.windows] == list(range(6))
    assert [(w.start_s, w.end_s) for w in r.windows[:3]] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    assert r.texts == ["Selamat pagi semuanya.", "Selamat pagi semuanya. Hari ini", "Hari ini",
                       None, None, "Terima kasih."]


def test_tsv_gaps_are_windows_without_text(tmp_path):
    r = read_transcript(_write(tmp_path, "gap.tsv", "0\ta\n3\tb\n"))
    assert [w.idx for w in r.windows] == [0, 1, 2, 3]
    assert r.texts == ["a", None, None, "b"]


def test_tsv_onto_given_windows(tmp_path):
    path = _write(tmp_path, "t.txt", SEED_TSV)
    longer = read_transcript(path, windows=window_grid(4.0))  # 7 windows
    assert longer.texts[:3] == ["Selamat pagi semuanya.", "Selamat pagi semuanya. Hari ini",
                                "Hari ini"]
    assert longer.texts[5:] == ["Terima kasih.", None]
    with pytest.warns(RuntimeWarning, match=r"t\.txt: 3 window\(s\) beyond"):
        shorter = read_transcript(path, windows=window_grid(2.0))  # 3 windows
    assert shorter.texts == ["Selamat pagi semuanya.", "Selamat pagi semuanya. Hari ini", "Hari ini"]


@pytest.mark.parametrize("body, line, reason", [
    ("0\tok\n1 missing tab\n", 2, "no TAB"),
    ("0\tok\n\nx\ttext\n", 3, "not an integer"),
    ("0\tok\n0\tagain\n", 2, "appears twice"),
    ("-1\tneg\n", 1, "negative"),
])
def test_tsv_malformed_lines_are_named(tmp_path, body, line, reason):
    path = _write(tmp_path, "bad.txt", body)
    with pytest.raises(TranscriptError) as err:
        read_transcript(path)
    assert err.value.line == line
    assert f"{path}:{line}" in str(err.value) and reason in str(err.value)


def test_not_utf8_and_missing(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("0\tsenang sekali \xe9\n".encode("latin-1"))
    with pytest.raises(TranscriptError, match="latin1.txt.*UTF-8"):
        read_transcript(path)
    with pytest.raises(TranscriptError, match="nope.txt.*not found"):
        read_transcript(tmp_path / "nope.txt")


# ------------------------------------------------------------------ SRT
SRT = """1
00:00:00,200 --> 00:00:01,100
<i>Saya sangat</i> senang

2
00:00:01,600 --> 00:00:02,400
hari ini
"""


def test_srt_cues_to_windows(tmp_path):
    r = read_transcript(_write(tmp_path, "a.srt", SRT))
    assert r.format == "srt"
    assert [(s.start_s, s.end_s, s.text, s.words) for s in r.segments] == [
        (0.2, 1.1, "Saya sangat senang", ()), (1.6, 2.4, "hari ini", ())]
    # windows from the last end time (2.4 s): [0,1) [0.5,1.5) [1,2) [1.5,2.4)
    assert [(w.start_s, w.end_s) for w in r.windows] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0),
                                                        (1.5, 2.4)]
    assert r.texts == ["Saya sangat senang", "Saya sangat senang",
                       "Saya sangat senang hari ini", "hari ini"]


def test_srt_onto_given_windows(tmp_path):
    windows = [Window(0, 0.0, 1.0), Window(1, 2.5, 3.5)]
    r = read_transcript(_write(tmp_path, "a.srt", SRT), windows=windows)
    assert r.windows == windows and r.texts == ["Saya sangat senang", None]


@pytest.mark.parametrize("body, line, reason", [
    ("1\n00:00:00,200 --> 00:00:xx,100\nhalo\n", 2, "bad timestamp"),
    ("1\n00:00:02,000 --> 00:00:01,000\nhalo\n", 2, "before it starts"),
    ("1\n00:00:00,000 --> 00:00:01,000\nhalo\n\njust text\nmore\n", 5, "without a 'start --> end'"),
])
def test_srt_malformed(tmp_path, body, line, reason):
    path = _write(tmp_path, "bad.srt", body)
    with pytest.raises(TranscriptError) as err:
        read_transcript(path)
    assert err.value.line == line and reason in str(err.value) and str(path) in str(err.value)


# ------------------------------------------------------------------ VTT
VTT = """WEBVTT
Kind: captions

NOTE made by hand
over two lines

cue-1
00:00.500 --> 00:01.250 align:start position:10%
<v Rina>Terima <c.loud>kasih</c>

00:00:02.000 --> 00:00:03.000
banyak
"""


def test_vtt_cues_to_windows(tmp_path):
    r = read_transcript(_write(tmp_path, "a.vtt", VTT))
    assert r.format == "vtt"
    assert [(s.start_s, s.end_s, s.text) for s in r.segments] == [
        (0.5, 1.25, "Terima kasih"), (2.0, 3.0, "banyak")]
    assert len(r.windows) == 5 and r.windows[-1].end_s == 3.0
    assert r.texts == ["Terima kasih", "Terima kasih", "Terima kasih", "banyak", "banyak"]


def test_vtt_needs_header(tmp_path):
    path = _write(tmp_path, "a.vtt", VTT.replace("WEBVTT", "WEBVIT"))
    with pytest.raises(TranscriptError, match=r"a\.vtt:1: missing 'WEBVTT'"):
        read_transcript(path)


# ------------------------------------------------------------------ Whisper JSON
def test_whisper_json_words_and_segments(tmp_path):
    result = {"text": " Saya senang. Terima kasih.", "language": "id", "segments": [
        {"id": 0, "start": 0.0, "end": 1.4, "text": " Saya senang.",
         "words": [{"word": " Saya", "start": 0.0, "end": 0.4, "probability": 0.9},
                   {"word": " senang.", "start": 0.5, "end": 1.4, "probability": 0.8}]},
        {"id": 1, "start": 1.8, "end": 2.6, "text": " Terima kasih."},
    ]}
    r = read_transcript(_write(tmp_path, "w.json", json.dumps(result)))
    assert r.format == "whisper-json"
    assert [s.text for s in r.segments] == ["Saya senang.", "Terima kasih."]
    assert [w.text for w in r.segments[0].words] == ["Saya", "senang."] and r.segments[1].words == ()
    # 2.6 s: four full windows and a trailing [2.0, 2.6); each window gets whole segments ...
    assert r.texts == ["Saya senang.", "Saya senang.", "Saya senang. Terima kasih.", "Terima kasih.",
                       "Terima kasih."]
    # ... or only its own words
    words = read_transcript(r.path, unit="word")
    assert words.texts == ["Saya senang.", "senang.", "senang. Terima kasih.", "Terima kasih.",
                           "Terima kasih."]
    # a bare list of segments works too
    bare = read_transcript(_write(tmp_path, "segs.json", json.dumps(result["segments"][1:])))
    assert bare.texts[-1] == "Terima kasih." and bare.windows[-1].end_s == 2.6


@pytest.mark.parametrize("body, match", [
    ('{"segments": [{"start": 0, "end": 1, "text": "a"},', r"w\.json:1: invalid JSON"),
    ('{"segments": [{"end": 1, "text": "a"}]}', r"segment 0: 'start' must be a number"),
    ('{"segments": [{"start": 0, "end": 1, "text": "a", "words": [{"start": 0, "end": 1}]}]}',
     r"segment 0 word 0: missing 'word'"),
    ('{"text": "no timing"}', "no 'segments' list"),
])
def test_whisper_json_malformed(tmp_path, body, match):
    with pytest.raises(TranscriptError, match=match):
        read_transcript(_write(tmp_path, "w.json", body))


def test_format_detection_by_content(tmp_path):
    assert detect_format("x.cap", "WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n") == "vtt"
    assert detect_format("x.cap", '{"segments": []}') == "whisper-json"
    assert detect_format("x.cap", "1\n00:00:01,000 --> 00:00:02,000\nhi\n") == "srt"
    assert detect_format("x.cap", "0\thi\n") == "tsv"
    with pytest.raises(TranscriptError, match="x.cap: cannot tell"):
        detect_format("x.cap", "hello")
    r = read_transcript(_write(tmp_path, "subs.cap", SRT))
    assert r.format == "srt"
