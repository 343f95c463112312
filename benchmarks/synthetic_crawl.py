"""Synthetic img2dataset output for scale runs: what `wukong build --from-crawl DIR` adopts.

Writes DIR/NNNNN.parquet + NNNNN_stats.json as img2dataset writes them with output_format
"parquet", encode_format "jpg", compute_hash "sha256" and its default extract_exif: the columns
caption, url, key, status, error_message, width, height, original_width, original_height, exif,
sha256, jpg (string / int32 / binary, as img2dataset's schema), row groups of 100 rows, rows a
little out of key order (its download threads finish out of order), keys of 5 shard digits and
ceil(log10(shard_rows)) row digits. Checked against a real img2dataset run on loopback URLs.

Images are small (`image_size` px on the shorter side, as img2dataset's keep_ratio stores a larger
original; original_width/original_height keep the original's size) and distinct: a smooth random
colour field from 8x8 control points (so its pHash bits are as varied as a photo's and no two
originals are near duplicates), a shading ramp, a shape, faint noise. Everything about a row is
a function of the seed and its row number, so a copy of an earlier row in another shard is made
again byte for byte, and shards are written in parallel.

Rates (RATES) are drawn per row: they hold in expectation, and `summary` counts what was written.
Image side (exclusive): failed downloads, exact image copies of an earlier row under another URL,
rows whose URL repeats an earlier row's (a third as written, a third with the scheme and host in
capitals, a third with :443 or a #fragment: the same URL after normalisation; same image), near
duplicates of an earlier image (resized to 50-90%, recompressed at JPEG quality 30-70, or both),
originals. Caption side (independent): boilerplate captions drawn from a pool of 5,000 with
Zipf(1.1) frequencies (so many exceed 10 occurrences), English, Japanese, meaningless (file
names, camera names, bare URLs, digits, generic words), captions naming a person, over-long
captions, and otherwise Chinese product, scene and landscape captions that are nearly all
unique. Size side (originals): tiny images (shorter side under 200), very wide or tall ones
(aspect over 3).

    python benchmarks/synthetic_crawl.py OUT --rows 100000 [--shard-rows 10000] [--image-size 64]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

# img2dataset's parquet schema (downloader.py + writer.py) for url/caption input, sha256, exif, jpg.
SCHEMA = pa.schema([
    ("caption", pa.string()), ("url", pa.string()), ("key", pa.string()), ("status", pa.string()),
    ("error_message", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("original_width", pa.int32()), ("original_height", pa.int32()), ("exif", pa.string()),
    ("sha256", pa.string()), ("jpg", pa.binary()),
])
ROW_GROUP = 100  # img2dataset's BufferedParquetWriter flushes every 100 rows
SHARD_DIGITS = 5  # img2dataset's oom_shard_count default
JPEG_QUALITY = 95  # img2dataset's encode_quality default

# Image side: one kind per row (the rest are originals).
IMAGE_RATES = {"failed_download": 0.10, "exact_image_copy": 0.03, "duplicate_url": 0.02, "near_duplicate": 0.05}
# Caption side, independent of the image side (the rest: unique-ish Chinese captions).
CAPTION_RATES = {"boilerplate_zipf": 0.08, "english": 0.015, "japanese": 0.01, "meaningless": 0.015,
                 "person_name": 0.03, "over_long": 0.005}
# Original sizes (originals only; copies take their source's).
SIZE_RATES = {"tiny": 0.02, "very_wide_or_tall": 0.01}
BOILERPLATE_POOL, ZIPF_EXPONENT = 5000, 1.1
RATES = {"image": IMAGE_RATES, "caption": CAPTION_RATES, "size": SIZE_RATES,
         "boilerplate": {"pool": BOILERPLATE_POOL, "zipf_exponent": ZIPF_EXPONENT}}
IMAGE_KINDS = (*IMAGE_RATES, "original")
CAPTION_KINDS = (*CAPTION_RATES, "chinese")
SIZE_KINDS = (*SIZE_RATES, "normal")
FAILED, EXACT, DUP_URL, NEAR, ORIGINAL = range(5)

ERRORS = {  # img2dataset's error_message for failed downloads, and their shares
    "HTTP Error 404: Not Found": 0.45, "HTTP Error 403: Forbidden": 0.15, "timed out": 0.15,
    "<urlopen error [Errno -2] Name or service not known>": 0.13, "<urlopen error [Errno 111] Connection refused>": 0.05,
    "HTTP Error 500: Internal Server Error": 0.03, "Remote end closed connection without response": 0.02,
    "Use of image disallowed by X-Robots-Tag directive": 0.02,
}

# --- captions ----------------------------------------------------------------------------------
ADJECTIVES = "可爱的 白色的 黑色的 毛茸茸的 调皮的 安静的 胖乎乎的 小小的 活泼的 慵懒的 橘色的 灰色的 年幼的 好奇的 快乐的 " \
             "温顺的 漂亮的 帅气的 聪明的 勇敢的 害羞的 淘气的 优雅的 高大的 瘦小的 黄色的 棕色的 花斑的 忠诚的 悠闲的".split()
SUBJECTS = "小猫 小狗 金毛犬 柯基 熊猫 老虎 大象 长颈鹿 鹦鹉 海鸥 小女孩 小男孩 老人 学生 厨师 骑手 兔子 松鼠 企鹅 狐狸 " \
           "梅花鹿 奶牛 小马 鸽子 天鹅 孔雀 仓鼠 刺猬 考拉 海豚 游客 摄影师 运动员 农民 渔夫 护士 宇航员 舞者 歌手 画家".split()
ACTIONS = "在草地上奔跑 趴在沙发上睡觉 在海边散步 在雪地里玩耍 坐在窗台上 在公园里晒太阳 在树下乘凉 在湖边喝水 在街头表演 " \
          "在厨房做饭 在球场上踢球 在图书馆看书 在田野里劳作 在花丛中嬉戏 在河边钓鱼 在舞台上唱歌 在山顶眺望远方 在雨中撑伞 " \
          "在教室里写字 在咖啡馆喝咖啡 抬头看着天空 回头看着镜头 张开嘴打哈欠 叼着一根树枝 追着一只蝴蝶 躺在地毯上 " \
          "站在石头上 在水里游泳 在路边等车 在阳台上浇花 在沙滩上堆沙堡 在篮球场投篮 在集市上买菜 在实验室做实验 " \
          "骑着自行车 推着购物车 牵着风筝 捧着一束鲜花 戴着红色围巾 穿着蓝色外套".split()
SCENES = "夕阳下的 雪后的 清晨的 雨中的 秋天的 春天的 夏日的 冬季的 夜晚的 雾中的 黄昏的 晴朗的 阴天的 月光下的 日出时的 " \
         "傍晚的 初春的 深秋的 盛夏的 寒冬的 灯光下的 薄雾中的 暴雨后的 星空下的 云海中的 午后的 彩虹下的 霞光里的 雪中的 晨光中的".split()
PLACES = "北京 上海 杭州西湖 成都 重庆 西安 苏州园林 桂林山水 黄山 泰山 张家界 九寨沟 丽江古城 厦门鼓浪屿 青岛 大理洱海 " \
         "拉萨 乌镇 婺源 三亚 哈尔滨 长城 故宫 外滩 洛阳 南京 武汉 长沙 天津 广州 深圳 香港 澳门 台北 敦煌 呼伦贝尔 " \
         "喀纳斯 稻城亚丁 凤凰古城 千岛湖".split()
LANDMARKS = "山峰 湖泊 古镇 寺庙 街道 石桥 高楼 城墙 港口 海滩 瀑布 森林 草原 梯田 峡谷 公园 广场 老街 灯塔 花海 " \
            "竹林 雪山 沙漠 河流 运河 夜市 古塔 牌坊 庭院 车站".split()
VIEW_WORDS = "风景 美景 航拍图 全景 夜景 风光 实拍 摄影作品 旅游照片 壁纸".split()
BRANDS = "华为 小米 李宁 安踏 优衣库 海尔 美的 格力 波司登 森马 太平鸟 回力 飞跃 百雀羚 三只松鼠 良品铺子 耐克 阿迪达斯 " \
         "OPPO vivo 联想 大疆 方太 九阳 苏泊尔 特步 361度 鸿星尔克 南极人 恒源祥".split()
FEATURES = "夏季 新款 韩版 宽松 纯棉 加厚 修身 百搭 简约 复古 时尚 休闲 轻薄 保暖 透气 防水 大码 高腰 潮流 ins风 " \
           "学生 情侣 儿童 男士 女士 中老年 家用 便携式 多功能 迷你 无线 静音 智能 大容量 不锈钢 实木 北欧风 日式 网红 原创".split()
CATEGORIES = "连衣裙 运动鞋 手机壳 羽绒服 牛仔裤 卫衣 衬衫 双肩包 电饭煲 保温杯 台灯 蓝牙耳机 充电宝 床单四件套 毛衣 " \
             "半身裙 帆布鞋 行李箱 围巾 帽子 茶具 收纳盒 沙发垫 窗帘 拖鞋 电风扇 空气炸锅 榨汁机 键盘 鼠标 手表 太阳镜 " \
             "玩具车 积木 绘本 口红 面膜 洗发水 牙刷 水杯 T恤 短裤 风衣 皮鞋 凉鞋 背心 睡衣 袜子 手套 书包".split()
SUFFIXES = ["", "", "", " 包邮", " 正品", " 现货", " 官方旗舰店", " 厂家直销", " 特价", " 2件装"]
NAMES = "张伟 王芳 李娜 刘洋 陈静 杨帆 赵磊 黄敏 周杰 吴婷 徐明 孙丽 马超 朱琳 胡军 郭涛 何欣 高峰 林涛 罗敏 " \
        "郑凯 梁静 谢娜 宋佳 唐宁 许晴 韩雪 冯巩 邓超 曹颖".split()
EVENTS = "出席新闻发布会 在上海参加活动 亮相红毯 接受媒体采访 出席颁奖典礼 参加慈善晚会 现身机场 出席签约仪式 " \
         "在北京举办个人画展 参加马拉松比赛 出席开幕式 走访社区".split()
BOILERPLATE_HEAD = ["图片来自网络", "点击查看大图", "高清壁纸", "产品实拍图", "商品详情", "微信图片", "网友供图", "资料图",
                    "效果图", "示意图", "来源：网络", "图片由网友提供", "点击进入下一页", "品牌LOGO", "店铺首页", "封面图",
                    "新闻图片", "配图", "手机壁纸", "电脑桌面壁纸"]
EN_SUBJECTS = "cat dog puppy kitten horse bird child girl boy woman man family couple chef runner cyclist " \
              "fisherman farmer dancer tourist".split()
EN_ADJECTIVES = "little old young happy small big white black brown red sleepy cute tired curious lonely".split()
EN_ACTIONS = ["sleeping", "running", "walking", "playing", "sitting", "standing", "reading a book", "eating lunch",
              "looking at the camera", "waiting for the bus", "swimming", "smiling", "riding a bike", "cooking dinner"]
EN_PLACES = ["on the sofa", "on the beach", "in the park", "in the snow", "by the river", "in the kitchen",
             "at the market", "on the street", "in the garden", "at sunset", "in the rain", "on a wooden bridge",
             "in front of the house", "near the lake", "on the mountain"]
JA_ADJECTIVES = "かわいい 白い 黒い 小さな 大きな 古い 元気な 眠そうな".split()
JA_SUBJECTS = "ねこ いぬ こども おばあさん 学生たち 鳥 うさぎ 女の子 男の子 家族 パンダ 猫ちゃん".split()
JA_PLACES = "京都 東京 公園 海辺 神社 駅前 お寺 川沿い 山の上 庭 カフェ 商店街 雪の中 桜の下".split()
JA_ACTIONS = "で寝ている で遊んでいる を歩いている で走っている で写真を撮った で休んでいる にいました で待っている".split()
GENERIC = ["图片", "照片", "高清图片", "查看源网页", "展开全文", "点击查看", "下载", "image", "photo", "untitled"]
HOSTS = ["img{n}.picshare.example", "pic{n}.shopcdn.example", "news{n}.photos.example", "i{n}.blogimg.example",
         "static{n}.forum.example", "cdn{n}.travelpics.example"]


def _product(pick) -> str:
    return f"{pick(BRANDS)}{2015 + pick(range(9))}{pick(FEATURES)}{pick(FEATURES)}{pick(CATEGORIES)}{pick(SUFFIXES)}"


def _chinese(pick) -> str:
    form = pick(range(10))
    if form < 4:
        return _product(pick)
    if form < 7:
        return f"{pick(SCENES + [''])}{pick(ADJECTIVES)}{pick(SUBJECTS)}{pick(ACTIONS)}"
    return f"{pick(SCENES)}{pick(PLACES)}{pick(LANDMARKS)}{pick(VIEW_WORDS)}"


def _meaningless(pick) -> str:
    form = pick(range(6))
    n = pick(range(10000))
    return [f"IMG_{n:04d}.jpg", f"DSC_{n:04d}", f"{n}.jpg", f"https://{HOSTS[0].format(n=n % 9)}/p/{n}.html",
            f"{20150101 + n}", pick(GENERIC)][form]


class Picker:
    """pick(xs): a uniformly drawn element of xs (numpy's uniforms, drawn a block at a time)."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.block = rng, iter(())

    def __call__(self, xs):
        u = next(self.block, None)
        if u is None:
            self.block = iter(self.rng.random(4096).tolist())
            u = next(self.block)
        return xs[int(u * len(xs))]


def boilerplate_pool(seed: int) -> list[str]:
    """The Zipf pool: real-looking boilerplate at the top ranks, then captions from the templates."""
    pick = Picker(np.random.default_rng([seed, 7]))
    pool = dict.fromkeys(BOILERPLATE_HEAD)
    while len(pool) < BOILERPLATE_POOL:
        pool.setdefault(_chinese(pick))
    return list(pool)


def captions(kinds: np.ndarray, rng: np.random.Generator, pool: list[str]) -> list[str]:
    weights = 1.0 / np.arange(1, len(pool) + 1) ** ZIPF_EXPONENT
    boiler = iter(rng.choice(len(pool), size=int((kinds == 0).sum()), p=weights / weights.sum()).tolist())
    pick = Picker(rng)
    out = []
    for kind in kinds.tolist():
        name = CAPTION_KINDS[kind]
        if name == "boilerplate_zipf":
            out.append(pool[next(boiler)])
        elif name == "english":
            out.append(f"a {pick(EN_ADJECTIVES)} {pick(EN_SUBJECTS)} {pick(EN_ACTIONS)} {pick(EN_PLACES)}")
        elif name == "japanese":
            out.append(f"{pick(JA_ADJECTIVES)}{pick(JA_SUBJECTS)}が{pick(JA_PLACES)}{pick(JA_ACTIONS)}")
        elif name == "meaningless":
            out.append(_meaningless(pick))
        elif name == "person_name":
            out.append(f"{pick(NAMES)}{1 + pick(range(12))}月{1 + pick(range(28))}日{pick(EVENTS)}")
        elif name == "over_long":
            out.append("，".join(_product(pick) for _ in range(3)) + "，" + "，".join(
                f"{pick(ADJECTIVES)}{pick(SUBJECTS)}{pick(ACTIONS)}" for _ in range(3)))
        else:
            out.append(_chinese(pick))
    return out


# --- images --------------------------------------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays: a row's random numbers from its seed and a counter."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(seeds: np.ndarray, count: int) -> np.ndarray:
    """(rows, count) uniforms in [0, 1), a pure function of each row's seed."""
    with np.errstate(over="ignore"):
        bits = _mix(seeds[:, None] * np.uint64(0x9E3779B97F4A7C15) + np.arange(1, count + 1, dtype=np.uint64))
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _interpolation(size: int, points: int) -> np.ndarray:
    """(size, points) linear interpolation weights from `points` control points across `size` pixels."""
    position = np.linspace(0, points - 1, size)
    lower = np.minimum(position.astype(int), points - 2)
    weights = np.zeros((size, points), np.float32)
    weights[np.arange(size), lower] = 1 - (position - lower)
    weights[np.arange(size), lower + 1] = position - lower
    return weights


@dataclass(frozen=True)
class Painter:
    size: int
    noise: np.ndarray  # a fixed noise texture; each image takes a window of it

    @classmethod
    def make(cls, size: int) -> "Painter":
        return cls(size, np.random.default_rng(12345).integers(-3, 4, (size * 4, size * 4, 3)).astype(np.float32))

    def paint(self, seeds: np.ndarray) -> np.ndarray:
        """(rows, size, size, 3) uint8 pictures, one per seed, each a pure function of its seed."""
        s, n = self.size, len(seeds)
        u = _uniform(seeds, 8 * 8 + 4 * 4 * 3 + 3 + 3 + 8).astype(np.float32)
        luma = (u[:, :64].reshape(n, 8, 8) - 0.5) * 170
        chroma = (u[:, 64:112].reshape(n, 4, 4, 3) - 0.5) * 70
        base = 50 + u[:, 112:115] * 150
        up8, up4 = _interpolation(s, 8), _interpolation(s, 4)
        field = (up8 @ luma @ up8.T)[..., None] + (up4 @ chroma.transpose(0, 3, 1, 2) @ up4.T).transpose(0, 2, 3, 1) \
            + base[:, None, None, :]
        angle, ramp = u[:, 115] * np.float32(2 * np.pi), (u[:, 116] - 0.5) * 80
        grid = np.linspace(-0.5, 0.5, s, dtype=np.float32)
        field += (ramp[:, None, None] * (np.cos(angle)[:, None, None] * grid[None, None, :]
                                         + np.sin(angle)[:, None, None] * grid[None, :, None]))[..., None]
        shape = u[:, 117:125]
        cx, cy, radius = shape[:, 0] * s, shape[:, 1] * s, (0.1 + 0.2 * shape[:, 2]) * s
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
        dx, dy = np.abs(xs[None] - cx[:, None, None]), np.abs(ys[None] - cy[:, None, None])
        circle = dx ** 2 + dy ** 2 < radius[:, None, None] ** 2
        square = np.maximum(dx, dy) < radius[:, None, None]
        mask = np.where((shape[:, 3] < 0.5)[:, None, None], circle, square)
        colour = shape[:, 4:7] * 255
        np.copyto(field, colour[:, None, None, :], where=mask[..., None])
        for i, offset in enumerate((shape[:, 7] * 3 * s).astype(int)):
            field[i] += self.noise[offset:offset + s, offset:offset + s]
        return field.clip(0, 255).astype(np.uint8)


def stored_size(width: np.ndarray, height: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The size img2dataset's keep_ratio (resize_only_if_bigger) stores: shorter side image_size."""
    short = np.minimum(width, height)
    scale = np.where(short > image_size, image_size / np.maximum(short, 1), 1.0)
    return (np.maximum(1, np.round(width * scale)).astype(np.int32),
            np.maximum(1, np.round(height * scale)).astype(np.int32))


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- the plan: every row's kind, source and size, for the whole crawl --------------------------
@dataclass
class Plan:
    rows: int
    shard_rows: int
    image_size: int
    seed: int
    kind: np.ndarray  # IMAGE_KINDS index
    size_kind: np.ndarray  # SIZE_KINDS index (originals)
    source: np.ndarray  # the earlier original a copy is made from; -1 for others
    width: np.ndarray  # original_width / original_height of every row with an image
    height: np.ndarray
    near_scale: np.ndarray  # near duplicates: resize factor (1: not resized)
    near_quality: np.ndarray  # near duplicates: JPEG quality (JPEG_QUALITY: not recompressed)
    pool: list[str]

    @property
    def shards(self) -> int:
        return -(-self.rows // self.shard_rows)


def make_plan(rows: int, shard_rows: int = 10000, image_size: int = 64, seed: int = 0) -> Plan:
    rng = np.random.default_rng([seed, 0])
    kind = np.searchsorted(np.cumsum(list(IMAGE_RATES.values())), rng.random(rows), side="right").astype(np.int8)
    kind[:min(rows, 100)] = ORIGINAL  # copies need earlier originals
    originals = np.flatnonzero(kind == ORIGINAL)
    copies = np.flatnonzero((kind == EXACT) | (kind == DUP_URL) | (kind == NEAR))
    source = np.full(rows, -1, np.int64)
    before = np.searchsorted(originals, copies)
    source[copies] = originals[(rng.random(len(copies)) * before).astype(np.int64)]

    size_kind = np.searchsorted(np.cumsum(list(SIZE_RATES.values())), rng.random(rows), side="right").astype(np.int8)
    size_kind[kind != ORIGINAL] = len(SIZE_RATES)
    short = np.clip(np.exp(rng.normal(np.log(480), 0.45, rows)), 201, 4000)
    aspect = rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9, 2.0], rows, p=[0.2, 0.35, 0.2, 0.2, 0.05])
    tiny, wide = size_kind == 0, size_kind == 1
    short[tiny] = rng.integers(32, 200, tiny.sum())
    aspect[wide] = rng.uniform(3.2, 8.0, wide.sum())
    long_side = short * aspect
    portrait = rng.random(rows) < 0.3
    width = np.round(np.where(portrait, short, long_side)).astype(np.int32)
    height = np.round(np.where(portrait, long_side, short)).astype(np.int32)
    width[copies], height[copies] = width[source[copies]], height[source[copies]]

    near = kind == NEAR
    mode = rng.integers(0, 3, rows)  # 0 resized, 1 recompressed, 2 both
    near_scale = np.where(near & (mode != 1), rng.uniform(0.5, 0.9, rows), 1.0)
    near_quality = np.where(near & (mode != 0), rng.integers(30, 71, rows), JPEG_QUALITY).astype(np.int32)
    width[near] = np.maximum(1, np.round(width[near] * near_scale[near])).astype(np.int32)
    height[near] = np.maximum(1, np.round(height[near] * near_scale[near])).astype(np.int32)
    return Plan(rows, shard_rows, image_size, seed, kind, size_kind, source, width, height, near_scale,
                near_quality, boilerplate_pool(seed))


def url_of(row: int, seed: int) -> str:
    (bits,) = _mix(np.array([row * 2654435761 + seed * 97 + 1], dtype=np.uint64)).tolist()
    host = HOSTS[bits % len(HOSTS)].format(n=(bits >> 8) % 16)
    return f"https://{host}/upload/{2012 + (bits >> 16) % 12}/{(bits >> 24) % 12 + 1:02d}/{bits >> 36:07x}{row:x}.jpg"


def _url_variant(url: str, which: int) -> str:
    """The same URL after normalisation: as written, scheme and host in capitals, or :443 / #fragment."""
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    return [url, f"{scheme.upper()}://{host.upper()}/{path}", f"{scheme}://{host}:443/{path}", f"{url}#top"][which]


_PLAN: Plan | None = None  # set in the parent; forked workers inherit it


def write_shard(out: str, shard: int) -> dict:
    """One shard: NNNNN.parquet, then NNNNN_stats.json (img2dataset's completion marker)."""
    plan = _PLAN
    start_time = time.time()
    lo, hi = shard * plan.shard_rows, min(plan.rows, (shard + 1) * plan.shard_rows)
    rows = np.arange(lo, hi)
    rng = np.random.default_rng([plan.seed, 1, shard])
    kind = plan.kind[lo:hi]
    drawn = np.searchsorted(np.cumsum(list(CAPTION_RATES.values())), rng.random(len(rows)), side="right")
    caption = captions(drawn, rng, plan.pool)

    # Pictures: a copy is its source's picture, painted again from the source's row number.
    has_image = kind != FAILED
    painted_row = np.where(kind == ORIGINAL, rows, plan.source[lo:hi])
    painter = Painter.make(plan.image_size)
    seeds = (painted_row.astype(np.uint64) + np.uint64(plan.seed) * np.uint64(1_000_003))
    images: list[bytes | None] = [None] * len(rows)
    width = [None] * len(rows)
    height = [None] * len(rows)
    index = np.flatnonzero(has_image)
    for begin in range(0, len(index), 512):
        chunk = index[begin:begin + 512]
        pictures = painter.paint(seeds[chunk])
        source = painted_row[chunk]
        store_w, store_h = stored_size(plan.width[source], plan.height[source], plan.image_size)
        for i, picture, w, h in zip(chunk.tolist(), pictures, store_w.tolist(), store_h.tolist()):
            image = Image.fromarray(picture)
            if (w, h) != image.size:
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            quality = JPEG_QUALITY
            if kind[i] == NEAR:
                scale, quality = plan.near_scale[lo + i], int(plan.near_quality[lo + i])
                if scale != 1.0:
                    image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
            images[i] = _jpeg(image, quality)
            width[i], height[i] = image.size

    error_names, error_shares = list(ERRORS), np.array(list(ERRORS.values()))
    errors = rng.choice(len(error_names), len(rows), p=error_shares / error_shares.sum())
    variants = rng.choice(4, len(rows), p=[1 / 3, 1 / 3, 1 / 6, 1 / 6])
    urls, status, error_message = [], [], []
    for i, row in enumerate(rows.tolist()):
        if kind[i] == DUP_URL:
            urls.append(_url_variant(url_of(int(plan.source[row]), plan.seed), int(variants[i])))
        else:
            urls.append(url_of(row, plan.seed))
        status.append("success" if has_image[i] else "failed_to_download")
        error_message.append(None if has_image[i] else error_names[errors[i]])
    row_digits = math.ceil(math.log10(plan.shard_rows))
    keys = [f"{shard:0{SHARD_DIGITS}d}{i:0{row_digits}d}" for i in range(len(rows))]
    original_w = [int(plan.width[r]) if has_image[i] else None for i, r in enumerate(rows.tolist())]
    original_h = [int(plan.height[r]) if has_image[i] else None for i, r in enumerate(rows.tolist())]
    table = pa.Table.from_pydict({
        "caption": caption, "url": urls, "key": keys, "status": status, "error_message": error_message,
        "width": width, "height": height, "original_width": original_w, "original_height": original_h,
        "exif": ["{}" if h else None for h in has_image.tolist()],
        "sha256": [hashlib.sha256(b).hexdigest() if b else None for b in images], "jpg": images,
    }, schema=SCHEMA)
    # img2dataset's threads finish out of order: shuffle rows within windows of 64.
    order = np.argsort(np.arange(len(rows)) // 64 + rng.random(len(rows)) * 0.999, kind="stable")
    table = table.take(pa.array(order))
    name = f"{shard:0{SHARD_DIGITS}d}"
    tmp = Path(out) / f".{name}.parquet.tmp"
    pq.write_table(table, tmp, row_group_size=ROW_GROUP)
    os.replace(tmp, Path(out) / f"{name}.parquet")
    failures = [error_names[e] for e, ok in zip(errors.tolist(), has_image.tolist()) if not ok]
    status_dict = {"success": int(has_image.sum())}
    for message in failures:
        status_dict[message] = status_dict.get(message, 0) + 1
    end_time = time.time()
    stats = {"count": len(rows), "successes": int(has_image.sum()), "failed_to_download": len(failures),
             "failed_to_resize": 0, "duration": end_time - start_time, "start_time": start_time,
             "end_time": end_time, "status_dict": status_dict}
    (Path(out) / f"{name}_stats.json").write_text(json.dumps(stats, indent=4))
    return {"caption_kinds": np.bincount(drawn, minlength=len(CAPTION_KINDS)).tolist(),
            "image_bytes": sum(len(b) for b in images if b)}


def _write_shard(args) -> dict:
    return write_shard(*args)


def write_crawl(out: str | Path, rows: int, *, shard_rows: int = 10000, image_size: int = 64, seed: int = 0,
                processes: int | None = None) -> dict:
    """Write `rows` rows of synthetic img2dataset parquet output into `out` (new or empty);
    returns the rates asked for and the counts written."""
    global _PLAN
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: not empty; synthetic crawls are written into a new folder")
    if shard_rows < 10:
        raise SystemExit("--shard-rows: at least 10")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _PLAN = make_plan(rows, shard_rows, image_size, seed)
    processes = processes or os.cpu_count() or 1
    tasks = [(str(out), s) for s in range(_PLAN.shards)]
    if processes > 1 and len(tasks) > 1:
        with multiprocessing.get_context("fork").Pool(min(processes, len(tasks))) as pool:
            results = pool.map(_write_shard, tasks, chunksize=1)
    else:
        results = [_write_shard(t) for t in tasks]
    seconds = time.perf_counter() - start
    plan = _PLAN
    caption_counts = np.sum([r["caption_kinds"] for r in results], axis=0)
    image_counts = np.bincount(plan.kind, minlength=len(IMAGE_KINDS))
    size_counts = np.bincount(plan.size_kind[plan.kind == ORIGINAL], minlength=len(SIZE_KINDS))
    return {
        "rows": rows, "shards": plan.shards, "shard_rows": shard_rows, "image_size": image_size, "seed": seed,
        "rates": RATES,
        "written": {
            "image": dict(zip(IMAGE_KINDS, image_counts.tolist())),
            "caption": dict(zip(CAPTION_KINDS, caption_counts.tolist())),
            "size_of_originals": dict(zip(SIZE_KINDS, size_counts.tolist())),
        },
        "image_bytes": sum(r["image_bytes"] for r in results),
        "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1), "processes": processes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a new folder")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=None, help="default: one per CPU")
    args = parser.parse_args()
    print(json.dumps(write_crawl(args.out, args.rows, shard_rows=args.shard_rows, image_size=args.image_size,
                                 seed=args.seed, processes=args.processes), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
