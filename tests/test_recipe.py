import pytest

from conftest import wukong
from wukong_data import recipe
from wukong_data.errors import UserError


def test_bundled_recipes_load_by_name():
    assert {"demo", "wukong-100m"} <= set(recipe.bundled_names())
    wukong100m = recipe.load("wukong-100m")
    f = wukong100m.filter
    assert f.min_side == 201 and (f.min_aspect_ratio, f.max_aspect_ratio) == (0.3333, 3.0)  # sides > 200 px
    assert f.chinese_only and f.person_names == "mask" and (f.min_words, f.max_words) == (1, 32)
    assert wukong100m.dedupe.max_caption_count == 10
    assert wukong100m.stages == ["crawl", "dedupe", "filter", "export"]  # the paper's rules, no model


@pytest.mark.parametrize("text, expected", [
    ("[crawl]\nimgsize = 3\n", "unknown key [crawl].imgsize"),
    ("[crawl]\ntimeout = 'ten'\n", "[crawl].timeout must be an integer, got 'ten'"),
    ("[crawl]\nresize_mode = 'stretch'\n", "[crawl].resize_mode must be one of"),
    ("[export]\nsamples_per_shard = 0\n", "[export].samples_per_shard must be positive"),
    ("stages = ['crawl', 'shuffle']\n", "unknown stage 'shuffle'"),
    ("stages = ['export', 'crawl']\n", "'stages' must list each stage once, in the order"),
    ("colour = 'red'\n", "unknown key 'colour'"),
    ("[crawl\n", "not valid TOML"),
    ("[crawl]\nencode_format = 'png'\n", "[crawl].encode_quality is the PNG compression level"),
    ("[crawl]\nencode_quality = 101\n", "[crawl].encode_quality must be between 0 and 100"),
    ("[filter]\nperson_name_min_probability = 0\n", "[filter].person_name_min_probability must be above 0"),
    ("[filter]\nperson_name_min_probability = 1\n", "[filter].person_name_min_probability must be above 0 and below 1"),
    ("[filter]\nperson_names = 'hide'\n", "[filter].person_names must be one of mask, reject, keep"),
    ("[filter]\nmask_person_names = false\n", '[filter].mask_person_names is no longer read: write person_names = "mask"'),
    ("[score]\ncheckpoint = 'run'\ncn_clip_model = 'RN50'\n", "[score] sets checkpoint and cn_clip_model: choose one scorer"),
    ("[score]\ncn_clip_model = 'ViT-B-32'\n", "[score].cn_clip_model: unknown Chinese-CLIP model 'ViT-B-32' (expected RN50,"),
])
def test_malformed_recipe_is_a_one_line_error_naming_file_and_key(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=None) as err:
        recipe.load(str(path))
    assert str(path) in str(err.value) and expected in str(err.value)

    proc = wukong("build", path, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr


def test_crawl_safety_settings(tmp_path):
    """Least privilege: the demo reaches only the address its server binds, the paper's recipe no
    private address at all; an allow list entry is an address or a network, nothing else."""
    assert recipe.load("demo").crawl.allow_addresses == ["127.0.0.1"]
    assert recipe.load("wukong-100m").crawl.allow_addresses == []
    for text, expected in [
        ("allow_addresses = ['10.0.0.1/8']", "[crawl].allow_addresses: '10.0.0.1/8' is not an IP address or network"),
        ("allow_addresses = ['localhost']", "[crawl].allow_addresses: 'localhost' is not an IP address or network"),
        ("allow_addresses = '127.0.0.1'", "[crawl].allow_addresses must be a list of strings"),
        ("max_image_bytes = 0", "[crawl].max_image_bytes must be positive"),
        ("max_image_seconds = -1", "[crawl].max_image_seconds must be positive"),
    ]:
        path = tmp_path / "r.toml"
        path.write_text(f"[crawl]\n{text}\n")
        with pytest.raises(UserError) as err:
            recipe.load(str(path))
        assert str(err.value).startswith(str(path)) and expected in str(err.value), str(err.value)
    path.write_text("[crawl]\nallow_addresses = ['127.0.0.1', '10.1.0.0/16', 'fd00::/8']\n")
    assert recipe.load(str(path)).crawl.allow_addresses == ["127.0.0.1", "10.1.0.0/16", "fd00::/8"]


def test_missing_input_and_unknown_recipe_are_one_line_errors(tmp_path):
    proc = wukong("build", "demo", "--out", tmp_path / "a", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: no input: pass --input PATH or set [input].path in the recipe"
    proc = wukong("build", "no-such-recipe", "--out", tmp_path / "b", check=False)
    assert proc.returncode == 2 and "no bundled recipe of that name" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_recipe_input_path_is_relative_to_the_recipe(tmp_path):
    (tmp_path / "lists").mkdir()
    path = tmp_path / "r.toml"
    path.write_text("[input]\npath = 'lists/urls.csv'\n")
    assert recipe.load(str(path)).input.path == str(tmp_path / "lists" / "urls.csv")


def test_remote_checkpoints_stay_urls(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('stages = ["crawl", "score", "export"]\n[score]\ncheckpoint = "s3://bucket/runs/filip"\n'
                    'open_clip_weights = "s3://bucket/w.pt"\n')
    score = recipe.load(str(path)).score
    assert (score.checkpoint, score.open_clip_weights) == ("s3://bucket/runs/filip", "s3://bucket/w.pt")
