"""Label-free distillation (model.distill, sqz distill): its loss, its frames, the command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import paths

REPO = Path(__file__).resolve().parents[1]


def _sqz() -> list[str]:
    sqz = Path(sys.executable).parent / "sqz"
    return [str(sqz)] if sqz.exists() else [sys.executable, "-m", "hls.cli"]


def test_distillation_loss_by_hand():
    """T^2 KL(p_teacher || p_student) at T = 2: zero for equal logits; for teacher (0, 0)
    and student (2 ln 3, 0), softened to (ln 3, 0), p_s = (3/4, 1/4) and
    KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3), times 4."""
    from model.train import _distillation_loss, _tf

    tf = _tf()
    loss = _distillation_loss(tf, 2.0)
    same = loss(tf.constant([[1.0, -2.0, 0.5]]), tf.constant([[1.0, -2.0, 0.5]]))
    assert float(same[0]) == pytest.approx(0.0, abs=1e-6)
    student = tf.constant([[2 * float(np.log(3.0)), 0.0]], dtype=tf.float32)
    got = loss(tf.constant([[0.0, 0.0]]), student)
    assert float(got[0]) == pytest.approx(4 * 0.5 * np.log(4 / 3), rel=1e-5)


def test_augmented_frames_are_seeded_crops_of_the_resized_photo():
    from model.distill import augmented_frames
    from model.photos import bundled_photos, spec_frame, to_network_input
    from model.spec import load_spec

    spec = load_spec(paths.DEFAULT_CONFIG)
    rgbs = [p.rgb for p in bundled_photos()[:2]]
    frames = augmented_frames(rgbs, spec, 4, seed=0)
    assert frames.shape == (8, 227, 227, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], spec_frame(rgbs[0], spec))   # copy 0: the centre crop
    big = to_network_input(rgbs[0], 256, "caffe", 256)
    # copy 1 is mirrored, copy 2 is not: each is some 227x227 window of the resized photo
    windows = np.lib.stride_tricks.sliding_window_view(big, (227, 227, 3))[:, :, 0]
    for c, flip in ((1, True), (2, False)):
        want = frames[c][:, ::-1] if flip else frames[c]
        hits = np.argwhere((windows == want).all(axis=(2, 3, 4)))
        assert hits.size, f"copy {c} is not a window of the resized photo"
    assert np.array_equal(frames, augmented_frames(rgbs, spec, 4, seed=0))
    assert not np.array_equal(frames, augmented_frames(rgbs, spec, 4, seed=1))
    # mixup: each blend lies between a crop of its photo and a crop of the other photo
    mixed = augmented_frames(rgbs, spec, 4, seed=0, mix=3)
    assert mixed.shape == (14, 227, 227, 3) and np.array_equal(mixed[:8], frames)
    for k, (i, j) in enumerate([(0, 1)] * 3 + [(1, 0)] * 3):
        blend = mixed[8 + k].astype(float)
        ok = False
        for a in frames[4 * i:4 * i + 4].astype(float):
            for b in frames[4 * j:4 * j + 4].astype(float):
                d = a - b
                lam = float((d * (blend - b)).sum() / (d * d).sum())
                if 0.24 <= lam <= 0.76 and np.abs(lam * a + (1 - lam) * b - blend).max() <= 1:
                    ok = True
        assert ok, f"blend {k} is not a mix of photo {i} and photo {j}"


def test_distill_refuses_a_spec_that_prunes_nothing():
    res = subprocess.run([*_sqz(), "distill", "--config", "tiny"], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2
    assert "prunes nothing" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow  # CI time: runs in make test-all
def test_distill_command_on_tiny_shared():
    """Two epochs on tiny_shared: the distillation loss goes down, the pruned weights stay
    zero, and the before / after agreement lines are printed (measured against the float
    model; the random tiny network's figures themselves mean little)."""
    res = subprocess.run([*_sqz(), "distill", "--config", "tiny_shared", "--epochs", "2",
                          "--copies", "2", "--mix", "1", "--eval-limit", "12", "--lr", "0.003",
                          "--restart"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "pruned weights still zero: True" in out
    m = re.search(r"distillation loss ([\d.]+) \(epoch 1\) -> ([\d.]+) \(epoch 2\)", out)
    assert m and float(m.group(2)) < float(m.group(1)), out
    for label in ("before", "after"):
        assert re.search(rf"  {label}: top-1 agreement \d+\.\d%, top-5 overlap \d+\.\d%", out)
    assert (paths.BUILD / "train" / "tiny_shared_distill" / "weights.npz").is_file()
