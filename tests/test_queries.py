from conftest import wukong

CORPUS = """红色连衣裙夏季新款
红色连衣裙 我们的新款
我们喜欢蓝色的天空
蓝色的天空和白云
夏季新款连衣裙
"""


def test_queries_from_a_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "queries.txt"
    wukong("queries", corpus, "--out", out, "--min-count", "2", "--with-counts")
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    queries = {q: int(n) for q, n in rows}
    assert queries == {"连衣裙": 3, "新款": 3, "红色": 2, "红色连衣裙": 2, "夏季": 2, "蓝色": 2,
                       "天空": 2, "夏季新款": 2}
    assert [q for q, _ in rows][:2] == ["新款", "连衣裙"]  # most frequent first, ties by text
    assert "我们" not in queries  # stop word

    wukong("queries", corpus, "--out", out, "--min-count", "2", "--top-k", "3")
    assert out.read_text().splitlines() == ["新款", "连衣裙", "夏季"]


def test_missing_corpus_is_a_one_line_error(tmp_path):
    proc = wukong("queries", tmp_path / "none.txt", "--out", tmp_path / "q.txt", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'none.txt'}: corpus file not found"
