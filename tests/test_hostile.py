"""A full build over a URL list aimed at a hostile server: every row ends with its reason, in
bounded time and memory, and no connection ever reaches a blocked address."""
import json
import subprocess
import sys
import time

import polars as pl
import pytest

from conftest import final_keys, wukong
from hostile import HOSTILE_CASES, RecordingServer, hostile_server, jpeg_claiming, png_bomb
from wukong_data.build import BuildDir
from wukong_data.demo.synth import good_samples

TIMEOUT, DEADLINE = 2, 3  # [crawl].timeout and max_image_seconds of the recipe below
RECIPE = f"""
stages = ["crawl", "dedupe", "filter", "export"]
[crawl]
processes = 1
threads = 48
samples_per_shard = 100
timeout = {TIMEOUT}
max_image_seconds = {DEADLINE}
max_image_bytes = 2_000_000
allow_addresses = ["127.0.0.1"]
[filter]
person_names = "keep"
nsfw_image = false
[export]
samples_per_shard = 100
"""


def _measured(*command) -> tuple[float, int]:
    """Run `python command...`; its wall time and the peak RSS (MiB) of it and every process it started."""
    probe = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", probe, sys.executable, *map(str, command)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return time.monotonic() - start, int(proc.stdout.split()[-1]) // 1024


@pytest.fixture(scope="module")
def recording():
    server = RecordingServer("127.0.0.2")
    yield server
    server.close()


@pytest.fixture(scope="module")
def hostile_build(recording, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    *good, slow = good_samples(13, seed=7)
    images = {s.url_path: s.body for s in good} | {"/slow.jpg": slow.body}  # slow.jpg: the slow route's image
    with hostile_server(images, recording.base) as base:
        rows = [(base + s.url_path, s.caption, None) for s in good]
        rows += [(base + path, "白色背景的中间有一个红色的圆形", reason) for path, reason in HOSTILE_CASES.items()]
        rows += [
            (recording.base + "/direct", "直接访问被禁止的地址", "blocked_address"),
            (f"http://2130706434:{recording.port}/decimal", "十进制写法的地址", "blocked_address"),  # 127.0.0.2
            (f"http://[::1]:{recording.port}/v6", "IPv6 回环地址", "blocked_address"),
            ("http://127.0.0.1:1/refused.jpg", "没有服务的端口", "download_failed"),
            ("ftp://127.0.0.1/a.jpg", "不是网页地址", "invalid_url"),
        ]
        urls = root / "urls.csv"
        pl.DataFrame({"url": [r[0] for r in rows], "caption": [r[1] for r in rows]}).write_csv(urls)
        recipe = root / "hostile.toml"
        recipe.write_text(RECIPE)
        out = root / "build"
        crawl_seconds, crawl_peak_mib = _measured("-m", "wukong_data", "build", recipe, "--input", urls, "--out", out,
                                                  "--stage", "crawl", "--quiet")
        _measured("-m", "wukong_data", "build", recipe, "--input", urls, "--out", out, "--quiet")
    # What a crawl worker holds before any image: img2dataset imports webdataset, which imports torch.
    _, worker_imports_mib = _measured("-c", "import wukong_data.stages.crawl_download")
    return {"out": out, "rows": rows, "crawl_seconds": crawl_seconds,
            "crawl_peak_mib": crawl_peak_mib,
            "worker_imports_mib": worker_imports_mib, "good": len(good)}


def test_every_hostile_row_ends_with_its_reason(hostile_build):
    out, rows = hostile_build["out"], hostile_build["rows"]
    decisions = BuildDir(out).decisions("crawl").collect()
    crawl = pl.scan_parquet(sorted((out / "crawl").glob("[0-9]*.parquet"))).select("key", "url", "invalid_url",
                                                                                   "error_message").collect()
    table = crawl.join(decisions, on="key").sort("key")
    assert table.height == len(rows)
    for (url, _, expected), row in zip(rows, table.iter_rows(named=True)):
        assert row["url"] == url or row["invalid_url"] == url
        assert row["reason"] == expected, (url, row["error_message"])
    # The rows the crawl kept are the good images and the slow one: all of them reach final/.
    kept = table.filter(pl.col("reason").is_null())["key"].to_list()
    assert sorted(final_keys(out)) == kept and len(kept) == hostile_build["good"] + 1


def test_no_connection_reaches_a_blocked_address(hostile_build, recording):
    assert recording.connections == 0


def test_hostile_crawl_is_bounded_in_time_and_memory(hostile_build):
    # Every download ends by max_image_seconds (the slow routes would go on for LINGER = 90 s);
    # the rest is starting processes. The 30000x30000 decompression bomb, decoded, would take 900 MB.
    assert hostile_build["crawl_seconds"] < DEADLINE + 40
    assert hostile_build["crawl_peak_mib"] < hostile_build["worker_imports_mib"] + 450, hostile_build
    manifest = json.loads((hostile_build["out"] / "manifest.json").read_text())
    assert manifest["stages"]["crawl"]["rows_in"] == len(hostile_build["rows"])


def test_a_list_of_blocked_addresses_builds_to_an_empty_final(recording, tmp_path):
    """The bundled demo recipe allows 127.0.0.1 only: another loopback address, a private one, a
    metadata endpoint are refused, and a build where nothing survives the crawl ends cleanly."""
    urls = tmp_path / "urls.csv"
    urls.write_text(f"url,caption\n{recording.base}/a.jpg,另一个回环地址\nhttp://10.0.0.1/b.jpg,私有地址\n"
                    "http://169.254.169.254/latest/meta-data/,云元数据\n", encoding="utf-8")
    wukong("build", "demo", "--input", urls, "--out", tmp_path / "b", "--workers", "1", "--quiet")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["stages"]["crawl"]["rejected"] == {"blocked_address": 3}
    assert manifest["stages"]["export"] == {**manifest["stages"]["export"], "rows_in": 0, "kept": 0}
    assert recording.connections == 0
    (tmp_path / "empty.csv").write_text("url,caption\n")
    proc = wukong("build", "demo", "--input", tmp_path / "empty.csv", "--out", tmp_path / "e", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'empty.csv'}: the input holds no rows " \
                                                          "(only a header?)"


@pytest.mark.parametrize("name, bomb", [
    ("8200x8200 PNG: just over the limit, a valid image Pillow would decode", lambda: png_bomb(8200)),
    ("30000x30000 PNG: 900 MB decoded", lambda: png_bomb(30000)),
    ("JPEG whose header claims 20000x20000", lambda: jpeg_claiming(20000, 20000)),
])
def test_decompression_bombs_are_refused_before_any_decoder(name, bomb):
    """The crawl's resizer, the filter's decode check, dedupe's signatures and the scorer's decoder
    all refuse by the declared size (images.py), before decoding."""
    import io

    import torch

    from wukong_data.images import MAX_PIXELS, undecodable_reason
    from wukong_data.stages.crawl_download import BoundedResizer
    from wukong_data.stages.dedupe.signatures import image_signature
    from wukong_data.stages.filter.image import decodes
    from wukong_data.filip.decode import decode_batch

    data = bomb()
    assert "pixels" in undecodable_reason(data)
    resizer = BoundedResizer(image_size=256, resize_mode="keep_ratio", resize_only_if_bigger=True)
    assert resizer(io.BytesIO(data))[-1] == undecodable_reason(data)
    assert not decodes(data) and image_signature(data) is None
    assert decode_batch([data], torch.device("cpu")) == [None]
    assert undecodable_reason(png_bomb(8192)) is None and 8192 * 8192 == MAX_PIXELS  # the limit itself decodes
