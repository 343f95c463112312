"""`wukong stats` as a curator's report, checked against the demo build's files and planted cases:
the funnel, languages, distributions, duplicate groups, top words, samples per reason, the HTML
page (self-contained, every reason with a sample, in a real browser) and `--compare`."""
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from browser import Chromium, executable
from conftest import final_keys, wukong
from wukong_data.build import BuildDir

ARTIFACTS = Path(os.environ.get("WUKONG_TEST_ARTIFACTS", Path(__file__).parents[1] / "build" / "test-artifacts"))


@pytest.fixture(scope="module")
def report(demo_build, tmp_path_factory):
    """The demo build's report: JSON from the CLI, and the HTML page written in the same run."""
    page = tmp_path_factory.mktemp("report") / "report.html"
    proc = wukong("stats", demo_build, "--json", "--html", page)
    return json.loads(proc.stdout), page


def decisions(build: Path, stage: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((build / stage).glob("[0-9]*.parquet")))


def fate_of(build: Path, stage: str, key: str) -> str | None:
    b = BuildDir(build)
    return b.scan_decisions(stage, b.layout.shard_of(key)).filter(pl.col("key") == key).collect()["reason"][0]


def test_funnel_per_stage_and_reason_with_shares_of_input(report, demo_build, samples):
    data, _ = report
    manifest = json.loads((demo_build / "manifest.json").read_text())
    for stage in data["funnel"]:
        counted = manifest["stages"][stage["stage"]]
        assert (stage["rows_in"], stage["kept"], stage["rejected"]) == \
            (counted["rows_in"], counted["kept"], counted["rejected"])
        assert stage["kept_of_input"] == round(stage["kept"] / len(samples), 6)
        assert stage["rejected_of_input"] == {r: round(n / len(samples), 6) for r, n in stage["rejected"].items()}
    funnel = {f["stage"]: f for f in data["funnel"]}
    assert funnel["filter"]["rejected"]["not_chinese"] == 2  # the planted English and Japanese captions
    assert data["totals"]["final_rows"] == len(final_keys(demo_build))


def test_languages_are_the_filters_lang_values(report, demo_build):
    data, _ = report
    identified = decisions(demo_build, "filter").filter(pl.col("lang").is_not_null())
    expected = dict(identified.group_by("lang").len().iter_rows())
    assert {lang["lang"]: lang["rows"] for lang in data["languages"]} == expected
    found = {lang["lang"]: lang for lang in data["languages"]}
    assert found["en"]["rejected"] == {"filter/not_chinese": 1} and found["ja"]["rejected"] == {"filter/not_chinese": 1}
    final = set(final_keys(demo_build))
    assert found["zh"]["kept"] == identified.filter((pl.col("lang") == "zh") & pl.col("key").is_in(final)).height


def test_distributions_match_the_files(report, demo_build):
    columns = report[0]["columns"]
    crawled = pl.read_parquet(sorted((demo_build / "crawl").glob("[0-9]*.parquet")), columns=[
        "status", "original_width", "original_height"]).filter(pl.col("status") == "success")
    width = columns["image_width"]["all"]
    assert width["count"] == crawled.height
    assert (width["min"], width["max"], width["median"]) == (crawled["original_width"].min(),
                                                             crawled["original_width"].max(), 288)
    assert width["mean"] == pytest.approx(crawled["original_width"].mean(), abs=1e-3)
    # The planted 48x40 image and 1200x200 banner are what the size rules rejected.
    assert columns["image_min_side"]["rejected_range"] == [40, 40]
    assert columns["aspect_ratio"]["rejected_range"] == [6, 6]
    assert columns["image_min_side"]["thresholds"] == {"min_side": 200}

    scored = decisions(demo_build, "score")
    score = columns["filip_score"]
    assert score["all"]["count"] == scored.height
    assert score["all"]["min"] == pytest.approx(scored["filip_score"].min(), abs=1e-4)
    rejected = scored.filter(pl.col("reason") == "low_filip_score")["filip_score"]
    # keep_top_fraction states no threshold: the observed cut is drawn where kept and rejected meet.
    cut = score["thresholds"]["observed_cut"]
    assert cut == pytest.approx(scored.filter(pl.col("reason").is_null())["filip_score"].min(), abs=1e-4)
    assert cut > rejected.max()
    assert sum(score["histogram"]["rejected_here"]) == rejected.len()
    for name, column in columns.items():
        hist = column["histogram"]
        assert sum(hist["kept"]) + sum(hist["rejected_here"]) + sum(hist["rejected_elsewhere"]) == column["all"]["count"]
        assert len(hist["edges"]) == len(hist["kept"]) + 1, name
    filtered = decisions(demo_build, "filter")
    assert columns["caption_words"]["all"]["count"] == filtered["n_words"].drop_nulls().len()
    assert columns["caption_chars"]["all"]["count"] == filtered.height


def test_duplicate_groups(report, demo_build):
    groups = report[0]["duplicate_groups"]
    members = decisions(demo_build, "dedupe")["dup_of"].drop_nulls().value_counts()
    assert groups["groups"] == members.height and groups["sampled_fraction"] == 1.0
    sizes = dict(zip(groups["histogram"]["sizes"], groups["histogram"]["groups"]))
    assert sizes == dict((members["count"] + 1).alias("size").value_counts().iter_rows())


def test_top_words_of_kept_captions(report, demo_build):
    words = report[0]["top_words"]
    captions = pl.read_parquet(sorted((demo_build / "final").glob("*.parquet")), columns=["caption"])["caption"]
    assert words["captions_read"] == words["kept_rows"] == captions.len()
    # The demo's templates use each of these words at most once per caption.
    for word, count in words["words"][:5]:
        assert count == captions.str.contains(word, literal=True).sum(), word
    assert {"背景", "正方形", "三角形"} <= {w for w, _ in words["words"]}


def test_samples_for_every_reason_are_rows_with_that_fate(report, demo_build):
    samples = report[0]["samples"]
    occurred = {(f["stage"], r) for f in report[0]["funnel"] for r in f.get("rejected", {})}
    assert {(g["stage"], g["reason"]) for g in samples["rejected"]} == occurred
    for group in samples["rejected"]:
        assert 1 <= len(group["rows"]) <= 4
        for row in group["rows"]:
            assert fate_of(demo_build, group["stage"], row["key"]) == group["reason"]
    final = set(final_keys(demo_build))
    assert len(samples["kept"]) == 24 and {r["key"] for r in samples["kept"]} <= final
    small = next(g for g in samples["rejected"] if g["reason"] == "image_too_small")
    assert small["rows"][0]["values"]["image_min_side"] == 40 and "image_min_side" in small["evidence"]


def test_batches_merge_to_the_same_report(report, demo_build):
    """One shard per batch over two worker processes gives the figures of one batch in one process."""
    from wukong_data.report.collect import scan

    build = BuildDir(demo_build)
    merged = scan(build, build.read_manifest(), workers=2, rows_per_batch=100)
    assert len(build.crawl_shards()) > 2
    assert merged == {k: report[0][k] for k in merged}


def test_report_of_a_build_in_progress(demo_build, tmp_path):
    """While later stages run, the report covers the finished ones: kept means kept so far."""
    partial = tmp_path / "partial"
    shutil.copytree(demo_build, partial, ignore=shutil.ignore_patterns("final", "filter", "score"))
    manifest = json.loads((partial / "manifest.json").read_text())
    manifest["stages"] = {"crawl": manifest["stages"]["crawl"], "dedupe": manifest["stages"]["dedupe"],
                          "filter": {"status": "running"}}
    (partial / "manifest.json").write_text(json.dumps(manifest))
    data = json.loads(wukong("stats", partial, "--json", "--html", tmp_path / "partial.html").stdout)
    assert [f["status"] for f in data["funnel"]] == ["done", "done", "running", "pending", "pending"]
    assert data["totals"]["kept_rows"] is None and data["totals"]["final_rows"] is None
    assert set(data["columns"]) == {"image_width", "image_height", "image_min_side", "aspect_ratio"}
    assert {g["stage"] for g in data["samples"]["rejected"]} == {"crawl", "dedupe"}
    kept = set(decisions(demo_build, "dedupe").filter(pl.col("reason").is_null())["key"])
    assert {r["key"] for r in data["samples"]["kept"]} <= kept and data["languages"] == []
    assert_self_contained((tmp_path / "partial.html").read_text(encoding="utf-8"))


class Page(HTMLParser):
    """Every URL-bearing attribute, inline style and element of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.urls, self.styles, self.tags, self.ids, self._in_style = [], [], [], {}, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "srcset", "action", "data", "poster") and v]
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        if "id" in attrs:
            self.ids[attrs["id"]] = len(self.tags)
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
            self._in_style = False


def assert_self_contained(text: str) -> Page:
    page = Page(text)
    remote = re.compile(r"^\s*(https?:)?//", re.I)
    assert not [u for u in page.urls if remote.match(u)]
    assert not [u for s in page.styles for u in re.findall(r"url\(([^)]*)\)", s) if remote.match(u.strip("'\""))]
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "Content-Security-Policy" in text
    return page


def test_html_is_self_contained_with_samples_for_every_reason(report):
    data, path = report
    text = path.read_text(encoding="utf-8")
    page = assert_self_contained(text)
    for group in data["samples"]["rejected"]:
        section = text.split(f'id="reason-{group["stage"]}-{group["reason"]}"', 1)
        assert len(section) == 2, group["reason"]
        assert section[1].split('id="reason-', 1)[0].count('class="card') == len(group["rows"])
    assert text.count('src="data:image/jpeg;base64,') >= len(data["samples"]["kept"])
    assert all(u.startswith(("data:image/jpeg;base64,", "#")) for u in page.urls)
    for threshold in ("min_side 200", "max_aspect_ratio 3", "observed_cut"):
        assert threshold in text


def test_html_escapes_captions():
    from wukong_data.report.html import card

    html = card({"key": "0001", "caption": '<script>alert("x")</script><img src=http://e.x>', "values": {}}, {}, "")
    assert "<script>" not in html and "<img src=http" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html


@pytest.mark.skipif(not executable() and not os.environ.get("WUKONG_REQUIRE_BROWSER"),
                    reason="no chromium (apt-get install chromium); .ci/run installs it and requires this test")
def test_report_in_a_real_browser(report, tmp_path):
    """Chromium (headless, over the DevTools protocol) loads the page as a phone and as a desktop:
    no console message or exception, no request but the file and its data: images, every image
    decodes, nothing wider than the phone's screen. Screenshots are kept in ARTIFACTS."""
    assert executable(), "WUKONG_REQUIRE_BROWSER is set but chromium is not installed"
    data, path = report
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = Chromium(tmp_path / "profile")
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        for name, width, height, mobile in (("phone", 390, 844, True), ("desktop", 1280, 900, False)):
            browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=2 if mobile else 1,
                         mobile=mobile)
            browser.events.clear()
            browser.call("Page.navigate", url=path.as_uri())
            browser.wait_for("Page.loadEventFired")
            found = browser.evaluate(
                "Promise.all(Array.from(document.images).map(i => i.decode().then(() => i.naturalWidth, () => 0)))"
                ".then(w => ({images: w.length, undecoded: w.filter(x => !x).length,"
                " scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,"
                " cards: document.querySelectorAll('.card').length}))")
            assert found["images"] >= len(data["samples"]["kept"]) and found["undecoded"] == 0, found
            assert found["scrollWidth"] <= found["innerWidth"], f"{name}: the page is wider than the screen"
            requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
            assert requests[0] == path.as_uri() and all(u.startswith("data:") for u in requests[1:])
            noise = [e for e in browser.events if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown")
                     or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning"))]
            assert not noise, noise
            browser.screenshot(ARTIFACTS / f"report-{name}.png", height=2600 if mobile else 3000)
            samples_top = browser.evaluate("document.getElementById('kept').getBoundingClientRect().top + window.scrollY")
            browser.screenshot(ARTIFACTS / f"report-{name}-samples.png", height=2600 if mobile else 3000, top=samples_top)
    finally:
        browser.close()
    assert (ARTIFACTS / "report-phone.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def compared(demo_build, tmp_path_factory):
    """The demo build (A) and a copy of it (B) whose filter was re-run with max_words = 8 and whose
    recipe has no score stage: B keeps short captions that A's score rejected, and drops long ones."""
    root = tmp_path_factory.mktemp("compare")
    other = root / "b"
    shutil.copytree(demo_build, other)
    recipe = (Path(__file__).parents[1] / "pipelines" / "demo.toml").read_text(encoding="utf-8")
    recipe = recipe.replace('stages = ["crawl", "dedupe", "filter", "score", "export"]',
                            'stages = ["crawl", "dedupe", "filter", "export"]').replace("max_words = 32", "max_words = 8")
    (root / "b.toml").write_text(recipe, encoding="utf-8")
    wukong("build", root / "b.toml", "--out", other, "--stage", "filter", "--stage", "export", "--force", "--quiet")
    page = root / "compare.html"
    proc = wukong("stats", demo_build, "--compare", other, "--json", "--html", page)
    return json.loads(proc.stdout), other, page


def test_compare_reports_the_rows_that_differ(compared, demo_build):
    data, other, page = compared
    words = decisions(demo_build, "filter").select("key", "n_words")
    kept_a, kept_b = set(final_keys(demo_build)), set(final_keys(other))
    assert kept_b == set(words.filter(pl.col("n_words") <= 8)["key"]) & set(
        decisions(demo_build, "filter").filter(pl.col("reason").is_null())["key"])
    assert data["kept"] == {"both": len(kept_a & kept_b), "only_a": len(kept_a - kept_b), "only_b": len(kept_b - kept_a)}
    assert data["kept"]["only_a"] > 0 and data["kept"]["only_b"] > 0
    changes = {(c["a"], c["b"]): c["rows"] for c in data["changes"]}
    assert changes[("kept", "filter/too_many_words")] == len(kept_a - kept_b)
    assert changes[("score/low_filip_score", "kept")] == len(kept_b - kept_a)
    assert {"key": "filter.max_words", "a": 32, "b": 8} in data["recipe_differences"]
    funnel = {f["stage"]: f for f in data["funnel"]}
    too_many = next(r for r in funnel["filter"]["rejected"] if r["reason"] == "too_many_words")
    assert too_many["delta"] == too_many["b"] == len(kept_a - kept_b) + changes.get(("score/low_filip_score",
                                                                                      "filter/too_many_words"), 0)
    for row in data["samples"]["only_a"]:
        assert row["key"] in kept_a - kept_b and row["fate_b"] == "filter/too_many_words"
        assert row["values_b"]["caption_words"] > 8
    for row in data["samples"]["only_b"]:
        assert row["key"] in kept_b - kept_a and row["fate_a"] == "score/low_filip_score" and "filip_score" in row["values_a"]
    text = page.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert text.count('class="card') == len(data["samples"]["only_a"]) + len(data["samples"]["only_b"])


def test_compare_with_another_input_is_a_one_line_error(demo_build, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(demo_build, other, ignore=shutil.ignore_patterns("final", "_map", "_exact", "_near"))
    shard = sorted((other / "crawl").glob("[0-9]*.parquet"))[0]
    rows = pl.read_parquet(shard)
    rows.with_columns(url=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("http://elsewhere.example/a.jpg"))
                      .otherwise(pl.col("url"))).write_parquet(shard)
    proc = wukong("stats", demo_build, "--compare", other, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"row {rows['key'][0]} has another URL" in proc.stderr


@pytest.mark.skipif(not executable() and not os.environ.get("WUKONG_REQUIRE_BROWSER"),
                    reason="no chromium (apt-get install chromium); .ci/run installs it and requires this test")
def test_the_report_draws_chinese_where_no_cjk_font_is_installed(tmp_path, monkeypatch):
    """Chromium given a fontconfig that knows DejaVu alone (no CJK font): two captions of the same
    length come out as the same row of boxes from a page without the embedded font, and as
    different glyphs from the report's page."""
    import io

    from PIL import Image

    from wukong_data.report import html

    assert executable(), "WUKONG_REQUIRE_BROWSER is set but chromium is not installed"
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    f'<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path}/fc-cache</cachedir></fontconfig>')
    browser = Chromium(tmp_path / "profile", env={"FONTCONFIG_FILE": str(conf)})
    shots = {}
    try:
        browser.call("Page.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=600, height=120, deviceScaleFactor=1, mobile=False)
        for embedded in (False, True):
            if not embedded:
                monkeypatch.setattr(html, "font_face", lambda text: "")
            else:
                monkeypatch.undo()
            for caption in ("猫在草地上睡觉", "山水之间一座桥"):
                page = tmp_path / f"{embedded}-{caption}.html"
                page.write_text(html.page("t", [f'<p style="font-size:40px;margin:0">{caption}</p>']), encoding="utf-8")
                browser.call("Page.navigate", url=page.as_uri())
                browser.wait_for("Page.loadEventFired")
                browser.evaluate("document.fonts.ready.then(() => 1)")
                shot = tmp_path / f"{embedded}-{caption}.png"
                browser.screenshot(shot, height=60)
                shots[embedded, caption] = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
                browser.events.clear()
    finally:
        browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for (embedded, caption), image in shots.items():
        image.save(ARTIFACTS / f"cjk-{'embedded' if embedded else 'system'}-{caption}.png")
    a, b = (shots[False, c].tobytes() for c in ("猫在草地上睡觉", "山水之间一座桥"))
    assert a == b  # no CJK font here: every character the same box
    a, b = (shots[True, c] for c in ("猫在草地上睡觉", "山水之间一座桥"))
    assert a.tobytes() != b.tobytes()
    assert sum(1 for p in a.getdata() if p < 128) > 500  # ink: real strokes, not a blank line
