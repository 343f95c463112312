"""A whole build: every input row ends in final/ or with exactly one reason code."""
import json
import tarfile

import polars as pl

from conftest import final_keys, input_rows, wukong
from wukong_data.build import BuildDir
from wukong_data.demo import write_url_list
from wukong_data.outputs import STAGES


def test_every_input_row_is_accounted_for(demo_build, samples):
    build = BuildDir(demo_build)
    manifest = build.read_manifest()
    assert input_rows(demo_build) == len(samples)
    crawled = build.decisions("crawl").collect()
    assert crawled.height == len(samples) and crawled["key"].n_unique() == len(samples)

    stages = [s for s in manifest["recipe"]["stages"] if s != "export"]
    for stage in stages:
        assert set(build.decisions(stage).collect()["reason"].drop_nulls()) <= set(STAGES[stage].reasons), stage
    reasons = pl.concat([build.decisions(s).collect() for s in stages]).filter(pl.col("reason").is_not_null())
    assert reasons["key"].n_unique() == reasons.height, "a row was rejected twice"
    final = set(final_keys(demo_build))
    rejected = set(reasons["key"])
    assert not final & rejected
    assert final | rejected == set(crawled["key"])



def test_each_stage_takes_in_exactly_the_rows_the_stage_before_kept(demo_build):
    """Per shard and in the manifest: a stage's rows in are the previous stage's kept rows."""
    build = BuildDir(demo_build)
    manifest = build.read_manifest()
    stages = manifest["recipe"]["stages"]
    decisions = {s: build.decisions(s).collect() for s in stages if s != "export"}
    for before, stage in zip(stages, stages[1:]):
        if stage == "export":
            continue
        kept_before = decisions[before].filter(pl.col("reason").is_null())
        entered = decisions[stage]
        assert sorted(entered["key"]) == sorted(kept_before["key"]), stage
        for shard in build.crawl_shards():
            assert (entered["key"].str.starts_with(shard).sum()
                    == kept_before["key"].str.starts_with(shard).sum()), (stage, shard)
        assert manifest["stages"][stage]["rows_in"] == manifest["stages"][before]["kept"] == kept_before.height
    assert manifest["stages"]["export"]["rows_in"] == manifest["stages"][stages[-2]]["kept"]
    assert manifest["stages"]["export"]["kept"] == len(final_keys(demo_build))


def test_final_tar_parquet_and_sizes_agree(demo_build):
    final = demo_build / "final"
    sizes = json.loads((final / "sizes.json").read_text())
    assert sum(sizes.values()) == len(final_keys(demo_build))
    for name, count in sizes.items():
        with tarfile.open(final / name) as tar:
            names = tar.getnames()
        keys = list(dict.fromkeys(n.split(".")[0] for n in names))  # in the tar's order
        assert len(keys) == count and len(names) == 3 * count
        assert {n.split(".", 1)[1] for n in names} == {"jpg", "txt", "json"}
        parquet = pl.read_parquet(final / name.replace(".tar", ".parquet"))
        assert parquet["key"].to_list() == keys  # the same rows in the same order in both formats
        assert {"key", "url", "caption", "jpg", "width", "height"} <= set(parquet.columns)
    assert not list(final.glob(".*tmp*")), "temporary files left in final/"


def test_same_final_shards_with_one_worker(demo_build, demo_recipe, url_list, tmp_path):
    out = tmp_path / "one"
    wukong("build", demo_recipe, "--input", url_list, "--out", out, "--workers", "1", "--quiet")
    for path in sorted((demo_build / "final").glob("*.parquet")):
        assert pl.read_parquet(out / "final" / path.name)["key"].to_list() == pl.read_parquet(path)["key"].to_list()
    assert (out / "final" / "sizes.json").read_text() == (demo_build / "final" / "sizes.json").read_text()


def test_stage_prerequisite_and_force(server, samples, tmp_path):
    url_list = tmp_path / "urls.csv"  # a quarter of the demo: what is tested is the order of stages
    write_url_list(samples[:100], server, url_list)
    recipe = tmp_path / "r.toml"
    recipe.write_text('stages = ["crawl", "dedupe", "filter", "export"]\n[crawl]\nsamples_per_shard = 50\n'
                      'allow_addresses = ["127.0.0.1"]\n[filter]\nnsfw_image = false\n')
    out = tmp_path / "b"
    proc = wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "export", check=False)
    assert proc.returncode == 2
    assert f"stage export needs stage crawl first: run `wukong build {recipe} --input {url_list} --out {out} --stage crawl`" in proc.stderr
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "crawl", "--quiet")
    proc = wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "export", check=False)
    assert proc.returncode == 2 and "stage export needs stage dedupe first" in proc.stderr
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "dedupe", "--stage", "filter", "--quiet")
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "export", "--quiet")
    first = final_keys(out)
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "export", "--force", "--quiet")
    assert final_keys(out) == first
    assert (out / "crawl").exists() and (out / "filter").exists()  # --force --stage export redoes export only
    # --force on an earlier stage discards the later ones too, so they cannot be skipped over.
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "dedupe", "--force", "--quiet")
    assert not (out / "filter").exists() and not (out / "final").exists()
    proc = wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "export", check=False)
    assert proc.returncode == 2 and "stage export needs stage filter first" in proc.stderr


def test_refuses_a_foreign_output_directory(url_list, tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    proc = wukong("build", "demo", "--input", url_list, "--out", tmp_path, check=False)
    assert proc.returncode == 2 and "is not a build directory" in proc.stderr


def test_demo_build_decides_as_recorded(demo_build):
    """The demo's decisions, stage by stage, and its final keys, as recorded in
    tests/assets/demo_decisions.json; a change that moves them must say why and re-record."""
    from conftest import ASSETS

    expected = json.loads((ASSETS / "demo_decisions.json").read_text())
    build = BuildDir(demo_build)
    for stage, rejected in expected["rejected"].items():
        found = build.decisions(stage).filter(pl.col("reason").is_not_null()).collect()
        assert dict(found.iter_rows()) == rejected, stage
    assert sorted(final_keys(demo_build)) == expected["final"]
