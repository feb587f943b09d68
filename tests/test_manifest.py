from pathlib import Path

import pytest

from featurestore.manifest import ManifestError, read_manifest


def write(tmp_path: Path, text: str, name="m.csv", encoding="utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_labels_mapped_paths_resolved(tmp_path):
    (tmp_path / "clips").mkdir()
    p = write(tmp_path, "id,video,emotion\n1,clips/a.mp4,Marah\n2,/abs/b.mp4, terkejut \n3,c.mp4,\n")
    m = read_manifest(p)
    v = m.videos.set_index("video_id")
    assert v.loc["1", "label"] == "Anger" and v.loc["1", "raw_label"] == "Marah"
    assert v.loc["1", "path"] == str((tmp_path / "clips/a.mp4").resolve())
    assert v.loc["2", "path"] == "/abs/b.mp4" and v.loc["2", "label"] == "Surprise"
    assert v.loc["3", "label"] is None and v.loc["3", "split"] == "test"
    assert v.loc["1", "split"] == "train"
    assert m.ok and "mapped 'Marah' -> Anger: 1" in m.summary()


def test_unknown_label_rejects_only_that_row(tmp_path):
    p = write(tmp_path, "id,video,emotion\n1,a.mp4,Joy\n2,b.mp4,Love\n3,c.mp4,Sedih\n")
    m = read_manifest(p)
    assert list(m.videos.video_id) == ["1", "3"]
    assert not m.ok and len(m.rejected) == 1
    r = m.rejected[0]
    assert r.row == 2 and r.video_id == "2" and "'Love'" in r.message
    assert "row 2 (id '2')" in m.summary()


def test_duplicate_ids_fail_before_work(tmp_path):
    p = write(tmp_path, "id,video,emotion\n1,a.mp4,Joy\n1,b.mp4,Joy\n")
    with pytest.raises(ManifestError, match="duplicate id.*1"):
        read_manifest(p)


def test_missing_columns(tmp_path):
    p = write(tmp_path, "id,emotion\n1,Joy\n")
    with pytest.raises(ManifestError, match="lacks column.*video"):
        read_manifest(p)


def test_unreadable_encoding_names_file_and_fix(tmp_path):
    p = write(tmp_path, "id,video,emotion\n1,caf\u00e9.mp4,Joy\n", encoding="cp1252")
    with pytest.raises(ManifestError, match=r"m\.csv.*not valid utf-8-sig.*--encoding"):
        read_manifest(p)
    m = read_manifest(p, encoding="cp1252")
    assert m.videos.path[0].endswith("caf\u00e9.mp4")


def test_url_videos_resolve_to_videos_dir(tmp_path):
    vids = tmp_path / "dl"
    vids.mkdir()
    (vids / "7.mp4").write_bytes(b"x")
    p = write(tmp_path, "id,video,emotion\n7,https://www.instagram.com/reel/abc,Joy\n"
                        "8,https://www.instagram.com/reel/def,Joy\n")
    m = read_manifest(p, videos_dir=vids)
    v = m.videos.set_index("video_id")
    assert v.loc["7", "path"] == str((vids / "7.mp4").resolve()) and v.loc["7", "error"] is None
    assert v.loc["8", "path"] is None and "8.mp4" in v.loc["8", "error"]


def test_text_only_rows_and_split_column(tmp_path):
    p = write(tmp_path, "id,video,emotion,transcript,group,split\n"
                        "1,,Joy,t/1.txt,acct1,train\n2,,,t/2.txt,,test\n3,,Joy,,,train\n")
    m = read_manifest(p)
    v = m.videos.set_index("video_id")
    assert v.loc["1", "transcript_path"] == str((tmp_path / "t/1.txt").resolve())
    assert v.loc["1", "group"] == "acct1" and v.loc["2", "split"] == "test"
    assert [r.video_id for r in m.rejected] == ["3"]
    assert "neither a video nor a transcript" in m.rejected[0].message


def test_bom_and_header_case(tmp_path):
    p = write(tmp_path, "\ufeffID,Video,Emotion\n1,a.mp4,Bangga\n")
    assert read_manifest(p).videos.label[0] == "Proud"
