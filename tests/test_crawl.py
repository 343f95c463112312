"""The crawl stage against a real loopback HTTP server: successes and each planted failure."""
import hashlib
import io

from PIL import Image

from conftest import crawl_table, wukong

# What the crawl alone decides for each planted case; later stages catch the others.
CRAWL_REASON = {"http_404": "download_failed", "not_an_image": "decode_failed", "truncated_jpeg": "decode_failed",
                "opted_out": "opted_out", "invalid_url": "invalid_url"}
SAMPLES_PER_SHARD = 100  # the demo recipe's crawl.samples_per_shard


def row_index(key: str) -> int:
    """img2dataset's key layout: 5-digit shard id, then the row's index within its shard."""
    return int(key[:5]) * SAMPLES_PER_SHARD + int(key[5:])


def test_crawl_reasons_and_metadata(url_list, samples, tmp_path):
    out = tmp_path / "b"
    wukong("build", "demo", "--input", url_list, "--out", out, "--stage", "crawl", "--quiet")
    from wukong_data.build import BuildDir

    table = crawl_table(out).join(BuildDir(out).decisions("crawl").collect(), on="key")
    assert table.height == len(samples) and table["key"].n_unique() == len(samples)
    for row in table.iter_rows(named=True):
        sample = samples[row_index(row["key"])]
        assert row["caption"] == sample.caption
        assert row["reason"] == CRAWL_REASON.get(sample.kind), (sample.kind, row)
        if row["reason"] is None:
            assert row["sha256"] == hashlib.sha256(sample.body).hexdigest()
            original = Image.open(io.BytesIO(sample.body))
            assert (row["original_width"], row["original_height"]) == original.size
    by_reason = table.group_by("reason").len()
    assert dict(by_reason.iter_rows()) == {None: len(samples) - 6, "download_failed": 1, "decode_failed": 2,
                                           "opted_out": 1, "invalid_url": 2}


def test_crawl_keeps_image_bytes_only_for_successes(demo_build):
    import polars as pl

    crawl = pl.scan_parquet(sorted((demo_build / "crawl").glob("[0-9]*.parquet"))).select("status", "jpg").collect()
    assert crawl.filter(pl.col("status") == "success")["jpg"].null_count() == 0
    assert crawl.filter(pl.col("status") != "success")["jpg"].null_count() == crawl.filter(
        pl.col("status") != "success").height
