"""open_clip's own trainer, the client our users point at us, trains directly on final/."""
import json
import subprocess
import sys

from conftest import ASSETS


def test_open_clip_train_consumes_final(demo_build, tmp_path):
    sizes = json.loads((demo_build / "final" / "sizes.json").read_text())
    shards = str(demo_build / "final" / f"{{00000..{len(sizes) - 1:05d}}}.tar")
    proc = subprocess.run(
        [sys.executable, "-m", "open_clip_train.main", "--train-data", shards, "--dataset-type", "webdataset",
         "--train-num-samples", str(sum(sizes.values())), "--model", f"local-dir:{ASSETS / 'tiny-clip'}",
         "--batch-size", "16", "--epochs", "1", "--workers", "1", "--device", "cpu", "--lr", "1e-3",
         "--warmup", "1", "--logs", str(tmp_path), "--name", "run", "--report-to", "", "--save-frequency", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "out.log").read_text()
    assert "Train Epoch: 0" in log and "Contrastive_loss" in log
    assert (tmp_path / "run" / "checkpoints" / "epoch_1.pt").exists()
