"""Wires a recipe's stages over a build directory; the CLI's `build` is a thin call to run_build."""
from __future__ import annotations

import importlib
import json
import shlex
import time
from dataclasses import dataclass

from .build import BuildDir, Counts
from .errors import ContractError, UserError
from .fingerprint import changes, stage_fingerprints
from .recipe import STAGE_ORDER, Recipe, stages_before
from .stages import StageContext
from .storage import is_local, read_json, remove, write_json_atomic
from .stages.crawl import CrawlStage
from .stages.export import ExportStage
from .stages.per_shard import ShardStage
from .ui import UI

# Stages whose dependencies are extras (filter, dedupe) are imported only when they run.
STAGES = {
    "crawl": CrawlStage,
    "dedupe": lambda: importlib.import_module("wukong_data.stages.dedupe").DedupeStage(),
    "filter": lambda: ShardStage("filter", "wukong_data.stages.filter:FilterStage"),
    "score": lambda: importlib.import_module("wukong_data.stages.score").ScoreStage(),
    "export": ExportStage,
}


@dataclass(frozen=True)
class Reusable:
    """Records of a stage that a redo of it may reuse (DIR/_reuse/<stage> meanwhile), where the rows
    they describe are unchanged and so is what decides them: the stage's decided_by less the
    recipe keys in `ignores` (None: its whole recipe section)."""
    folder: str  # under the stage's directory
    ignores: tuple[str, ...] | None
    per_row: bool  # reused row by row (stages/per_shard.py); else the folder is put back whole


REUSABLE = {
    # The signatures and hashes of the crawled rows: no dedupe setting changes them.
    "dedupe": Reusable("_map", None, per_row=False),
    # The filter's decisions and the score stage's pair scores: a row's depend only on the row.
    "filter": Reusable("", (), per_row=True),
    "score": Reusable("_map", ("min_score", "keep_top_fraction"), per_row=True),
}
DECIDED_BY = "_decided_by.json"


def _clear(build: BuildDir, stages: list[str]) -> None:
    for stage in stages:
        remove(build.final_dir if stage == "export" else build.stage_dir(stage))
        if stage == "crawl":
            remove(build.input_dir)


def _records_decided_by(stage: str, decided_by: dict) -> dict:
    """What decided a stage's reusable records, as the manifest holds it (lists for tuples,
    strings for paths)."""
    value = json.loads(json.dumps(decided_by, default=str))
    ignores = REUSABLE[stage].ignores
    if ignores is None:
        value.pop("config", None)
    for key in ignores or ():
        value.get("config", {}).pop(key, None)
    return value


def _keep_for_reuse(build: BuildDir, recipe: Recipe, stage: str, decided_by: dict) -> None:
    """Move a stage's reusable records to DIR/_reuse/<stage> before the stage is cleared. Local
    builds only (elsewhere a move is a copy)."""
    records = build.stage_dir(stage) / REUSABLE[stage].folder
    if not is_local(build.root) or not records.is_dir() or (stage == "score" and recipe.score.bootstrap_steps):
        return  # (a bootstrap model is trained on the rows earlier stages kept: its scores are redone)
    reuse = build.reuse_dir(stage)
    if reuse.exists() and _kept_by(reuse) != decided_by:
        remove(reuse)
    if not REUSABLE[stage].per_row:
        remove(reuse)
        reuse.parent.mkdir(parents=True, exist_ok=True)
        records.rename(reuse)
    else:
        reuse.mkdir(parents=True, exist_ok=True)
        # Records kept by an earlier interrupted edit stay, unless this run has newer ones for the shard.
        for file in records.glob("[0-9]*.parquet"):
            file.replace(reuse / file.name)
    write_json_atomic(reuse / DECIDED_BY, decided_by)


def _kept_by(reuse) -> dict | None:
    return json.loads((reuse / DECIDED_BY).read_text()) if (reuse / DECIDED_BY).exists() else None


def _drop_reuse(build: BuildDir, stage: str) -> None:
    reuse = build.reuse_dir(stage)
    if reuse.exists():
        remove(reuse)
        _remove_if_empty(reuse.parent)


def _remove_if_empty(folder) -> None:
    if not any(folder.iterdir()):
        remove(folder)


def _set_aside(build: BuildDir, recipe: Recipe, cleared: list[str], done: dict, fingerprints: dict,
               force: bool) -> None:
    """Before `cleared` stages are removed, set aside the records they may reuse: only while the
    crawled rows stay (a crawl run again may give a key other bytes) and while no filter with
    other settings rewrites the captions later stages read; never under --force (redo anyway)."""
    same_rows = "crawl" not in cleared and not force
    for stage in cleared:
        if stage not in REUSABLE or stage not in fingerprints:
            continue
        decided_by = _records_decided_by(stage, fingerprints[stage]["decided_by"])
        unchanged = _records_decided_by(stage, done.get(stage, {}).get("decided_by", {})) == decided_by
        if same_rows and unchanged:
            _keep_for_reuse(build, recipe, stage, decided_by)
        else:
            _drop_reuse(build, stage)
        same_rows = same_rows and (stage != "filter" or unchanged)


def _stale_reuse(build: BuildDir, fingerprints: dict) -> None:
    """Remove set-aside records that this recipe would not reuse (edited since they were set aside)."""
    for stage in REUSABLE:
        reuse = build.reuse_dir(stage)
        if reuse.exists() and (stage not in fingerprints or
                               _kept_by(reuse) != _records_decided_by(stage, fingerprints[stage]["decided_by"])):
            _drop_reuse(build, stage)


def _put_back(build: BuildDir, stage: str) -> None:
    """A stage's whole set-aside folder back in place, before the stage runs (it skips what exists)."""
    reuse = build.reuse_dir(stage)
    if stage in REUSABLE and not REUSABLE[stage].per_row and reuse.exists():
        records = build.stage_dir(stage) / REUSABLE[stage].folder
        if records.exists():  # the stage has begun its own
            _drop_reuse(build, stage)
            return
        (reuse / DECIDED_BY).unlink()
        records.parent.mkdir(parents=True, exist_ok=True)
        reuse.rename(records)
        _remove_if_empty(reuse.parent)


def _first_changed(recipe: Recipe, done: dict, fingerprints: dict, ui: UI) -> str | None:
    """The first of the recipe's stages whose output on disk another recipe, input or model
    decided (said on the console), or None."""
    for stage in recipe.stages:
        status = done.get(stage)
        if status is None:
            continue
        if status.get("fingerprint") != fingerprints[stage]["fingerprint"]:
            if stage == "crawl" and (recipe.input.from_crawl or "from_crawl" in status.get("decided_by", {}).get("config", {})):
                # Another crawl source in place of an adopted one (or the other way): never
                # discarded without --force; the crawl stage says so.
                return None
            what = changes(status.get("decided_by", {}), fingerprints[stage]["decided_by"]) or ["the stages before it"]
            later = recipe.stages[recipe.stages.index(stage):]
            ui.print(f"{stage}: {', '.join(what[:4])}{' ...' if len(what) > 4 else ''} changed since it ran; "
                    f"redoing {', '.join(later)}")
            return stage
    return None


def _with_stage(command: str | None, recipe: Recipe, out: str, stage: str) -> str:
    """The command that ran (its --input and all), running `stage` instead of the stages it
    named: a hint that runs as printed."""
    words = shlex.split(command) if command else ["wukong", "build", recipe.source, "--out", out]
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--stage":
            skip = True
        elif not word.startswith("--stage=") and word != "--force":
            kept.append(word)
    return shlex.join(kept + ["--stage", stage])


def account(build: BuildDir, stages: list[str], stage: str) -> dict:
    """A finished stage's counts for the manifest, from its per-shard counts files; checks that
    each shard's rows in are exactly the rows the stage before kept (principle 1)."""
    if stage == "export":
        manifest = build.read_manifest()
        rows_in = manifest["stages"][stages_before(stages, "export")[-1]]["kept"]
        sizes = read_json(build.final_dir / "sizes.json")
        return {"rows_in": rows_in, "kept": sum(sizes.values()), "rejected": {}, "shards": len(sizes)}
    previous = stages_before(stages, stage)[-1] if stage != "crawl" else None
    total = Counts()
    for shard in build.crawl_shards():
        counts = build.shard_counts(stage, shard)
        if previous and counts.rows_in != build.shard_counts(previous, shard).kept:
            raise ContractError(f"stage {stage}, shard {shard}: {counts.rows_in} rows in, but stage {previous} "
                                f"kept {build.shard_counts(previous, shard).kept}")
        total.add(counts)
    return total.to_dict()


def run_build(recipe: Recipe, out: str, *, only: list[str] | None = None, engine=None,
              limit: int | None = None, force: bool = False, ui: UI | None = None,
              command: str | None = None) -> BuildDir:
    """Run the recipe's stages (or `only` those) over the build at `out`. `command`, the command
    line that ran it, is what the manifest tells a failed or interrupted build to run again."""
    ui = ui or UI()
    build = BuildDir(out)
    build.prepare()
    for stage in only or []:
        if stage not in recipe.stages:
            raise UserError(f"--stage {stage}: not a stage of recipe {recipe.name} (its stages: {', '.join(recipe.stages)})")
    selected = [s for s in recipe.stages if not only or s in only]
    if "crawl" not in recipe.stages:
        raise UserError(f"{recipe.source}: 'stages' must include crawl")

    manifest = build.update_manifest(recipe=recipe.to_dict(), engine={"name": engine.name, "workers": engine.workers})
    done = manifest.get("stages", {})
    fingerprints = stage_fingerprints(recipe, limit, manifest.get("crawl_source"))
    # --force: the forced stages and every stage after them are redone, their outputs and
    # statuses gone; otherwise the first stage whose fingerprint changed and those after it.
    redo = selected[0] if force else _first_changed(recipe, done, fingerprints, ui)
    if redo:
        cleared = STAGE_ORDER[STAGE_ORDER.index(redo):]
        _set_aside(build, recipe, list(cleared), done, fingerprints, force)
        _clear(build, list(cleared))
        manifest = build.update_manifest(stages={s: v for s, v in done.items() if s not in cleared},
                                         **({"crawl_source": None, "keys": None} if "crawl" in cleared else {}))
    # Outputs of stages the recipe no longer has go too: the build holds what the recipe gives.
    dropped = [s for s in manifest.get("stages", {}) if s not in recipe.stages]
    if dropped:
        _clear(build, dropped)
        build.update_manifest(stages={s: v for s, v in manifest["stages"].items() if s not in dropped})
    fingerprints = stage_fingerprints(recipe, limit, build.read_manifest().get("crawl_source"))
    _stale_reuse(build, fingerprints)

    if "crawl" not in selected or not force:
        from .stages.adopt import check_unchanged

        check_unchanged(build)
    ctx = StageContext(build=build, recipe=recipe, engine=engine, ui=ui, limit=limit)
    for stage in selected:
        for needed in stages_before(recipe.stages, stage):
            if build.read_manifest().get("stages", {}).get(needed, {}).get("status") != "done":
                raise UserError(f"stage {stage} needs stage {needed} first: run `{_with_stage(command, recipe, out, needed)}`")
        status = build.read_manifest().get("stages", {}).get(stage, {})
        if status.get("status") == "done" and status.get("fingerprint") == fingerprints[stage]["fingerprint"]:
            continue  # done, by what the recipe says now: nothing to redo
        build.set_stage_status(stage, status="running", started=time.time(), error=None, resume=None,
                               **fingerprints[stage])
        try:
            _put_back(build, stage)
            STAGES[stage]().run(ctx)
        except BaseException as err:
            # The manifest says so, with what to run: `wukong stats` shows it.
            build.set_stage_status(stage, status="interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
                                   error=str(err).strip().splitlines()[0][:500] if str(err).strip() else type(err).__name__,
                                   resume=command or f"wukong build {recipe.source} --out {out}")
            raise
        if stage == "crawl":  # an adopted crawl's fingerprint names the download it adopted
            fingerprints = stage_fingerprints(recipe, limit, build.read_manifest().get("crawl_source"))
            build.set_stage_status(stage, **fingerprints[stage])
        build.set_stage_status(stage, status="done", finished=time.time(), **account(build, recipe.stages, stage))
        _drop_reuse(build, stage)
    return build
