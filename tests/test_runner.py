"""The runner every stage's steps go through (wukong_data/stages/runner.py), on the local engine's
real worker processes: it runs what is missing and nothing else, retries a task that ended without
its outputs, and removes a step's outputs when the settings they were cut by change."""
import contextlib
import json

import engine_work
from wukong_data.engines.local import LocalEngine
from wukong_data.stages import StageContext
from wukong_data.stages.runner import Runner
from wukong_data.ui import UI


class CountingUI(UI):
    """A quiet UI that remembers each progress bar's total and what it was advanced by."""

    def __init__(self):
        super().__init__(quiet=True)
        self.bars = []

    @contextlib.contextmanager
    def progress(self, description, total, unit="rows"):
        bar = {"description": description, "total": total, "unit": unit, "advanced": 0}
        self.bars.append(bar)
        yield lambda n=1, completed=None: bar.update(advanced=bar["advanced"] + n)


def outputs(task):
    folder, number, _ = task
    return [folder / f"{number}.out"]


def test_a_step_runs_only_the_tasks_whose_outputs_are_missing(tmp_path):
    ui = CountingUI()
    tasks = [(tmp_path, n, 0) for n in range(6)]
    for n in (0, 2, 3):  # done by an earlier, interrupted run
        (tmp_path / f"{n}.out").write_text(str(n))
    (tmp_path / "4.out.partial").write_text("a killed task's leftovers are not its output")
    with LocalEngine(2) as engine:
        runner = Runner(StageContext(build=None, recipe=None, engine=engine, ui=ui))
        results = runner.map(engine_work.write_output, tasks, outputs, description="step",
                             size=lambda task: 10 * task[1], unit="rows")
        assert results == [1, 1, 1]  # tasks 1, 4, 5, each tried once
        assert sorted(p.name for p in tmp_path.glob("*.tries")) == ["1.tries", "4.tries", "5.tries"]
        assert all((tmp_path / f"{n}.out").read_text() == str(n) for n in range(6))
        # The bar counts every task's size, the done ones at once.
        assert ui.bars == [{"description": "step", "total": 150, "unit": "rows", "advanced": 150}]
        # Run again: nothing left to do, nothing run.
        assert runner.map(engine_work.write_output, tasks, outputs) == []
    assert sorted(p.name for p in tmp_path.glob("*.tries")) == ["1.tries", "4.tries", "5.tries"]


def test_a_task_that_ends_without_its_outputs_is_retried_as_often_as_allowed(tmp_path):
    tasks = [(tmp_path / "a", 0, 2), (tmp_path / "a", 1, 0), (tmp_path / "b", 0, 5)]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    with LocalEngine(2) as engine:
        runner = Runner(StageContext(build=None, recipe=None, engine=engine, ui=CountingUI()))
        results = runner.map(engine_work.write_output, tasks, outputs, retries=2)
        # The results are each task's last try: a/0 wrote on its third, a/1 on its first, and
        # b/0, which fails five times, stopped after three.
        assert results == [3, 1, 3]
        assert runner.todo(tasks, outputs) == [tasks[2]]
        # The next run (the same command again) goes on with what is missing.
        assert runner.map(engine_work.write_output, tasks, outputs, retries=2) == [6]
        assert runner.todo(tasks, outputs) == []


def test_settled_outputs_go_when_their_settings_change(tmp_path):
    marker, outputs_dir = tmp_path / "step" / "_settings.json", tmp_path / "step" / "parts"
    Runner.settle(marker, {"partitions": 4, "stages": ("crawl", "filter")}, [outputs_dir])
    outputs_dir.mkdir()
    (outputs_dir / "00000.parquet").write_text("part of 4")
    (outputs_dir / ".00001.parquet.tmp-123").write_text("a killed task's temporary file")
    # The same settings again (a resumed run; tuples read back as lists): the work stays, the
    # temporary file goes.
    Runner.settle(marker, {"partitions": 4, "stages": ("crawl", "filter")}, [outputs_dir])
    assert [p.name for p in outputs_dir.iterdir()] == ["00000.parquet"]
    # Another partition count: the parts of the old one are not this step's.
    Runner.settle(marker, {"partitions": 8, "stages": ("crawl", "filter")}, [outputs_dir])
    assert not outputs_dir.exists()
    assert json.loads(marker.read_text()) == {"partitions": 8, "stages": ["crawl", "filter"]}


def test_a_driver_step_runs_once_its_marker_is_written(tmp_path):
    marker, calls = tmp_path / "losers.parquet", []

    def decide():
        calls.append(1)
        marker.write_text("decided")

    Runner.once(marker, decide)
    Runner.once(marker, decide)
    assert calls == [1]
