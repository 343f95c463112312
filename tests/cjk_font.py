"""Builds the font the HTML report carries (wukong_data/report/fonts/wqy-microhei-gb2312.ttf): WenQuanYi
Micro Hei (Apache-2.0), from Debian's fonts-wqy-microhei, cut to the characters of GB2312, the
frequent characters of Big5, ASCII and CJK and full-width punctuation (~9,800 characters, 1.7 MB).
The report cuts it again to the characters of each page and embeds that (report/html.py).

    apt-get install fonts-wqy-microhei && python tests/cjk_font.py --out wukong_data/report/fonts
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

SOURCE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
NAME = "wqy-microhei-gb2312.ttf"


def characters() -> str:
    chars = {chr(c) for c in range(0x20, 0x7F)} | {chr(c) for c in range(0x3000, 0x3040)} \
        | {chr(c) for c in range(0xFF00, 0xFFF0)}
    for codec, leads, trails in (("gb2312", range(0xA1, 0xF8), range(0xA1, 0xFF)),
                                 ("big5", range(0xA4, 0xC7), [*range(0x40, 0x7F), *range(0xA1, 0xFF)])):
        for lead in leads:
            for trail in trails:
                try:
                    chars.add(bytes([lead, trail]).decode(codec))
                except UnicodeDecodeError:
                    pass
    return "".join(sorted(chars))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    font = TTCollection(str(SOURCE)).fonts[0]
    options = subset.Options()
    options.name_IDs, options.notdef_outline, options.hinting = ["*"], True, False
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters())
    subsetter.subset(font)
    args.out.mkdir(parents=True, exist_ok=True)
    font.save(str(args.out / NAME))
    print(args.out / NAME, (args.out / NAME).stat().st_size)


if __name__ == "__main__":
    main()
