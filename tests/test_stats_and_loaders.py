import json

from PIL import Image

from conftest import final_keys, wukong
from wukong_data.loaders import scan_parquet, webdataset_pipeline


def test_stats_json_funnel(demo_build, samples):
    report = json.loads(wukong("stats", demo_build, "--json").stdout)
    funnel = {f["stage"]: f for f in report["funnel"]}
    assert funnel["crawl"]["rows_in"] == len(samples)
    assert funnel["crawl"]["rejected"] == {"invalid_url": 2, "decode_failed": 2, "download_failed": 1, "opted_out": 1}
    assert funnel["export"]["kept"] == len(final_keys(demo_build)) == report["totals"]["final_rows"]
    columns = report["columns"]
    assert columns["image_width"]["all"]["median"] == 288
    assert columns["caption_chars"]["kept"]["count"] == report["totals"]["kept_rows"]
    proc = wukong("stats", demo_build)
    table = proc.stderr + proc.stdout
    for shown in ("download_failed", "caption_chars", "languages", "top words", "an example per reason"):
        assert shown in table


def test_stats_on_a_non_build_is_a_one_line_error(tmp_path):
    proc = wukong("stats", tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "not a build directory" in proc.stderr


def test_loaders_open_the_shards_in_one_call(demo_build):
    captions = dict(scan_parquet(demo_build).select("key", "caption").collect().iter_rows())
    pairs = list(webdataset_pipeline(demo_build))
    assert len(pairs) == len(captions) == len(final_keys(demo_build))
    image, caption = pairs[0]
    assert isinstance(image, Image.Image) and image.size[0] > 0
    assert caption in captions.values()


def test_importing_our_loaders_leaves_the_host_process_environment_alone():
    # A trainer that imports our loaders keeps its own wandb settings.
    import subprocess
    import sys

    code = "import os, wukong_data.loaders, wukong_data.filip; print(os.environ.get('WANDB_MODE'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""}, check=True)
    assert out.stdout.strip() == "None"
