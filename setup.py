"""Package discovery (metadata lives in pyproject.toml).

Every Python package under wukong_data/ is found, so a new subpackage cannot be left out of the
wheel. The recipes (pipelines/) and filter lists (filters/) live at the top of the repository
(DESIGN.md) and ship inside the wheel as wukong_data.pipelines and wukong_data.filters.
"""
from setuptools import find_packages, setup

DATA_PACKAGES = {"wukong_data.pipelines": "pipelines", "wukong_data.filters": "filters"}

setup(
    packages=find_packages(include=["wukong_data", "wukong_data.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
)
