"""Near-duplicate signatures on real photographs (tests/data/photos) and the edits web copies
carry: edited copies meet their original, distinct photos and colour look-alikes never do.
The rule is applied by brute force (near_dup_reference.py), with the recipe's defaults."""
import collections

import numpy as np
import polars as pl
import pytest

from near_dup_reference import groups, losers, map_records, matching_pairs, view_arrays
from web_edits import EDITS, LOOK_ALIKES, SPLITS, edited_pool
from wukong_data.recipe import DedupeConfig
from wukong_data.stages.dedupe.signatures import VIEWS

CONFIG = DedupeConfig()


def _pairs(records: pl.DataFrame) -> set[tuple[int, int]]:
    return matching_pairs(*view_arrays(records), CONFIG.hamming_radius, CONFIG.colour_tolerance)


@pytest.fixture(scope="module")
def measured():
    """split -> (pool, records, matching pairs)."""
    out = {}
    for split in SPLITS:
        pool = edited_pool(split)
        records = map_records([data for _, _, data in pool])
        out[split] = (pool, records, _pairs(records))
    return out


def _direct(pool, pairs, kind_filter):
    """photo kind -> [did the row of that kind meet its photo's original], for kinds passing the filter."""
    original = {photo: i for i, (photo, kind, _) in enumerate(pool) if kind == "original"}
    met = collections.defaultdict(list)
    for i, (photo, kind, _) in enumerate(pool):
        if kind_filter(kind):
            met[kind].append((min(i, original[photo]), max(i, original[photo])) in pairs)
    return met


@pytest.mark.parametrize("split", SPLITS)
def test_edited_copies_meet_their_original(measured, split):
    pool, _, pairs = measured[split]
    met = _direct(pool, pairs, lambda kind: kind in EDITS)
    recall = sum(sum(v) for v in met.values()) / sum(len(v) for v in met.values())
    flips = _direct(pool, pairs, lambda kind: kind == "flip")["flip"]
    print(f"\n{split}: recall {recall:.3f} over {sum(len(v) for v in met.values())} edited copies; "
          + ", ".join(f"{kind} {sum(v)}/{len(v)}" for kind, v in met.items())
          + f"; horizontal flip (not required) {sum(flips)}/{len(flips)}")
    assert recall >= 0.95
    for kind in ("resize_50", "thumbnail_200", "jpeg_q30", "watermark_corner", "border_white_5", "banner_bottom_8"):
        assert sum(met[kind]) >= len(met[kind]) - 1, (kind, met[kind])


def test_distinct_photos_never_merge(measured):
    """No copy of one photo meets any copy of another, across both splits."""
    pool = measured["tuning"][0] + measured["heldout"][0]
    pairs = _pairs(pl.concat([measured["tuning"][1], measured["heldout"][1]]))
    assert [(pool[i][0], pool[j][0]) for i, j in pairs if pool[i][0] != pool[j][0]] == []


@pytest.mark.parametrize("split", SPLITS)
def test_colour_look_alikes_stay_apart(measured, split):
    """A hue-rotated copy meets neither its original nor any duplicate of it: same layout, other colours."""
    pool, _, pairs = measured[split]
    same_photo = collections.defaultdict(list)
    for i, (photo, kind, _) in enumerate(pool):
        same_photo[photo].append(i)
    looks = [i for i, (_, kind, _) in enumerate(pool) if kind in LOOK_ALIKES]
    merged = [(pool[i][0], pool[i][1], pool[j][1]) for i in looks for j in same_photo[pool[i][0]]
              if pool[j][1] not in LOOK_ALIKES and (min(i, j), max(i, j)) in pairs]
    assert len(looks) >= 30 and merged == []


def test_signature_columns_give_every_view_and_none_for_broken_images(measured):
    records = map_records([data for _, _, data in measured["heldout"][0][:3]] + [b"<html>not an image</html>"])
    assert records["view_hashes"].list.len().to_list()[:3] == [len(VIEWS)] * 3
    assert records["view_colours"].list.len().to_list()[:3] == [len(VIEWS)] * 3
    assert records["phash"].to_list()[:3] == [h[0] for h in records["view_hashes"].to_list()[:3]]
    assert records["colour"].to_list()[:3] == [c[0] for c in records["view_colours"].to_list()[:3]]
    assert records.row(3, named=True)["view_hashes"] is None and records.row(3, named=True)["phash"] is None


def test_reference_groups_keep_the_largest_then_smallest_key():
    pairs = {(0, 1), (1, 2), (3, 4)}
    assert groups(6, pairs).tolist() == [0, 0, 0, 1, 1, 2]
    pixels, keys = np.array([10, 30, 30, 5, 5, 9]), np.array([0, 1, 2, 3, 4, 5])
    assert losers(pairs, pixels, keys) == {0: 1, 2: 1, 4: 3}
