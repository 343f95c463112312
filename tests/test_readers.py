import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import wukong
from wukong_data.errors import UserError
from wukong_data.readers import read_inputs
from wukong_data.recipe import InputConfig

ROWS = [("http://a.example/1.jpg", "一只猫"), ("https://b.example/2.png", "两只狗"), ("", "空的"),
        ("ftp://c.example/3.jpg", "不是http"), ("file:///etc/passwd", "本地文件"), ("http://", "没有主机")]


def _read(cfg, limit=None):
    return [t for _, t in read_inputs(cfg, limit)]


def _check(tables):
    table = pa.concat_tables(tables)
    assert table.column("caption").to_pylist() == [c for _, c in ROWS]
    # Invalid URLs are blanked (the crawl rejects them without any request) and kept for the record.
    assert table.column("url").to_pylist() == ["http://a.example/1.jpg", "https://b.example/2.png", "", "", "", ""]
    assert table.column("invalid_url").to_pylist() == [None, None, "", "ftp://c.example/3.jpg",
                                                       "file:///etc/passwd", "http://"]


def test_wukong_release_csv_and_gzip_and_glob(tmp_path):
    text = "url,caption\n" + "".join(f'{u},"{c}"\n' for u, c in ROWS)
    (tmp_path / "wukong_100m_0.csv").write_text(text[: text.index("\n", len(text) // 2) + 1])
    with gzip.open(tmp_path / "wukong_100m_1.csv.gz", "wt") as f:
        f.write("url,caption\n" + text[text.index("\n", len(text) // 2) + 1:])
    _check(_read(InputConfig(path=str(tmp_path / "wukong_100m_*.csv*"))))
    _check(_read(InputConfig(path=str(tmp_path))))  # a folder: every supported file in it, sorted


def test_tsv_jsonl_parquet_with_other_column_names(tmp_path):
    (tmp_path / "a.tsv").write_text("link\ttext\n" + "".join(f"{u}\t{c}\n" for u, c in ROWS))
    _check(_read(InputConfig(path=str(tmp_path / "a.tsv"), url_column="link", caption_column="text")))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"URL": u, "TEXT": c}) + "\n" for u, c in ROWS))
    _check(_read(InputConfig(path=str(tmp_path / "b.jsonl"), url_column="URL", caption_column="TEXT")))
    pq.write_table(pa.table({"url": [u for u, _ in ROWS], "caption": [c for _, c in ROWS]}), tmp_path / "c.parquet")
    _check(_read(InputConfig(path=str(tmp_path / "c.parquet"))))


def test_limit_stops_across_files(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.csv").write_text("url,caption\n" + "".join(f"http://x/{i}-{j},c\n" for j in range(4)))
    tables = _read(InputConfig(path=str(tmp_path)), limit=6)
    assert [t.num_rows for t in tables] == [4, 2]


@pytest.mark.parametrize("name, content, expected", [
    ("a.csv", "link,caption\nhttp://x/1,c\n", "no url column 'url' (columns: link, caption; set [input].url_column)"),
    ("b.jsonl", '{"url": "http://x/1", "caption": "c"}\n{"url": \n', "cannot read as jsonl"),
    ("c.csv", 'url,caption\nhttp://x/1,c,extra\n', "cannot read as csv"),
    ("d.txt", "http://x/1\n", "cannot tell the input format from the name"),
])
def test_malformed_input_is_a_one_line_error(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as err:
        _read(InputConfig(path=str(path)))
    assert str(path) in str(err.value) and expected in str(err.value)
    proc = wukong("build", "demo", "--input", path, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr


def test_missing_input_path(tmp_path):
    proc = wukong("build", "demo", "--input", tmp_path / "nope.csv", "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: input not found"
