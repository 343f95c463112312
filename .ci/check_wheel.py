"""Run from outside the source tree, in an environment where the wheel is installed (not
editable): every module of the source tree imports from the installed package, and every recipe
and filter list of the source tree ships in it. A module or data file missing from the wheel
fails here."""
import importlib
import sys
from importlib import metadata
from importlib import resources
from pathlib import Path

source = Path(sys.argv[1]).resolve()
modules = sorted(".".join(p.relative_to(source).with_suffix("").parts).removesuffix(".__init__")
                 for p in (source / "wukong_data").rglob("*.py") if p.name != "__main__.py")
for name in modules:
    module = importlib.import_module(name)
    # The CI venv lives inside the checkout, so "under the repo" is not the test: the source
    # package folder itself is.
    if source / "wukong_data" in Path(module.__file__).resolve().parents:
        sys.exit(f"{name} was imported from the source tree ({module.__file__}), not from the installed wheel")
for package, folder, pattern in (("wukong_data.pipelines", "pipelines", "*.toml"),
                                 ("wukong_data.filters", "filters", "*.txt")):
    shipped = {p.name for p in resources.files(package).iterdir()}
    missing = {p.name for p in (source / folder).glob(pattern)} - shipped
    if missing:
        sys.exit(f"{package} lacks {sorted(missing)}")
for network in ("name_layer.npz", "name_screen.npz"):
    if not (resources.files("wukong_data.stages.filter") / network).is_file():
        sys.exit(f"wukong_data.stages.filter lacks {network} (a name network)")
if not (resources.files("wukong_data.report") / "fonts" / "wqy-microhei-gb2312.ttf").is_file():
    sys.exit("wukong_data.report lacks fonts/wqy-microhei-gb2312.ttf (the report's CJK font)")
for name in ("config.json", "vocab.txt", "model.safetensors"):
    if not (resources.files("wukong_data.demo") / "scorer" / name).is_file():
        sys.exit(f"wukong_data.demo lacks scorer/{name} (the demo's reference model)")
# The demo ran from this install before: what it wrote inside the package, pip cannot remove, and a
# folder left behind shadows the next install (an editable one) as a namespace package.
installed = Path(importlib.import_module("wukong_data").__file__).parent
recorded = {Path(f.locate()).resolve() for f in metadata.files("wukong-data")}
strays = sorted(str(p.relative_to(installed)) for p in installed.rglob("*")
                if p.is_file() and p.suffix != ".pyc" and p.resolve() not in recorded)
if strays:
    sys.exit(f"the installed package holds files its wheel did not ship (pip cannot remove them): {strays[:5]}")
print(f"wheel ok: {len(modules)} modules, recipes, filter lists, the name networks and the demo's scorer present")
