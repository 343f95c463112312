"""`wukong demo`: an offline end-to-end build over drawn images served from 127.0.0.1."""
from __future__ import annotations

import contextlib
import csv
import json
from importlib import resources
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


def run_demo(out: Path, workers: int = 2, ui: UI | None = None, force: bool = False) -> BuildDir:
    """Build the demo at `out`: a build already there resumes (its images are served again on the
    port its URL list names), unless `force`."""
    from ..pipeline import run_build

    ui = ui or UI()
    samples = demo_samples()
    build = BuildDir(out)
    build.prepare()
    port = 0 if force or not (build.root / "manifest.json").exists() else build.read_manifest().get("demo", {}).get("port", 0)
    with contextlib.ExitStack() as stack:
        try:
            base_url = stack.enter_context(serve(routes_of(samples), port=port))
        except OSError:  # the port the earlier run used is taken: its URL list is of no use, start again
            base_url, force = stack.enter_context(serve(routes_of(samples))), True
        build.update_manifest(demo={"port": int(base_url.rsplit(":", 1)[1])})
        urls = build.root / "demo" / "urls.csv"
        write_url_list(samples, base_url, urls)
        ui.print(f"demo: {len(samples)} URLs ({N_GOOD} good, {len(samples) - N_GOOD} planted bad cases) "
                 f"served at {base_url}")
        recipe = load("demo")
        recipe.input.path = str(urls)
        # Drawings are scored by a model trained on drawings (tests/demo_scorer.py), not by one
        # trained on the spot: `wukong build demo --input YOUR_URLS` trains its own.
        recipe.score.checkpoint = str(resources.files(__package__) / "scorer")
        recipe.score.bootstrap_steps = 0
        with make_engine("local", workers) as engine:
            run_build(recipe, str(out), engine=engine, force=force, ui=ui, command=f"wukong demo --out {out}")
    render(collect(str(out), summaries=False), ui.console)
    ui.print(f"shards: {build.final_dir} (WebDataset .tar + .parquet, sizes.json)\n"
             f"open them: wukong_data.loaders.webdataset_pipeline('{build.root}') or "
             f"wukong_data.loaders.scan_parquet('{build.root}')")
    return build
