"""Adopting an img2dataset download as the crawl: the same kept keys and final bytes as a build
that crawled the same URL list itself, with either of img2dataset's output formats."""
import os
import time

import pytest

from conftest import final_bytes, wukong
from wukong_data.build import BuildDir
from wukong_data.ui import quiet_fds


def img2dataset(urls, out, output_format):
    """A user's own download, as the field's dataset instructions run it."""
    from img2dataset import download

    with quiet_fds(out.parent / f"{out.name}.log"):
        download(url_list=str(urls), input_format="csv", url_col="url", caption_col="caption",
                 output_folder=str(out), output_format=output_format, image_size=256, resize_mode="keep_ratio",
                 resize_only_if_bigger=True, encode_format="jpg", encode_quality=95, skip_reencode=True,
                 timeout=10, retries=0, processes_count=2, thread_count=16, number_sample_per_shard=25,
                 compute_hash="sha256", extract_exif=False, enable_wandb=False)
    return out


@pytest.fixture(scope="module")
def crawled(url_list, rules_recipe, rules_build, tmp_path_factory):
    """The demo URL list downloaded by img2dataset in both output formats, and the recipe and
    build (which crawled the list itself) they are compared with."""
    root = tmp_path_factory.mktemp("adopt")
    return rules_recipe, rules_build, {fmt: img2dataset(url_list, root / fmt, fmt) for fmt in ("parquet", "webdataset")}


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_adopted_download_builds_the_same_final_shards(crawled, fmt, tmp_path):
    recipe, reference, downloads = crawled
    out = tmp_path / "b"
    wukong("build", recipe, "--from-crawl", downloads[fmt], "--out", out, "--quiet")
    assert final_bytes(out) == final_bytes(reference)
    build = BuildDir(out)
    if fmt == "parquet":  # read in place, not copied
        assert not list((out / "crawl").glob("*.parquet"))
        assert all(downloads[fmt].resolve() in build.crawl_path(s).resolve().parents for s in build.crawl_shards())
    manifest = build.read_manifest()
    assert manifest["crawl_source"]["from_crawl"] == [str(downloads[fmt].resolve())]
    assert "crawl adopted from" in wukong("stats", out).stderr + wukong("stats", out).stdout


def test_two_downloads_adopted_at_once_keep_keys_unique(samples, server, tmp_path, crawled):
    from wukong_data.demo import write_url_list

    recipe = crawled[0]
    halves = []
    for i, part in enumerate((samples[:150], samples[150:])):
        urls = tmp_path / f"urls{i}.csv"
        write_url_list(part, server, urls)
        halves.append(img2dataset(urls, tmp_path / f"dl{i}", "parquet"))
    out = tmp_path / "both"
    wukong("build", recipe, "--from-crawl", tmp_path / "dl*", "--out", out, "--stage", "crawl", "--quiet")
    keys = BuildDir(out).decisions("crawl").collect()["key"]
    assert keys.len() == len(samples) and keys.n_unique() == len(samples)


def test_adoption_mistakes_are_one_line_errors(crawled, tmp_path):
    recipe, _, downloads = crawled

    def error(*args):
        proc = wukong("build", recipe, *args, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        return proc.stderr

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a crawl")
    assert "not img2dataset output" in error("--from-crawl", tmp_path / "notes", "--out", tmp_path / "x")
    import polars as pl

    stripped = tmp_path / "nosha"
    stripped.mkdir()
    for path in downloads["parquet"].glob("00000*"):
        target = stripped / path.name
        if path.suffix == ".parquet":
            pl.read_parquet(path).drop("sha256").write_parquet(target)
        else:
            target.write_bytes(path.read_bytes())
    assert "[dedupe].exact_image = false" in error("--from-crawl", stripped, "--out", tmp_path / "y")
    import shutil

    download = shutil.copytree(downloads["parquet"], tmp_path / "download")
    adopted = tmp_path / "adopted"
    wukong("build", recipe, "--from-crawl", download, "--out", adopted, "--stage", "crawl", "--quiet")
    assert "its crawl came from" in error("--from-crawl", downloads["webdataset"], "--out", adopted)
    assert "adopted from" in error("--input", crawled[1] / "input" / "00000.parquet", "--out", adopted)
    # A shard changed after it was adopted: the build stops rather than mixing two crawls.
    time.sleep(0.01)
    os.utime(download / "00000.parquet")
    assert "changed since it was adopted" in error("--from-crawl", download, "--out", adopted)
