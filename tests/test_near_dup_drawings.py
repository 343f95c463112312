"""Near-duplicate signatures on flat pictures (one shape of one colour on a plain background, as
the demo draws and product shots are): distinct drawings never merge, copies still do. The rule
is applied by brute force (near_dup_reference.py) over every allowed view pair, with the
recipe's defaults."""
import itertools

from flat_drawings import LOOK_ALIKES, demo_drawings, look_alike, planted_copies
from near_dup_reference import map_records, matching_pairs, view_arrays
from wukong_data.recipe import DedupeConfig

CONFIG = DedupeConfig()


def _pairs(images: list[bytes]) -> set[tuple[int, int]]:
    return matching_pairs(*view_arrays(map_records(images)), CONFIG.hamming_radius, CONFIG.colour_tolerance)


def test_distinct_demo_drawings_never_merge():
    drawings = demo_drawings()
    shown = [what for what, _ in drawings]
    pairs = _pairs([data for _, data in drawings])
    redrawn = [(i, j) for i, j in itertools.combinations(range(len(shown)), 2) if shown[i] == shown[j]]
    print(f"\n{len(set(shown))} distinct drawings of {len(shown)}; pairs of one drawing redrawn (another size, "
          f"a few pixels away: not required either way) that meet: {sum(p in pairs for p in redrawn)} of {len(redrawn)}")
    assert len(set(shown)) >= 300
    assert [(shown[i], shown[j]) for i, j in pairs if shown[i] != shown[j]] == []


def test_look_alike_drawings_stay_apart():
    """Same colour other shape, same shape other colour, all at the same place: none merge."""
    assert _pairs([look_alike(colour, shape) for colour, shape in LOOK_ALIKES]) == set()


def test_planted_copies_of_drawings_meet_their_original():
    for original, copy in planted_copies():
        assert _pairs([original, copy]) == {(0, 1)}
