"""wukong-data: build Wukong-style Chinese image-text pre-training sets."""
__version__ = "0.1.0"
