"""Embed speed: seconds of wall time per minute of video, whole run and per stage.

Embeds reel-length clips (espeak-ng Indonesian speech, several sentences with
pauses, over a moving real face, ~30 s each: Whisper pads every clip to a 30 s
chunk, so 4 s demo clips would bill that padding) into a fresh store with the default encoders and Whisper base (int8,
faster-whisper) on this machine's CPU cores, and reports decode, ASR, audio,
video, text and write seconds per minute of media. The seed's published
figures are the baseline: librosa features at 11 windows/s (10.8 s per minute
of video at a 0.5 s hop, for the audio stage alone) and Whisper large at 21 s
per file on a GPU.

    .venv/bin/python -m bench.embed_speed [--clips 6] [--seconds 30] [--beam-size 5]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from featurestore.embed import STAGES, Embedder
from featurestore.encoders.registry import default_encoder, get_encoder
from featurestore.manifest import read_manifest
from featurestore.schema import HOP_S
from featurestore.store import FeatureStore

SEED_AUDIO_WINDOWS_PER_S = 11.0


def make_reels(out: Path, n_clips: int, seconds: float) -> Path:
    """``n_clips`` talking-face .mp4 files of about ``seconds`` each, and their manifest."""
    from reels_demo.corpus import EMOTION_SENTENCES, face_frames, speak, write_talking_video
    from featurestore.schema import CLASSES

    out.mkdir(parents=True, exist_ok=True)
    rows = ["id,video,emotion"]
    fps = 10
    for i in range(n_clips):
        emotion = CLASSES[i % len(CLASSES)]
        sentences = EMOTION_SENTENCES[emotion]
        pieces, rate, total = [], 22050, 0.0
        k = 0
        while total < seconds - 2.0:
            samples, rate = speak(sentences[k % len(sentences)])
            pause = np.zeros(int(0.6 * rate), np.float32)
            pieces += [samples, pause]
            total += (len(samples) + len(pause)) / rate
            k += 1
        audio = np.concatenate(pieces)[: int(seconds * rate)]
        n_frames = int(len(audio) / rate * fps)
        path = out / f"reel{i:02d}.mp4"
        write_talking_video(path, face_frames(n_frames, seed=i), fps, audio, rate)
        rows.append(f"reel{i:02d},{path.name},{emotion}")
    (out / "manifest.csv").write_text("\n".join(rows) + "\n")
    return out / "manifest.csv"


def measure(n_clips: int, seconds: float, beam_size: int, workdir: Path, text_unit: str = "segment",
            asr_batch_size: int | None = None):
    from featurestore.asr import Transcriber
    manifest = read_manifest(make_reels(workdir / "reels", n_clips, seconds))
    encoders = {m: get_encoder(default_encoder(m)) for m in ("audio", "video", "text")}
    # As `embed` builds it: word timestamps only for word windows.
    transcriber = Transcriber(beam_size=beam_size, word_timestamps=text_unit == "word",
                              batch_size=asr_batch_size).load()
    # Load every model first, so loading is not billed to the first chunk's stages.
    encoders["text"].encode(["halo semuanya"])
    encoders["audio"].encode([np.zeros(16000, np.float32)])
    encoders["video"].encode([np.zeros((4, 64, 64, 3), np.uint8)])
    transcriber.transcribe(np.zeros(16000, np.float32))
    return Embedder(FeatureStore(workdir / "store"), encoders, transcriber, progress=False,
                    log=lambda m: None, text_unit=text_unit).run(manifest)


def run(quick: bool = False, n_clips: int | None = None, seconds: float = 30.0,
        beam_size: int | None = None, text_unit: str = "segment",
        asr_batch_size: int | None = None) -> list[dict]:
    from featurestore.asr import Transcriber
    n_clips = n_clips or (2 if quick else 6)
    beam = beam_size or Transcriber().beam_size
    batch = asr_batch_size or Transcriber().batch_size
    cmd = (f"python -m bench.embed_speed --clips {n_clips} --seconds {seconds:g} --beam-size {beam} "
           f"--text-unit {text_unit} --asr-batch-size {batch}")
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(n_clips, seconds, beam, Path(tmp), text_unit, batch)
    print(r.summary())
    minutes = r.media_s / 60.0
    per_min = {k: v / minutes for k, v in r.stage_s.items()}
    total = r.wall_s / minutes
    seed_audio = 60.0 / HOP_S / SEED_AUDIO_WINDOWS_PER_S
    rows = [{"figure": f"embed, all stages ({n_clips} reel-length clips, {r.media_s:.0f} s of media, "
                       f"Whisper base int8 beam {beam}, ASR batch {batch}, {text_unit} windows)",
             "value": round(total, 2), "unit": "s per min of video", "baseline": None, "ratio": None,
             "command": cmd}]
    for stage in STAGES:
        rows.append({"figure": f"embed stage: {stage}", "value": round(per_min[stage], 2),
                     "unit": "s per min of video",
                     "baseline": round(seed_audio, 1) if stage == "audio" else None,
                     "ratio": round(seed_audio / per_min[stage], 1) if stage == "audio" and per_min[stage] else None,
                     "command": cmd})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--beam-size", type=int)
    p.add_argument("--text-unit", choices=["segment", "word"], default="segment",
                   help="window text unit (segment: what `embed` picks beside the competition's "
                   "transcripts; word: its pick for a store of videos alone)")
    p.add_argument("--asr-batch-size", type=int, help="speech chunks decoded together (1: sequential)")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    for row in run(quick=a.quick, n_clips=a.clips, seconds=a.seconds, beam_size=a.beam_size,
                   text_unit=a.text_unit, asr_batch_size=a.asr_batch_size):
        print(f"{row['figure']:<70} {row['value']:>8} {row['unit']}")


if __name__ == "__main__":
    main()
