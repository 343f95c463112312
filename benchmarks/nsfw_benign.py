"""The NSFW image rule on real benign photos: how many it flags. JSON.

Every photo of ../shared/flickr8k-cn (Flickr8k: people, children, dogs, sport; nothing explicit)
goes through the filter's own scorer (nudenet's 320n detector, its exposed-body classes), and
again mirrored: a detection that is a real body part should survive a horizontal flip, so the
share of the detector's confident detections of benign classes (feet, belly, faces) that survive
is printed beside it, as a proxy for the sensitivity a flip-agreement rule would cost (no NSFW
images may be had to measure it directly).
Each flagged photo comes with its class, score, mirrored score and best box (fractions of the
detector's frame).

    python benchmarks/nsfw_benign.py [--photos 7000]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from wukong_data.stages.filter.image import _EXPOSED, NsfwScorer

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "flickr8k-cn"
BENIGN = ("FEET_EXPOSED", "BELLY_EXPOSED", "ARMPITS_EXPOSED", "MALE_BREAST_EXPOSED", "FACE_FEMALE", "FACE_MALE")


def mirrored(data: bytes) -> bytes:
    out = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(data)).convert("RGB")).save(out, "JPEG", quality=95)
    return out.getvalue()


def best_box(scorer: NsfwScorer, exposed: list[int], data: bytes) -> list[float]:
    """Width and height of the image's best exposed-body anchor, as fractions of the detector's
    square frame (the photo letterboxed to 320 px): a frame-wide box is no body part's."""
    (pred,) = scorer.session.run(None, {scorer.input_name: scorer._read(data, 320)[0]})
    classes = pred[0, 4:, :]
    own = np.where(classes == classes.max(axis=0), classes, 0.0)[exposed].max(axis=0)
    anchor = int(own.argmax())
    return [round(float(pred[0, 2, anchor]) / 320, 3), round(float(pred[0, 3, anchor]) / 320, 3)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=0, help="the first N photos (0: all)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7])
    args = parser.parse_args()
    paths = sorted((SHARED / "images").rglob("*.jpg"))
    if not paths:
        sys.exit(f"no Flickr8k-CN photos under {SHARED / 'images'}")
    paths = paths[:args.photos] if args.photos else paths
    scorer = NsfwScorer(1)
    exposed = [scorer.labels.index(c) for c in _EXPOSED]
    plain, flipped, seconds = [], [], 0.0
    for start in range(0, len(paths), 64):
        blobs = [p.read_bytes() for p in paths[start:start + 64]]
        tic = time.perf_counter()
        plain.append(scorer.class_scores(blobs))
        seconds += time.perf_counter() - tic
        flipped.append(scorer.class_scores([mirrored(b) for b in blobs]))
    plain, flipped = np.concatenate(plain), np.concatenate(flipped)
    score, score_flipped = plain[:, exposed].max(1), flipped[:, exposed].max(1)
    flagged = {}
    for t in args.thresholds:
        rule = score >= t
        flagged[str(t)] = {"flagged": int(rule.sum()), "share": round(float(rule.mean()), 5),
                           "flagged_both_ways": int((rule & (score_flipped >= t)).sum())}
    at_default = np.flatnonzero(score >= 0.5)
    benign = {}
    for name in BENIGN:
        j = scorer.labels.index(name)
        sure = plain[:, j] >= 0.5
        benign[name] = {"detected": int(sure.sum()),
                        "also_when_mirrored": int((sure & (flipped[:, j] >= 0.5)).sum())}
    print(json.dumps({
        "photos": len(paths), "detector": "nudenet 320n.onnx, exposed-body classes " + ", ".join(_EXPOSED),
        "images_per_s_one_thread": round(len(paths) / seconds, 1), "flagged_by_threshold": flagged,
        "flagged_at_0.5": [{"photo": str(paths[i].relative_to(SHARED)),
                            "class": scorer.labels[exposed[int(plain[i, exposed].argmax())]],
                            "score": round(float(score[i]), 3), "mirrored": round(float(score_flipped[i]), 3),
                            "box_of_frame": best_box(scorer, exposed, paths[i].read_bytes())}
                           for i in at_default],
        "benign_detections_surviving_a_mirror": benign}, indent=2))


if __name__ == "__main__":
    main()
