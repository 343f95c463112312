"""The filter's rules, one per file, in the order they run (cheap ones first). A rule is a class
built from the recipe's [filter] table with `reasons` (the codes it gives, declared in
outputs.py), `columns` (name -> dtype of what it records) and `apply(rows)` (rows.Rows).
A new rule is a file here, its place in RULES, its reasons and columns in outputs.py, and its test."""
from .decode_check import DecodeCheck
from .image_shape import ImageShape
from .language import ChineseOnly
from .meaningless_caption import MeaninglessCaption
from .nsfw_image import NsfwImage
from .person_names import PersonNames
from .word_count import WordCount
from .word_lists import NsfwText, SensitiveText

RULES = (ImageShape, MeaninglessCaption, ChineseOnly, SensitiveText, NsfwText, WordCount, PersonNames, DecodeCheck,
         NsfwImage)
# The rules that read only the caption (what benchmarks/filter.py times).
TEXT_RULES = tuple(rule for rule in RULES if not rule.reads_image)
