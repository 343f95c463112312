"""The NSFW image score reads nudenet's detector the way nudenet does: the same class for the
same output row. A wrong class index would move every score to another body part."""
from pathlib import Path

import pytest

from wukong_data.stages.filter.image import nsfw_scorer

PHOTO = Path(__file__).parent / "assets" / "astronaut.jpg"


def test_class_scores_agree_with_nudenets_own_detections():
    from nudenet import NudeDetector

    detections = NudeDetector().detect(str(PHOTO))
    assert detections, "nudenet found nothing on the photo; the test needs at least one class"
    scorer = nsfw_scorer()
    ours = dict(zip(scorer.labels, scorer.class_scores([PHOTO.read_bytes()])[0]))
    for found in detections:
        best = max(d["score"] for d in detections if d["class"] == found["class"])
        assert ours[found["class"]] == pytest.approx(best, abs=1e-4), found["class"]
    assert {d["class"] for d in detections} == {"FACE_FEMALE"}
    assert scorer.scores([PHOTO.read_bytes()])[0] < 0.2  # a face is not exposed skin
