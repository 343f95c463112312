"""The `wukong` command line. Each command only parses options and calls one function."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__
from .errors import Incomplete, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Build Wukong-style Chinese image-text pre-training sets.")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"wukong-data {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="print the version and exit")):
    """Build Wukong-style Chinese image-text pre-training sets."""


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(fn, *args, **kwargs):
    """User mistakes and unfinished work become one line; anything else is a bug and keeps its
    traceback (typer's pretty exceptions are off, so Python prints it)."""
    try:
        return fn(*args, **kwargs)
    except UserError as err:
        _fail(str(err), 2)
    except Incomplete as err:
        _fail(str(err), 1)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)


@app.command()
def build(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="a recipe TOML path, or a bundled recipe name (demo, wukong-100m)"),
    input: Optional[str] = typer.Option(None, "--input", metavar="PATH", help="URL list(s) to crawl: a file, a folder or a glob (CSV, TSV, JSONL, Parquet); in place of the recipe's [input].path"),
    from_crawl: Optional[str] = typer.Option(None, "--from-crawl", metavar="PATH", help="adopt an img2dataset download (folder or "
                                             "glob; parquet or webdataset output) as the crawl instead of crawling"),
    # Text, not Path: a build directory may be a URL (s3://...), which a Path would mangle.
    out: Optional[str] = typer.Option(None, "--out", metavar="DIR", help="build directory, a path or an fsspec URL "
                                      "[default: build/RECIPE-NAME]"),
    stage: Optional[List[str]] = typer.Option(None, "--stage", metavar="STAGE", help="run only this stage (repeatable)"),
    engine: str = typer.Option("local", "--engine", metavar="NAME", help="local (process pool) or ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="ADDRESS", help="a Ray cluster (ray://host:10001 or "
                                              "host:6379) [default: start a local Ray]"),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N", min=1, help="worker processes [default: the recipe's crawl.processes]"),
    limit: Optional[int] = typer.Option(None, "--limit", metavar="N", min=1, help="read only the first N input rows"),
    force: bool = typer.Option(False, "--force", help="discard the outputs of the stages run and redo them"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
):
    """Run a recipe's stages: crawl -> dedupe -> filter -> score -> export."""
    from . import recipe as recipes
    from .engines import make_engine
    from .pipeline import run_build
    from .stats import collect, render
    from .ui import UI

    def go():
        r = recipes.load(recipe)
        if input is not None and from_crawl is not None:
            raise UserError("--input and --from-crawl: give one (URL lists to crawl, or a crawl to adopt)")
        if input is not None:
            r.input.path, r.input.from_crawl = input, None
        if from_crawl is not None:
            r.input.from_crawl = from_crawl
        if ray_address and engine != "ray":
            raise UserError("--ray-address needs --engine ray")
        ui = UI(quiet)
        with make_engine(engine, workers or r.crawl.processes, ray_address) as runner:
            built = run_build(r, out or str(Path("build") / r.name), only=stage or None, engine=runner, limit=limit,
                              force=force, ui=ui, command=shlex.join(["wukong", *sys.argv[1:]]))
        render(collect(built.root, summaries=False), ui.console)

    _run(go)


@app.command()
def stats(
    build_dir: str = typer.Argument(..., help="a build directory (a path or an fsspec URL)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON (schema: README, wukong stats)"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write the report as one self-contained HTML file"),
    compare: Optional[str] = typer.Option(None, "--compare", help="another build of the same input: funnel deltas "
                                                                  "and the rows kept by one and not the other"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes reading the build (each holds ~300 MB)"),
    paths: bool = typer.Option(False, "--paths", help="keep this machine's paths in the report (by default only "
                                                      "file and folder names: reports are made to be shared)"),
):
    """A build's report: the funnel per stage and reason, languages, distributions of every numeric
    column with the recipe's thresholds, duplicate groups, top words, samples per reason."""
    from .stats import make_report, print_report
    from .ui import UI

    report = _run(make_report, build_dir, html=html, compare=compare, workers=workers, paths=paths)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_report(report, UI().console)
    if html is not None:
        typer.echo(f"report: {html}", err=True)


@app.command("train-reference")
def train_reference(
    data: str = typer.Option(..., "--data", help="a build directory, its final/ folder, or tar shards "
                                                  "('shards/{00000..00099}.tar' or a glob)"),
    out: Path = typer.Option(Path("runs/filip"), "--out", help="run folder: checkpoints, metrics.jsonl, model"),
    model: str = typer.Option("tiny", "--model", help="tiny | vit-b-32 | vit-l-14 (towers trained from scratch) | "
                                                       "lit-nudenet (a frozen pretrained detector's features: "
                                                       "for real photos on a CPU)"),
    loss: Optional[str] = typer.Option(None, "--loss", help="filip (token-wise late interaction) | clip (the same "
                                                             "towers, pooled embeddings) [default: filip; "
                                                             "lit-nudenet: clip]"),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="held-out shards for retrieval R@K (as --data)"),
    steps: int = typer.Option(1000, "--steps", min=1),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=2,
                                             help="per process [default: 64; lit-nudenet: 256]"),
    lr: Optional[float] = typer.Option(None, "--lr", help="[default: 5e-4; lit-nudenet: 2e-3]"),
    warmup: int = typer.Option(100, "--warmup", min=0),
    weight_decay: float = typer.Option(0.2, "--weight-decay"),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing"),
    chunk: int = typer.Option(16, "--chunk", help="queries per block of the token-wise similarity"),
    top_token_fraction: float = typer.Option(0.25, "--top-token-fraction", help="tokens each process sends (DDP)"),
    lock_image_tower: bool = typer.Option(False, "--lock-image-tower", help="LiT: freeze the image tower"),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help="BERT vocab.txt [default: trained on the captions]"),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    eval_every: int = typer.Option(0, "--eval-every", min=0),
    log_every: int = typer.Option(10, "--log-every", min=1, help="steps between lines of metrics.jsonl"),
    workers: int = typer.Option(2, "--workers", min=0, help="data loader processes"),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's latest checkpoint"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
):
    """Train the reference FILIP model (or CLIP, --loss clip) on a build's shards (multi-GPU: torchrun --nproc-per-node N -m wukong_data train-reference ...)."""
    from .filip.config import TrainConfig, check
    from .ui import UI

    cfg = TrainConfig(data=data, out=str(out), model=model, loss=loss, eval_data=eval_data,
                      steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, weight_decay=weight_decay,
                      label_smoothing=label_smoothing, chunk=chunk, top_token_fraction=top_token_fraction,
                      lock_image_tower=lock_image_tower, vocab=str(vocab) if vocab else None,
                      checkpoint_every=checkpoint_every, eval_every=eval_every, log_every=log_every, workers=workers, seed=seed,
                      resume=resume)
    _run(check, cfg)  # a mistake is answered before torch loads

    from .filip.train import train

    run = _run(train, cfg, UI(quiet))
    typer.echo(f"model: {run}", err=True)


@app.command()
def align(
    build_dir: Path = typer.Argument(..., help="a build directory with exported Parquet shards"),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="a `wukong train-reference` run folder"),
    keys: str = typer.Option(..., "--keys", help="comma-separated keys"),
    out: Path = typer.Option(Path("alignment"), "--out", help="folder for KEY.png and KEY.json"),
    top: int = typer.Option(3, "--top", min=1, help="best patches shown per token"),
    font: Optional[Path] = typer.Option(None, "--font", help="a CJK TrueType font for the token labels"),
):
    """Word-patch alignment pictures: for each caption token, the image patches it matches best."""
    from .align import align as run_align

    written = _run(run_align, build_dir, checkpoint, [k.strip() for k in keys.split(",") if k.strip()], out, top,
                   str(font) if font else None)
    typer.echo(f"{len(written)} pictures written to {out}", err=True)


@app.command()
def queries(
    corpus: List[Path] = typer.Argument(..., help="UTF-8 text files (optionally .gz), one document per line"),
    out: Path = typer.Option(..., "--out", help="the query list: one query per line"),
    min_count: int = typer.Option(5, "--min-count", min=1, help="drop queries seen fewer times"),
    top_k: int = typer.Option(10000, "--top-k", min=1, help="keep the K most frequent"),
    stop_words: Optional[List[str]] = typer.Option(None, "--stop-words",
                                                   help="stop-word lists (paths or bundled names) [default: stop_words.txt]"),
    with_counts: bool = typer.Option(False, "--with-counts", help="write 'query<TAB>count'"),
):
    """A search-query list of high-frequency Chinese words and phrases from a text corpus."""
    from .queries import build_queries, write_queries
    from .storage import create_folder

    _run(create_folder, out.parent)  # before the corpus is counted: a bad --out is answered at once
    found = _run(build_queries, corpus, min_count, top_k, stop_words)
    _run(write_queries, found, out, with_counts)
    typer.echo(f"{len(found)} queries written to {out}", err=True)


@app.command()
def demo(
    out: Path = typer.Option(Path("wukong-demo"), "--out", help="where the demo's build goes"),
    workers: int = typer.Option(2, "--workers", min=1),
    force: bool = typer.Option(False, "--force", help="start the demo's build again instead of resuming it"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
):
    """Offline demo: draws a few hundred captioned images with planted bad cases, serves them on
    127.0.0.1, builds them with the bundled `demo` recipe and prints the funnel."""
    from .demo import run_demo
    from .ui import UI

    _run(run_demo, out, workers=workers, ui=UI(quiet), force=force)




