"""Wires a recipe's stages over a build directory; the CLI's `build` is a thin call to run_build."""
from __future__ import annotations

import importlib
import json
import time

from .build import BuildDir, Counts
from .errors import ContractError, UserError
from .recipe import STAGE_ORDER, Recipe, stages_before
from .stages import StageContext
from .storage import remove
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


def _clear(build: BuildDir, stages: list[str]) -> None:
    for stage in stages:
        remove(build.final_dir if stage == "export" else build.stage_dir(stage))
        if stage == "crawl":
            remove(build.input_dir)


def account(build: BuildDir, stages: list[str], stage: str) -> dict:
    """A finished stage's counts for the manifest, from its per-shard counts files; checks that
    each shard's rows in are exactly the rows the stage before kept (principle 1)."""
    if stage == "export":
        manifest = build.read_manifest()
        rows_in = manifest["stages"][stages_before(stages, "export")[-1]]["kept"]
        sizes = json.loads((build.final_dir / "sizes.json").read_text())
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
              limit: int | None = None, force: bool = False, ui: UI | None = None) -> BuildDir:
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
    if force:
        # The forced stages and every stage after them are redone: their outputs and statuses go.
        cleared = STAGE_ORDER[STAGE_ORDER.index(selected[0]):]
        _clear(build, list(cleared))
        build.update_manifest(stages={s: v for s, v in manifest.get("stages", {}).items() if s not in cleared},
                              **({"crawl_source": None, "keys": None} if "crawl" in cleared else {}))

    if "crawl" not in selected or not force:
        from .stages.adopt import check_unchanged

        check_unchanged(build)
    ctx = StageContext(build=build, recipe=recipe, engine=engine, ui=ui, limit=limit)
    for stage in selected:
        for needed in stages_before(recipe.stages, stage):
            if build.read_manifest().get("stages", {}).get(needed, {}).get("status") != "done":
                raise UserError(
                    f"stage {stage} needs stage {needed} first: run `wukong build {recipe.name} "
                    f"--out {out} --stage {needed}`"
                )
        build.set_stage_status(stage, status="running", started=time.time())
        STAGES[stage]().run(ctx)
        build.set_stage_status(stage, status="done", finished=time.time(), **account(build, recipe.stages, stage))
    return build
