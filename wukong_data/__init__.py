"""wukong-data: build Wukong-style Chinese image-text pre-training sets."""
import os

# img2dataset imports albumentations, which otherwise checks the network for updates at import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

__version__ = "0.1.0"
