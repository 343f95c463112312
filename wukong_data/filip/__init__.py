"""The reference FILIP model (Yao et al., ICLR 2022) as used for Wukong (Gu et al., NeurIPS 2022).

tokenizer.py  Chinese BERT-style tokenisation (single characters, [CLS]/[SEP], context 32)
presets.py    model shapes: tiny (CPU), vit-b-32, vit-l-14; the names of the models
model.py      open_clip towers with token outputs + projections, token reduction, locked image tower
lit.py        lit-nudenet: a frozen pretrained detector's features and LAC's character embeddings
detector.py   that detector's features of photos and their mirrors, cached per run, and their batches
decode.py     images decoded alike for training and scoring
loss.py       token-wise late-interaction similarity and its InfoNCE loss, chunked
data.py       WebDataset loading of a build's final/ shards, deterministic and resumable
train.py      the training loop (AdamW, warm-up + cosine, DDP, checkpoints, exact resume)
evaluate.py   image<->text retrieval and zero-shot classification
checkpoint.py safetensors weights + config + vocabulary; training state for resume
files.py      the names of a model folder's files (no torch import)
"""
