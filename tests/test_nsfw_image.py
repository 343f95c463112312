"""The NSFW image score reads nudenet's detector the way nudenet does: the same class for the
same output row. A wrong class index would move every score to another body part."""
import io

import pytest
from PIL import Image

from wukong_data.stages.filter.image import nsfw_scorer


def test_class_scores_agree_with_nudenets_own_detections(tmp_path):
    """On a real photograph of a face (NASA's portrait of astronaut Eileen Collins, public domain,
    as shipped in the scikit-image wheel)."""
    from nudenet import NudeDetector
    from skimage.data import astronaut

    buf = io.BytesIO()
    Image.fromarray(astronaut()).resize((320, 320), Image.LANCZOS).save(buf, "JPEG", quality=90)
    photo = buf.getvalue()
    (tmp_path / "photo.jpg").write_bytes(photo)
    detections = NudeDetector().detect(str(tmp_path / "photo.jpg"))
    assert detections, "nudenet found nothing on the photo; the test needs at least one class"
    scorer = nsfw_scorer()
    ours = dict(zip(scorer.labels, scorer.class_scores([photo])[0]))
    for found in detections:
        best = max(d["score"] for d in detections if d["class"] == found["class"])
        assert ours[found["class"]] == pytest.approx(best, abs=1e-4), found["class"]
    assert {d["class"] for d in detections} == {"FACE_FEMALE"}
    assert scorer.scores([photo])[0] < 0.2  # a face is not exposed skin
