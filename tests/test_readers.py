import csv
import gzip
import io
import json
import os
import re
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import wukong
from wukong_data.errors import UserError
from wukong_data.readers import SCHEMA, read_inputs
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


MALFORMED = [
    ("a.csv", b"link,caption\nhttp://x/1,c\n", "no url column 'url' (columns: 'link', 'caption'; set [input].url_column)"),
    ("b.jsonl", b'{"url": "http://x/1", "caption": "c"}\n{"url": \n', "cannot read as jsonl"),
    ("c.csv", b"url,caption\nhttp://x/1,c,extra\n", "cannot read as csv"),
    ("d.txt", b"http://x/1\n", "cannot tell the input format from the name"),
    ("e.csv", b"url,caption,url\nhttp://x/1,c,http://x/2\n", "the header names column 'url' 2 times"),
    ("f.csv", b"url,caption\nhttp://x/1,\xb9\xfb\xd6\xad\n", "row 1: column 'caption' is not UTF-8 text"),  # GBK
    ("g.jsonl", b'{"url": "http://x/1", "caption": "\xff"}\n', "row 1: column 'caption' is not UTF-8 text"),
    ("h.csv", b'url,caption\nhttp://x/1,"never closed\nhttp://x/2,c\n', "row 1: a quoted field runs to the end"),
    ("i.parquet", b"url,caption\nhttp://x/1,c\n", "cannot read as parquet"),
    ("j.jsonl", b'{"url": {"host": "x"}, "caption": "c"}\n', "column 'url' holds struct<host: string>, expected text"),
    ("k.csv", b"", "cannot read as csv: Empty CSV file"),
    ("l.csv.gz", b"url,caption\nhttp://x/1,c\n", "cannot read as csv"),  # not gzip
]


@pytest.mark.parametrize("name, content, expected", MALFORMED)
def test_malformed_input_is_a_one_line_error(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        _read(InputConfig(path=str(path)))
    message = str(err.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


@pytest.mark.parametrize("name, content, expected", [MALFORMED[2], MALFORMED[5]])
def test_malformed_input_ends_the_cli_with_one_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    proc = wukong("build", "demo", "--input", path, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr


def test_unusable_rows_get_a_reason_and_the_rest_is_kept(tmp_path):
    """NUL bytes, empty and null values, padding, a megabyte-long caption, a caption that ends
    with a line break: every row comes through, the unusable URLs marked invalid."""
    long_caption = "长" * 1_000_000
    path = tmp_path / "rows.csv"
    path.write_text('url,caption\nhttp://x/1,cap\x00tion\nhttp://x/\x002,c\n,\n"",""\n  http://x/3  ,padded\n'
                    f'http://x/4 5,space\nhttp://x/6,{long_caption}\nhttp://x/7,"ends with a break\n"\n',
                    encoding="utf-8")
    table = pa.concat_tables(_read(InputConfig(path=str(path))))
    assert table.column("url").to_pylist() == ["http://x/1", "", "", "", "http://x/3", "", "http://x/6", "http://x/7"]
    assert table.column("invalid_url").to_pylist() == [None, "http://x/\x002", "", "", None, "http://x/4 5", None, None]
    assert table.column("caption").to_pylist() == ["cap\x00tion", "c", "", "", "padded", "space", long_caption,
                                                   "ends with a break\n"]


# Cells a URL list can hold: any text (control characters included), the characters CSV and
# JSON quote, URLs good and bad, a long caption.
_GOOD_URL = st.builds("http://{}.example/{}".format, st.text("abcdefgh", min_size=1, max_size=6),
                      st.text("abc123-_/.%?=&", max_size=12))
_CELL = st.one_of(st.text(max_size=20), _GOOD_URL, st.sampled_from(
    ["", " ", "\x00", '"', '""', ",", "\t", "\n", "\r\n", "\r", "\ufeff", "http://", "ftp://x/y", "http://[::1",
     " http://x.example/a ", "http://x.example/b c", "IMG_0001.jpg", "长" * 3000]))
_ROWS = st.lists(st.tuples(_CELL, _CELL), max_size=10)


def _write(rows, fmt: str) -> bytes:
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")
        writer.writerow(["url", "caption"])
        writer.writerows(rows)
        return buf.getvalue().encode("utf-8")
    if fmt == "jsonl":
        return "".join(json.dumps({"url": u, "caption": c}, ensure_ascii=False) + "\n" for u, c in rows).encode()
    sink = io.BytesIO()
    pq.write_table(pa.table({"url": pa.array([u for u, _ in rows], pa.string()),
                             "caption": pa.array([c for _, c in rows], pa.string())}), sink)
    return sink.getvalue()


def _read_bytes(content: bytes, name: str):
    """read_inputs over one file holding `content`: the tables, or the UserError's message."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(content)
        try:
            return pa.concat_tables(_read(InputConfig(path=path))), None
        except UserError as err:
            message = str(err)
            assert message.startswith(path) and "\n" not in message, message
            return None, message


def _check_rows(table: pa.Table, written=None) -> None:
    """Every row kept; a URL is either usable (http(s), nothing a request line cannot carry) or
    blanked with its original kept in invalid_url."""
    assert table.schema == SCHEMA
    for i, (url, caption, invalid) in enumerate(zip(*(table.column(c).to_pylist() for c in SCHEMA.names))):
        assert isinstance(caption, str)
        if url:
            assert invalid is None and re.match(r"(?i)https?://[^/?#]", url)
            assert not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url), url
        else:
            assert invalid is not None
        if written is not None:
            original, text = written[i]
            assert caption == text and (invalid == original if not url else url in original)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, fmt=st.sampled_from(["csv", "tsv", "jsonl", "parquet"]))
def test_well_formed_files_keep_every_row_whatever_their_text(rows, fmt):
    table, error = _read_bytes(_write(rows, fmt), f"urls.{fmt}")
    if error is not None:  # only an empty JSON Lines file has nothing to read
        assert fmt == "jsonl" and not rows, error
        return
    assert table.num_rows == len(rows)
    _check_rows(table, rows)
    for (url, _), kept in zip(rows, table.column("url").to_pylist()):
        if re.fullmatch(r"http://[a-h]+\.example/[a-c0-9\-_/.%?=&]*", url):
            assert kept == url


@settings(max_examples=150, deadline=None)
@given(rows=_ROWS, fmt=st.sampled_from(["csv", "tsv", "jsonl", "parquet"]), name=st.sampled_from(
    ["urls.csv", "urls.tsv", "urls.jsonl", "urls.parquet", "urls.csv.gz"]), data=st.data())
def test_malformed_files_give_a_one_line_error_or_usable_rows(rows, fmt, name, data):
    """Well-formed files damaged at random (bytes inserted, cut short) and files under the wrong
    name: read_inputs gives rows that satisfy the contract or a one-line UserError, nothing else."""
    content = bytearray(_write(rows, fmt))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(content)))
        damage = data.draw(st.sampled_from([b'"', b"\xff", b"\xe4\xb8", b"\x00", b"\n", b",", b"\t", b"{", b"]",
                                            b"url,", b"PAR1", None]))
        content = content[:at] if damage is None else content[:at] + damage + content[at:]
    if name.endswith(".gz") and data.draw(st.booleans()):
        content = gzip.compress(bytes(content))
    table, _ = _read_bytes(bytes(content), name)
    if table is not None:
        _check_rows(table)


def test_missing_input_path(tmp_path):
    proc = wukong("build", "demo", "--input", tmp_path / "nope.csv", "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: input not found"
