"""The files of a model folder (a training run's output or the score stage's bootstrap model).

Apart from checkpoint.py so that code which only names them (the score stage's driver) does not
import torch."""
WEIGHTS, CONFIG, VOCAB, STATE = "model.safetensors", "config.json", "vocab.txt", "state.pt"
