"""The `wukong` command line. Each command only parses options and calls one function."""
from __future__ import annotations

import json

from pathlib import Path
from typing import List, Optional

import typer

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build Wukong-style Chinese image-text pre-training sets.")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except UserError as err:
        _fail(str(err), 2)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)
    except RuntimeError as err:
        _fail(str(err), 1)


@app.command()
def build(
    recipe: str = typer.Argument(..., help="a recipe TOML path, or a bundled recipe name (demo, wukong-100m)"),
    input: Optional[str] = typer.Option(None, "--input", help="URL list(s): file, folder or glob; replaces the recipe's"),
    out: Optional[Path] = typer.Option(None, "--out", help="build directory [default: build/RECIPE-NAME]"),
    stage: Optional[List[str]] = typer.Option(None, "--stage", help="run only this stage (repeatable)"),
    engine: str = typer.Option("local", "--engine", help="local (process pool) or ray"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="worker processes [default: the recipe's crawl.processes]"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="read only the first N input rows"),
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
        if input is not None:
            r.input.path = input
        ui = UI(quiet)
        built = run_build(r, str(out or Path("build") / r.name), only=stage or None,
                          engine=make_engine(engine, workers or r.crawl.processes), limit=limit, force=force, ui=ui)
        render(collect(built.root), ui.console)

    _run(go)


@app.command()
def stats(
    build_dir: Path = typer.Argument(..., help="a build directory"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
):
    """The funnel of a build: rows in, kept and rejected per reason, per stage; caption and image sizes."""
    from .stats import collect, render
    from .ui import UI

    report = _run(collect, str(build_dir))
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        render(report, UI().console)


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

    found = _run(build_queries, corpus, min_count, top_k, stop_words)
    write_queries(found, out, with_counts)
    typer.echo(f"{len(found)} queries written to {out}", err=True)


@app.command()
def demo(
    out: Path = typer.Option(Path("wukong-demo"), "--out", help="where the demo's build goes"),
    workers: int = typer.Option(2, "--workers", min=1),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
):
    """Offline demo: draws a few hundred captioned images with planted bad cases, serves them on
    127.0.0.1, builds them with the bundled `demo` recipe and prints the funnel."""
    from .demo import run_demo
    from .ui import UI

    _run(run_demo, out, workers=workers, ui=UI(quiet))




