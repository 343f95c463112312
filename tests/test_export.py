"""What users get in final/: compact tars, shards shuffled across the build, a dataset card that
Hugging Face datasets reads, the same bytes whatever the worker count."""
import json
import tarfile

import polars as pl

from conftest import wukong
from wukong_data.build import BuildDir


def _adjacent_same_source(final) -> float:
    """Share of neighbouring samples in a shard that come from the same crawl shard."""
    same = pairs = 0
    for path in sorted(final.glob("*.parquet")):
        shards = pl.read_parquet(path, columns=["key"])["key"].str.slice(0, 5).to_list()
        same += sum(a == b for a, b in zip(shards, shards[1:]))
        pairs += len(shards) - 1
    return same / pairs


def test_tars_cost_their_members_headers_and_padding_only(demo_build):
    for path in sorted((demo_build / "final").glob("*.tar")):
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            assert all(m.pax_headers == {} and float(m.mtime).is_integer() for m in members)
        minimum = sum(512 + -(-m.size // 512) * 512 for m in members)
        assert path.stat().st_size <= 1.1 * minimum + 10240  # + tar's end-of-archive blocks


def test_shards_are_shuffled_across_crawl_shards(demo_build, url_list, tmp_path):
    """The demo's final shards against the same rows exported in key order."""
    import shutil

    build = tmp_path / "b"
    shutil.copytree(demo_build, build)
    recipe = tmp_path / "in-order.toml"
    demo = (BuildDir(build).read_manifest()["recipe"])
    recipe.write_text('name = "demo"\nstages = ' + json.dumps(demo["stages"]) + "\n"
                      "[crawl]\nsamples_per_shard = 100\n[export]\nsamples_per_shard = 100\nshuffle = false\n")
    wukong("build", recipe, "--input", url_list, "--out", build, "--stage", "export", "--force", "--quiet")
    shuffled, in_order = _adjacent_same_source(demo_build / "final"), _adjacent_same_source(build / "final")
    print(f"\nneighbours from the same crawl shard: shuffled {shuffled:.2f}, key order {in_order:.2f}")
    assert in_order > 0.95 and shuffled < 0.5
    keys = lambda final: sorted(pl.read_parquet(sorted(final.glob("*.parquet")), columns=["key"])["key"])
    assert keys(build / "final") == keys(demo_build / "final")
    sizes = json.loads((demo_build / "final" / "sizes.json").read_text()).values()
    assert max(sizes) - min(sizes) <= 1


def test_dataset_card_names_every_reason_and_loads_in_hugging_face_datasets(demo_build, tmp_path, monkeypatch):
    card = (demo_build / "final" / "README.md").read_text()
    manifest = BuildDir(demo_build).read_manifest()
    for stage in manifest["stages"].values():
        for reason in stage.get("rejected", {}):
            assert f"`{reason}`" in card
    assert card.startswith("---\n") and "license: other" in card and "## Caveats" in card
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    dataset = load_dataset(str(demo_build / "final"), split="train")
    assert dataset.num_rows == manifest["stages"]["export"]["kept"]
    assert {"key", "caption", "jpg"} <= set(dataset.column_names)
