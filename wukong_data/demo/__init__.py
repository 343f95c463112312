"""`wukong demo`: an offline end-to-end build over drawn images served from 127.0.0.1."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..build import BuildDir
from ..engines import make_engine
from ..recipe import load
from ..stats import collect, render
from ..ui import UI
from .server import serve
from .synth import good_samples, planted_samples

N_GOOD = 300


def demo_samples():
    good = good_samples(N_GOOD)
    return good + planted_samples(good)


def write_url_list(samples, base_url: str, path: Path) -> None:
    """The URL list (url,caption), and beside it cases.json: each row's planted kind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "caption"])
        for s in samples:
            writer.writerow([s.url if s.url is not None else base_url + s.url_path, s.caption])
    (path.parent / "cases.json").write_text(json.dumps([s.kind for s in samples]), encoding="utf-8")


def routes_of(samples) -> dict:
    return {s.url_path: (s.body, s.headers) for s in samples if s.body is not None and s.url is None}


def run_demo(out: Path, workers: int = 2, ui: UI | None = None) -> BuildDir:
    from ..pipeline import run_build

    ui = ui or UI()
    samples = demo_samples()
    build = BuildDir(out)
    build.prepare()
    build.update_manifest(demo=True)
    urls = build.root / "demo" / "urls.csv"
    with serve(routes_of(samples)) as base_url:
        write_url_list(samples, base_url, urls)
        ui.print(f"demo: {len(samples)} URLs ({N_GOOD} good, {len(samples) - N_GOOD} planted bad cases) "
                 f"served at {base_url}")
        recipe = load("demo")
        recipe.input.path = str(urls)
        run_build(recipe, str(out), engine=make_engine("local", workers), force=True, ui=ui)
    render(collect(str(out), summaries=False), ui.console)
    ui.print(f"shards: {build.final_dir} (WebDataset .tar + .parquet, sizes.json)\n"
             f"open them: wukong_data.loaders.webdataset_pipeline('{build.root}') or "
             f"wukong_data.loaders.scan_parquet('{build.root}')")
    return build
