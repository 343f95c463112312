"""The curator's loop: a re-run after a recipe edit gives, byte for byte, what a fresh build with
the edited recipe gives; an unchanged re-run rewrites nothing; an edited run killed half way and
run again still ends there."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import RULES_RECIPE, final_bytes, wukong
from wukong_data import recipe as recipes
from wukong_data.fingerprint import stage_fingerprints


def outputs(build) -> dict:
    """Every file of a build but its manifest and logs: name -> (size, mtime)."""
    return {str(p.relative_to(build)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(build.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and "logs" not in p.parts}


def edited(tmp_path, old: str, new: str):
    """The rules recipe with `old` replaced by `new`."""
    assert old in RULES_RECIPE
    path = tmp_path / "edited.toml"
    path.write_text(RULES_RECIPE.replace(old, new))
    return path


def test_an_unchanged_rerun_rewrites_nothing(rules_build, rules_recipe, url_list, tmp_path):
    build = tmp_path / "b"
    shutil.copytree(rules_build, build)
    before = outputs(build)
    wukong("build", rules_recipe, "--input", url_list, "--out", build, "--workers", 2, "--quiet")
    assert outputs(build) == before


EDITS = {
    "filter": ("[filter]", "[filter]\nmax_words = 6\nmin_side = 220"),
    "export": ("samples_per_shard = 64", "samples_per_shard = 50"),
    "dedupe": ("[export]", "[dedupe]\nmax_caption_count = 1\n[export]"),
}


@pytest.fixture(scope="module")
def fresh_builds(url_list, tmp_path_factory):
    """A fresh build of the rules recipe with each edit, made once: (recipe, build) by stage."""
    made = {}

    def fresh(section):
        if section not in made:
            folder = tmp_path_factory.mktemp(f"fresh-{section}")
            path = edited(folder, *EDITS[section])
            wukong("build", path, "--input", url_list, "--out", folder / "b", "--workers", 2, "--quiet")
            made[section] = (path, folder / "b")
        return made[section]
    return fresh


@pytest.mark.parametrize("section", EDITS)
def test_an_edited_rerun_gives_the_fresh_build(rules_build, url_list, tmp_path, fresh_builds, section):
    path, fresh = fresh_builds(section)
    build = tmp_path / "b"
    shutil.copytree(rules_build, build)
    crawl = {k: v for k, v in outputs(build).items() if k.startswith(("crawl", "input"))}
    proc = wukong("build", path, "--input", url_list, "--out", build, "--workers", 2, "--quiet")
    assert f"{section}: " in proc.stderr and "changed since it ran; redoing" in proc.stderr
    assert final_bytes(build) == final_bytes(fresh) != final_bytes(rules_build)
    # Only what the edit touched was redone: the crawl was not.
    assert {k: v for k, v in outputs(build).items() if k.startswith(("crawl", "input"))} == crawl
    # The report and the manifest describe the data on disk.
    funnel = [json.loads(wukong("stats", b, "--json").stdout)["funnel"] for b in (build, fresh)]
    assert funnel[0] == funnel[1]
    assert json.loads((build / "manifest.json").read_text())["recipe"][section] == \
        json.loads((fresh / "manifest.json").read_text())["recipe"][section]


def decision_bytes(build, stage: str) -> dict:
    return {p.name: p.read_bytes() for p in sorted((build / stage).glob("[0-9]*.*"))}


def test_a_row_wise_stage_reuses_its_records_when_only_an_earlier_stage_changed(rules_build, rules_recipe, url_list,
                                                                               tmp_path):
    """The filter decides each row from the row alone: after a dedupe edit it reuses its records
    of the rows that enter it again and computes only the others, and writes what a fresh build
    writes. Here the edit drops rows (all reused), then the edit undone lets them back in. Dedupe's
    signatures depend only on the crawled rows: they are not computed again."""
    build = tmp_path / "b"
    shutil.copytree(rules_build, build)
    signatures = {k: v for k, v in outputs(build).items() if k.startswith("dedupe/_map/")}
    assert len(signatures) > 40
    counted = re.compile(r"filter: ([\d,]+) rows reused from the last run,\s+([\d,]+) computed")
    proc = wukong("build", edited(tmp_path, *EDITS["dedupe"]), "--input", url_list, "--out", build, "--workers", 2,
                  "--quiet")
    reused, computed = (int(n.replace(",", "")) for n in counted.search(proc.stderr).groups())
    assert reused > 100 and computed == 0
    proc = wukong("build", rules_recipe, "--input", url_list, "--out", build, "--workers", 2, "--quiet")
    reused, computed = (int(n.replace(",", "")) for n in counted.search(proc.stderr).groups())
    assert reused > 100 and computed > 10
    for stage in ("dedupe", "filter"):
        assert decision_bytes(build, stage) == decision_bytes(rules_build, stage), stage
    assert final_bytes(build) == final_bytes(rules_build)
    assert {k: v for k, v in outputs(build).items() if k.startswith("dedupe/_map/")} == signatures
    assert not (build / "_reuse").exists()


def test_an_edited_crawl_is_crawled_again(rules_build, url_list, tmp_path):
    path = edited(tmp_path, "[crawl]", "[crawl]\nimage_size = 128")
    fresh = tmp_path / "fresh"
    wukong("build", path, "--input", url_list, "--out", fresh, "--workers", 2, "--quiet")
    build = tmp_path / "b"
    shutil.copytree(rules_build, build)
    proc = wukong("build", path, "--input", url_list, "--out", build, "--workers", 2, "--quiet")
    assert "crawl: crawl.image_size changed" in proc.stderr.replace("config.", "")
    assert final_bytes(build) == final_bytes(fresh)


def test_an_edited_run_killed_half_way_ends_where_a_fresh_build_does(rules_build, url_list, tmp_path, fresh_builds):
    path, fresh = fresh_builds("filter")
    build = tmp_path / "b"
    shutil.copytree(rules_build, build)
    command = [sys.executable, "-m", "wukong_data", "build", str(path), "--input", str(url_list), "--out", str(build),
               "--workers", "2", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wukong("build", path, "--input", url_list, "--out", build, "--workers", 2, "--quiet")
    assert final_bytes(build) == final_bytes(fresh)


def test_fingerprints_change_with_what_decides_a_stage(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('stages = ["crawl", "dedupe", "filter", "score", "export"]\n[filter]\nnsfw_image = false\n'
                    '[score]\nbootstrap_steps = 10\nkeep_top_fraction = 0.9\n')
    base = {s: f["fingerprint"] for s, f in stage_fingerprints(recipes.load(str(path))).items()}

    def after(edit: str) -> set:
        path.write_text(path.read_text() + edit)
        now = {s: f["fingerprint"] for s, f in stage_fingerprints(recipes.load(str(path))).items()}
        path.write_text(path.read_text().replace(edit, ""))
        return {s for s in base if base[s] != now[s]}

    assert after("[export]\nsamples_per_shard = 7\n") == {"export"}
    assert after("[crawl]\nprocesses = 3\nthreads = 5\n") == set()  # how the work is spread decides nothing
    text = path.read_text()
    path.write_text(text.replace("keep_top_fraction = 0.9", "keep_top_fraction = 0.7"))
    changed = {s for s, f in stage_fingerprints(recipes.load(str(path))).items() if base[s] != f["fingerprint"]}
    assert changed == {"score", "export"}
    words = tmp_path / "mine.txt"
    words.write_text("圆形\n")
    path.write_text(text.replace("nsfw_image = false", f'nsfw_image = false\nsensitive_words = ["{words}"]'))
    first = stage_fingerprints(recipes.load(str(path)))["filter"]["fingerprint"]
    words.write_text("圆形\n方形\n")  # the same recipe, an edited word list
    assert stage_fingerprints(recipes.load(str(path)))["filter"]["fingerprint"] != first


def test_a_parquet_only_export_names_its_parquet_files(rules_build, url_list, tmp_path):
    path = edited(tmp_path, "samples_per_shard = 64", 'samples_per_shard = 64\nformats = ["parquet"]')
    build = tmp_path / "b"
    shutil.copytree(rules_build, build)
    wukong("build", path, "--input", url_list, "--out", build, "--workers", 2, "--quiet")
    sizes = json.loads((build / "final" / "sizes.json").read_text())
    assert sizes and all((build / "final" / name).is_file() for name in sizes)
    assert not list((build / "final").glob("*.tar"))
    # The loaders read it as Parquet, and refuse it as WebDataset in one line (not mid-iteration).
    from wukong_data.errors import UserError
    from wukong_data.loaders import scan_parquet, webdataset_pipeline

    assert scan_parquet(build).select("key").collect().height == sum(sizes.values())
    with pytest.raises(UserError, match="no WebDataset shards; run the export stage with formats including webdataset"):
        webdataset_pipeline(build)


def test_force_stops_when_it_cannot_remove_what_it_redoes(rules_build, rules_recipe, url_list, tmp_path, monkeypatch):
    import shutil as shutil_module

    from wukong_data.engines.local import LocalEngine
    from wukong_data.errors import UserError
    from wukong_data.pipeline import run_build
    from wukong_data.ui import UI

    build = tmp_path / "b"
    shutil.copytree(rules_build, build)

    def refuse(p, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(shutil_module, "rmtree", refuse)
    with LocalEngine(1) as engine, pytest.raises(UserError, match="could not remove it"):
        run_build(recipes.load(str(rules_recipe)), str(build), only=["export"], engine=engine,
                  force=True, ui=UI(quiet=True))


def test_an_edited_score_fraction_gives_the_fresh_build(demo_build, demo_recipe, url_list, tmp_path):
    """The score stage's edit (keep_top_fraction 0.9 -> 0.8) redoes score and export only, scores no
    pair again (the threshold decides only the cut), and ends where a fresh build with the edited
    recipe does, byte for byte."""
    text = demo_recipe.read_text(encoding="utf-8")
    assert "keep_top_fraction = 0.9" in text
    path = tmp_path / "edited.toml"
    path.write_text(text.replace("keep_top_fraction = 0.9", "keep_top_fraction = 0.8"), encoding="utf-8")
    build = tmp_path / "b"
    shutil.copytree(demo_build, build)
    before = {k: v for k, v in outputs(build).items() if k.startswith(("crawl", "dedupe", "filter"))}
    proc = wukong("build", path, "--input", url_list, "--out", build, "--quiet")
    assert "score: " in proc.stderr and "changed since it ran; redoing" in proc.stderr
    reused, computed = re.search(r"score: ([\d,]+) rows reused from the last run,\s+([\d,]+) computed",
                                 proc.stderr).groups()
    assert int(reused.replace(",", "")) > 250 and computed == "0"
    assert {k: v for k, v in outputs(build).items() if k.startswith(("crawl", "dedupe", "filter"))} == before
    fresh = tmp_path / "fresh"
    wukong("build", path, "--input", url_list, "--out", fresh, "--quiet")
    assert final_bytes(build) == final_bytes(fresh) != final_bytes(demo_build)
    assert decision_bytes(build, "score") == decision_bytes(fresh, "score")
    kept = [json.loads(wukong("stats", b, "--json").stdout)["funnel"] for b in (build, fresh)]
    assert kept[0] == kept[1]


@pytest.mark.parametrize("cleared, changed, force, set_aside", [
    (["dedupe", "filter", "score", "export"], [], False, {"dedupe", "filter", "score"}),
    (["dedupe", "filter", "score", "export"], ["dedupe"], False, {"dedupe", "filter", "score"}),
    # Other filter settings rewrite the captions the score stage reads: neither is reused.
    (["filter", "score", "export"], ["filter"], False, set()),
    (["score", "export"], ["score"], False, set()),
    # A crawl run again may give a key other bytes.
    (["crawl", "dedupe", "filter", "score", "export"], [], False, set()),
    (["dedupe", "filter", "score", "export"], [], True, set()),
])
def test_what_a_redo_sets_aside(tmp_path, cleared, changed, force, set_aside):
    """Records are set aside for reuse only where the rows they describe and what decides them
    are unchanged; a dedupe setting never changes its signatures."""
    from wukong_data.build import BuildDir
    from wukong_data.pipeline import _set_aside

    build = BuildDir(tmp_path)
    for folder in ("dedupe/_map", "filter", "score/_map"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "00000.parquet").write_bytes(b"records")
    recipe = recipes.load("demo")
    recipe.score.bootstrap_steps = 0
    done = {s: {"decided_by": {"config": {"k": 1}, "reads": {"v": 1}}} for s in ("dedupe", "filter", "score")}
    now = {s: {"decided_by": {"config": {"k": 2 if s in changed else 1}, "reads": {"v": 1}}} for s in done}
    _set_aside(build, recipe, cleared, done, now, force)
    assert {s for s in done if (tmp_path / "_reuse" / s).exists()} == set_aside
