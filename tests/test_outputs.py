"""The stages' declarations (wukong_data/outputs.py) are what the README, the report and the
decision files hold: a reason or column a stage does not declare never reaches disk."""
import re
from pathlib import Path

import polars as pl
import pytest

from wukong_data.build import BuildDir
from wukong_data.errors import ContractError
from wukong_data.outputs import STAGES, crawl_reason
from wukong_data.report.metrics import METRICS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_reason_table_is_the_declared_reasons_in_order():
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| code | stage | meaning |"):].split("\n\n")[0].splitlines()[2:]
    rows = [re.fullmatch(r"\| `(\w+)` \| (\w+) \| (.+) \|", line).groups() for line in table]
    declared = [(code, stage, text) for stage, d in STAGES.items() for code, text in d.reasons.items()]
    assert rows == declared


def test_report_metrics_read_declared_columns_and_reasons():
    for metric in METRICS:
        columns = {c for stage in STAGES for c in STAGES[stage].report}
        assert set(metric.columns) <= columns, metric.name
        deciders = {code for d in STAGES.values() for code in d.reasons}
        assert set(metric.decides) <= deciders, metric.name


def test_crawl_reasons_are_declared():
    statuses = pl.DataFrame({
        "url": ["", "http://a/1", "http://a/2", "http://a/3", "http://a/4", "http://a/5"],
        "status": ["failed_to_download", "success", "failed_to_download", "failed_to_download",
                   "failed_to_resize", "failed_to_download"],
        "error_message": [None, None, "<urlopen error blocked address x>", "Use of image disallowed by X-Robots-Tag "
                          "directive", "cannot identify image", "HTTP Error 404: Not Found"],
    })
    reasons = statuses.select(crawl_reason())[:, 0].drop_nulls()
    assert set(reasons) <= set(STAGES["crawl"].reasons) and reasons.len() == 5


@pytest.mark.parametrize("frame, message", [
    (pl.DataFrame({"key": ["0"], "reason": ["low_filip_score"]}), "reasons ['low_filip_score']"),
    (pl.DataFrame({"key": ["0"], "reason": [None], "filip_score": [0.3]}, schema_overrides={"reason": pl.String}),
     "undeclared: ['filip_score']"),
])
def test_a_decision_file_with_an_undeclared_reason_or_column_is_not_written(tmp_path, frame, message):
    build = BuildDir(tmp_path)
    with pytest.raises(ContractError, match=re.escape(message)):
        build.write_decisions("filter", "00000", frame)
    assert not list(tmp_path.rglob("00000*"))
