"""Dedupe: planted duplicate groups collapse to one survivor; look-alikes are all kept."""
import csv
import json
import shutil
import tomllib

import polars as pl
import pytest

from conftest import wukong
from flat_drawings import LOOK_ALIKES, look_alike
from images import cropped, jpeg, resized, scene
from wukong_data.build import BuildDir
from wukong_data.demo.server import serve
from wukong_data.engines.local import LocalEngine
from wukong_data.recipe import parse
from wukong_data.stages import StageContext
from wukong_data.stages.dedupe import DedupeStage
from wukong_data.stages.dedupe.signatures import normalise_url
from wukong_data.ui import UI

SHARD = 20  # crawl samples_per_shard: duplicate groups span shards
RECIPE = f"""
stages = ["crawl", "dedupe", "export"]
[crawl]
samples_per_shard = {SHARD}
allow_addresses = ["127.0.0.1"]
threads = 8
[dedupe]
max_caption_count = 3
against = ["eval"]
[export]
samples_per_shard = 50
"""


def _key(row: int) -> str:
    return f"{row // SHARD:05d}{row % SHARD:02d}"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """URL rows (path, caption, bytes, group): group names the duplicate set a row belongs to."""
    rows = []
    for i in range(40):  # distinct scenes
        rows.append((f"/s/{i}.jpg", f"第{i}张风景照片", jpeg(scene(i)), f"scene{i}"))
    for i in range(5):  # a planted group per scene 0..4
        original = scene(i)
        rows.append((f"/copy/{i}.jpg", f"转载{i}", jpeg(original), f"scene{i}"))
        rows.append((f"/half/{i}.jpg", f"缩小{i}", jpeg(resized(original, 0.5)), f"scene{i}"))
        rows.append((f"/q30/{i}.jpg", f"压缩{i}", jpeg(original, 30), f"scene{i}"))
        rows.append((f"/crop/{i}.jpg", f"裁剪{i}", jpeg(cropped(original, 0.05)), f"scene{i}"))
    # The same URL again, with scheme/host case, default port and fragment differences.
    rows.append(("/s/7.jpg", "同一个网址", None, "scene7"))
    # Look-alikes: same shape other colour, same colour other shape, on the same background.
    for i, (colour, shape) in enumerate(LOOK_ALIKES):
        rows.append((f"/look/{i}.jpg", f"看起来相似的图{i}", look_alike(colour, shape), f"look{i}"))
    # Boilerplate: 4 times (over max_caption_count=3) with whitespace variants; another 3 times.
    for i, caption in enumerate(["点击 查看", " 点击  查看", "点击 查看 ", "点击\t查看"]):
        rows.append((f"/boiler/{i}.jpg", caption, jpeg(scene(100 + i)), f"boiler{i}"))
    for i in range(3):
        rows.append((f"/ok3/{i}.jpg", "三次出现的说明", jpeg(scene(200 + i)), f"ok3-{i}"))
    # An evaluation image that a training image overlaps (recompressed), and one that none does.
    return rows


@pytest.fixture(scope="module")
def builds(planted, tmp_path_factory):
    root = tmp_path_factory.mktemp("dedupe")
    (root / "eval").mkdir()
    (root / "eval" / "overlap.jpg").write_bytes(jpeg(scene(20), quality=40))
    (root / "eval" / "unrelated.jpg").write_bytes(jpeg(scene(999)))
    (root / "recipe.toml").write_text(RECIPE)
    routes = {path: (body, {}) for path, _, body, _ in planted if body is not None}
    out = {}
    with serve(routes) as base:
        host = base.replace("http://127.0.0.1", "HTTP://127.0.0.1")
        with open(root / "urls.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["url", "caption"])
            for path, caption, body, _ in planted:
                url = base + path if body is not None else host + path + "#top"
                writer.writerow([url, caption])
        for workers in (1, 2):
            out[workers] = root / f"w{workers}"
            wukong("build", root / "recipe.toml", "--input", root / "urls.csv", "--out", out[workers],
                   "--workers", workers, "--quiet")
    return out


def _decisions(build):
    return pl.read_parquet(sorted((build / "dedupe").glob("[0-9]*.parquet"))).sort("key")


def test_duplicate_groups_collapse_and_look_alikes_survive(planted, builds):
    decided = {k: (r, d) for k, r, d in _decisions(builds[2]).select("key", "reason", "dup_of").iter_rows()}
    for g in [f"scene{i}" for i in range(5)] + ["scene7"]:
        members = [_key(i) for i, row in enumerate(planted) if row[3] == g]
        kept = [k for k in members if decided[k][0] is None]
        assert kept == [members[0]], (g, [decided[k] for k in members])  # the original, full size
        assert all(decided[k][1] == members[0] for k in members[1:])
    reasons = {_key(i): decided[_key(i)][0] for i, row in enumerate(planted)}
    assert reasons[_key(40)] == "dup_image"  # exact copy under another URL
    assert {reasons[_key(41)], reasons[_key(42)], reasons[_key(43)]} == {"near_dup_image"}
    assert reasons[_key(60)] == "dup_url"
    looks = [_key(i) for i, row in enumerate(planted) if row[3].startswith("look")]
    assert [decided[k][0] for k in looks] == [None] * 6, "a look-alike was removed"


def test_frequent_captions_and_decontamination_exact_keys(planted, builds):
    d = _decisions(builds[2])
    frequent = set(d.filter(pl.col("reason") == "frequent_caption")["key"])
    assert frequent == {_key(i) for i, row in enumerate(planted) if row[3].startswith("boiler")}
    assert set(d.filter(pl.col("reason") == "eval_overlap")["key"]) == {_key(20)}
    assert d.height == len(planted)  # every crawled row has a decision


def test_same_survivors_with_one_or_two_workers(builds):
    assert _decisions(builds[1]).equals(_decisions(builds[2]))


@pytest.mark.parametrize("partitions", [1, 7, 64])
def test_same_decisions_for_any_partition_count(builds, partitions, tmp_path):
    """The partitioned reduces (exact rules, near-duplicate collapse) decide as one global pass:
    the build's reduce is redone from its map records with another partition count."""
    out = shutil.copytree(builds[2], tmp_path / "b")
    dedupe = out / "dedupe"
    for path in dedupe.iterdir():  # everything the reduce wrote; the map records stay
        if path.name != "_map":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    recipe = parse(tomllib.loads(RECIPE.replace("[dedupe]", f"[dedupe]\npartitions = {partitions}")), "test",
                   builds[2].parent)
    with LocalEngine(1) as engine:
        DedupeStage().run(StageContext(BuildDir(out), recipe, engine, UI(quiet=True)))
    assert json.loads((dedupe / "_partitions.json").read_text())["partitions"] == partitions
    assert _decisions(out).equals(_decisions(builds[2]))


def test_url_normalisation():
    assert normalise_url("HTTP://Example.COM:80/a/B.jpg#frag") == "http://example.com/a/B.jpg"
    assert normalise_url("https://example.com:443/x?y=1") == "https://example.com/x?y=1"
    assert normalise_url("https://example.com:8443/x") == "https://example.com:8443/x"
    assert normalise_url("http://example.com") == "http://example.com/"


def test_the_dedupe_stage_imports_without_the_filter_extra():
    # The dedupe extra alone: signatures normalise captions without the filter's segmenter.
    import subprocess
    import sys

    code = ("import sys; sys.modules['rjieba'] = None; sys.modules['jieba'] = None\n"
            "import wukong_data.stages.dedupe, wukong_data.stages.dedupe.signatures")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_an_error_of_ours_in_a_signature_stops_the_stage(monkeypatch):
    import importlib

    signatures = importlib.import_module("wukong_data.stages.dedupe.signatures")
    assert signatures.image_signature(b"not an image") is None  # undecodable bytes: no signature
    monkeypatch.setattr(signatures, "_colour_grids", lambda cells: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        signatures.image_signature(jpeg(scene(0)))
