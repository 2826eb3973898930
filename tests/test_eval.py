"""``sqz eval`` (hls.infer.evaluate) on folders built here from the bundled photos: the
figures it reports are recomputed here from the float model and the golden model on frames
preprocessed here (Caffe: 256 x 256 resize, centre crop, BGR)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hls import cli
from hls.infer.evaluate import evaluate
from hls.plan.prepare import prepare
from model.datasets import scan_eval_folder
from model.imagenet import imagenet_label
from model.paths import CONFIGS
from model.photos import bundled_photos
from model.quantize import float_forward, run_golden
from model.spec import CompressionSpec, load_spec

QUIET = {"log": lambda *a: None}


def _photos() -> dict[str, np.ndarray]:
    return {p.name: p.rgb for p in bundled_photos()}


def _save(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))
    return path


def top5(scores: np.ndarray) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:5]


def kl(float_logits: np.ndarray, codes: np.ndarray, fmt) -> float:
    """KL(softmax(float) || softmax(design)), the design's codes scaled by its format."""
    float_logits = np.asarray(float_logits, dtype=np.float64)
    p = np.exp(float_logits - float_logits.max())
    p /= p.sum()
    q = np.exp(codes * 2.0 ** -fmt.frac - (codes * 2.0 ** -fmt.frac).max())
    q /= q.sum()
    return float(np.sum(p * np.log(p / q)))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, list[tuple[Path, int]], Path]:
    """ILSVRC-style folder: synset id, class name and index folders (JPEG and PNG), plus a
    corrupt file. Returns (root, [(image, label)], corrupt file)."""
    root = tmp_path_factory.mktemp("val")
    ph = _photos()
    layout = [("n02123045", "chelsea", ".jpg", 281), ("n02123045", "china", ".png", 281),
              ("espresso", "coffee", ".png", 967), ("Egyptian_cat", "astronaut", ".jpg", 285),
              ("895", "rocket", ".jpg", 895)]
    items = [(_save(ph[name], root / folder / f"{name}{ext}"), label)
             for folder, name, ext, label in layout]
    bad = root / "895" / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    return root, items, bad


def test_eval_labelled_folder_matches_a_direct_computation(default_prep, labelled,
                                                           tmp_path, caffe) -> None:
    root, items, bad = labelled
    res = evaluate(default_prep, root, tmp_path, **QUIET)
    gap = default_prep.nodes[-1].name
    f1 = f5 = q1 = q5 = agree = overlap = 0
    conv1_sat = conv1_n = 0
    qmax = default_prep.plan.layers["conv1"].out_fmt.qmax
    rows = {}
    kls = []
    for path, label in items:
        frame = caffe(path)
        fl = float_forward(default_prep.nodes, default_prep.reference, frame)[gap]
        ft = top5(fl)
        golden = run_golden(default_prep.nodes, default_prep.plan, frame)
        qt = top5(golden[gap])
        kls.append(kl(fl, golden[gap], default_prep.plan.layers[gap].out_fmt))
        conv1_sat += int((golden["conv1"] == qmax).sum())
        conv1_n += golden["conv1"].size
        f1, f5 = f1 + (ft[0] == label), f5 + (label in ft)
        q1, q5 = q1 + (qt[0] == label), q5 + (label in qt)
        agree += qt[0] == ft[0]
        overlap += len(set(qt) & set(ft))
        rows[str(path)] = (label, ft, qt, kls[-1])
    n = len(items)
    assert res.images == n and res.labelled
    # a JPEG header followed by garbage: Pillow opens it and fails to decode it
    assert len(res.skipped) == 1 and res.skipped[0][0] == bad
    reason = res.skipped[0][1]
    assert reason.startswith("could not be decoded as an image: ")
    lines = res.lines()
    assert lines[-2:] == [
        f"accuracy: float top-1 {100 * f1 / n:.1f}%, top-5 {100 * f5 / n:.1f}%; "
        f"8-bit top-1 {100 * q1 / n:.1f}%, top-5 {100 * q5 / n:.1f}%",
        f"eval: {n} images, top-1 agreement {100 * agree / n:.1f}%, top-5 overlap "
        f"{100 * overlap / (5 * n):.1f}%"]
    assert "skipped 1 unreadable file(s):" in lines
    assert f"  {bad}: {reason}" in lines
    with (tmp_path / "per_image.csv").open() as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == n
    for row in got:
        label, ft, qt, k = rows[row["image"]]
        assert int(row["label"]) == label
        assert row["float_top5"] == " ".join(map(str, ft))
        assert row["int8_top5"] == " ".join(map(str, qt))
        assert int(row["int8_top5_overlap"]) == len(set(qt) & set(ft))
        assert float(row["int8_kl"]) == pytest.approx(k, rel=1e-5, abs=1e-9)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == n and summary["labelled"] is True
    assert summary["classes_found"] == {"n02123045": 281, "espresso": 967,
                                        "Egyptian_cat": 285, "895": 895}
    assert summary["skipped"] == [{"path": str(bad), "reason": reason}]
    assert summary["preprocess"] == {"method": "caffe", "resize": 256, "size": 227}
    assert summary["float"] == {"top1": f1 / n, "top5": f5 / n}
    q = summary["designs"]["8-bit"]
    assert (q["top1"], q["top5"], q["agreement_top1"]) == (q1 / n, q5 / n, agree / n)
    assert q["overlap_top5"] == pytest.approx(overlap / (5 * n))
    assert q["kl_from_float"] == pytest.approx(np.mean(kls), rel=1e-9)
    (line,) = [ln for ln in lines if ln.startswith("mean KL divergence from the float softmax: ")]
    assert re.fullmatch(r"mean KL divergence from the float softmax: 8-bit \d\.\d{4}", line)
    assert float(line.split()[-1]) == pytest.approx(np.mean(kls), abs=6e-5)
    assert q["saturation"]["conv1"]["rate"] == pytest.approx(conv1_sat / conv1_n)
    assert set(q["saturation"]) == {nd.name for nd in default_prep.nodes
                                    if nd.kind in ("conv", "gap")}


def test_eval_unlabelled_folder_reports_agreement_only(tiny_prep, tmp_path, build_tmp,
                                                        monkeypatch, capsys, caffe) -> None:
    ph = _photos()
    flat = tmp_path / "flat"
    paths = [_save(ph[name], flat / f"{name}.png") for name in ("coffee", "rocket", "flower")]
    monkeypatch.setattr("hls.plan.prepare.prepare", lambda spec, log=print: tiny_prep)
    out = build_tmp / "out"
    assert cli.main(["eval", "--config", "tiny", "--data", str(flat), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    gap = tiny_prep.nodes[-1].name
    agree = overlap = 0
    for p in paths:
        frame = caffe(p, 35, 39)  # tiny: 35 x 35, Caffe ratio 256/227 -> 39
        ft = top5(float_forward(tiny_prep.nodes, tiny_prep.reference, frame)[gap])
        qt = top5(run_golden(tiny_prep.nodes, tiny_prep.plan, frame)[gap])
        agree += qt[0] == ft[0]
        overlap += len(set(qt) & set(ft))
    assert lines[-1] == (f"eval: 3 images, top-1 agreement {100 * agree / 3:.1f}%, top-5 "
                         f"overlap {100 * overlap / 15:.1f}%")
    assert not any(ln.startswith("accuracy:") for ln in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labelled"] is False and summary["float"] == {"top1": None, "top5": None}


def test_eval_of_a_compressed_spec_reports_both_designs(tmp_path, caffe) -> None:
    shared = prepare(load_spec(CONFIGS / "tiny_shared.yaml"), **QUIET)
    ph = _photos()
    root = tmp_path / "data"
    for i, name in enumerate(("coffee", "chelsea")):
        _save(ph[name], root / str(i) / f"{name}.jpg")
    res = evaluate(shared, root, tmp_path / "out", **QUIET)
    assert [d.name for d in res.designs] == ["8-bit", "pruned 50% + 4-bit shared"]
    assert res.images == 2
    # the compressed design against the uncompressed float network, recomputed here
    gap = shared.nodes[-1].name
    assert shared.uncompressed is not None
    c1 = c5 = agree = overlap = 0
    diffs = []
    dense = prepare(replace(shared.spec, compression=CompressionSpec()), **QUIET)
    for label, path in enumerate(sorted(root.rglob("*.jpg"), key=lambda p: p.parent.name)):
        frame = caffe(path, 35, 39)
        ft = top5(float_forward(shared.nodes, shared.uncompressed, frame)[gap])
        ct = top5(run_golden(shared.nodes, shared.plan, frame)[gap])
        qt = top5(run_golden(dense.nodes, dense.plan, frame)[gap])
        c1, c5 = c1 + (ct[0] == label), c5 + (label in ct)
        agree, overlap = agree + (ct[0] == ft[0]), overlap + len(set(ct) & set(ft))
        fmt = shared.plan.layers[gap].out_fmt
        f_logits = float_forward(shared.nodes, shared.uncompressed, frame)[gap]
        diffs.append((100 * ((ct[0] == ft[0]) - (qt[0] == ft[0])),
                      20 * (len(set(ct) & set(ft)) - len(set(qt) & set(ft))),
                      kl(f_logits, run_golden(shared.nodes, shared.plan, frame)[gap], fmt)
                      - kl(f_logits, run_golden(dense.nodes, dense.plan, frame)[gap],
                           dense.plan.layers[gap].out_fmt)))
    assert (f"pruned 50% + 4-bit shared: top-1 {50 * c1:.1f}%, top-5 {50 * c5:.1f}%; top-1 "
            f"agreement {50 * agree:.1f}%, top-5 overlap {10 * overlap:.1f}% (vs the "
            "uncompressed float model)") in res.lines()
    # the paired difference, recomputed: mean and standard error over the 2 images
    d = np.array(diffs, dtype=float)
    m, se = d.mean(axis=0), d.std(axis=0, ddof=1) / np.sqrt(2)
    head = (f"pruned 50% + 4-bit shared minus 8-bit, paired over the 2 images: top-1 "
            f"agreement {m[0]:+.1f} ± {se[0]:.1f} points, top-5 overlap {m[1]:+.1f} ± "
            f"{se[1]:.1f} points, KL ")
    (line,) = [ln for ln in res.lines() if ln.startswith(head)]
    got = re.fullmatch(r"([+-]\d\.\d{4}) ± (\d\.\d{4}) \(standard errors\)", line[len(head):])
    assert got, line
    # 4 decimals printed from the same numbers computed along another float path
    assert float(got[1]) == pytest.approx(m[2], abs=6e-5)
    assert float(got[2]) == pytest.approx(se[2], abs=6e-5)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["designs"]) == {"8-bit", "pruned 50% + 4-bit shared"}


def test_folder_layouts_and_their_errors(tmp_path, capsys) -> None:
    ph = _photos()
    # 1 and goldfish are the same ImageNet class: refused, both named
    amb = tmp_path / "amb"
    _save(ph["coffee"], amb / "1" / "a.jpg")
    _save(ph["coffee"], amb / "goldfish" / "b.jpg")
    with pytest.raises(ValueError, match="class folders '1' and 'goldfish' both stand for "
                                         "class 1"):
        scan_eval_folder(amb, imagenet_label)
    # the same through the command line, on a 10-class spec: 1 and 01
    tiny_amb = tmp_path / "tiny_amb"
    _save(ph["coffee"], tiny_amb / "01" / "a.jpg")
    _save(ph["coffee"], tiny_amb / "1" / "b.jpg")
    assert cli.main(["eval", "--config", "tiny", "--data", str(tiny_amb)]) == 2
    assert capsys.readouterr().err == (f"error: {tiny_amb}: class folders '01' and '1' both "
                                       "stand for class 1; keep one\n")
    unknown = tmp_path / "unknown"
    _save(ph["coffee"], unknown / "coffe_mug" / "a.jpg")
    with pytest.raises(ValueError, match="'coffe_mug' is not an ImageNet class name"):
        scan_eval_folder(unknown, imagenet_label)
    mixed = tmp_path / "mixed"
    _save(ph["coffee"], mixed / "espresso" / "a.jpg")
    _save(ph["coffee"], mixed / "loose.jpg")
    with pytest.raises(ValueError, match=r"mixes class folders \(espresso\) with loose files "
                                         r"\(loose.jpg\)"):
        scan_eval_folder(mixed, imagenet_label)
    nested = tmp_path / "nested"
    _save(ph["coffee"], nested / "espresso" / "a.jpg")
    _save(ph["coffee"], nested / "espresso" / "more" / "b.jpg")
    (nested / "espresso" / ".DS_Store").write_text("hidden")
    found = scan_eval_folder(nested, imagenet_label)
    assert found.images == [(nested / "espresso" / "a.jpg", 967)]
    assert found.skipped == [(nested / "espresso" / "more",
                              "a folder inside a class folder (not searched)")]
    with pytest.raises(FileNotFoundError, match="evaluation folder not found"):
        scan_eval_folder(tmp_path / "nope", imagenet_label)
    # --limit: a seeded subset, in path order
    many = tmp_path / "many"
    for i in range(6):
        _save(ph["coffee"][:50, :50], many / f"{i}.png")
    picked = scan_eval_folder(many, imagenet_label, limit=3).images
    assert len(picked) == 3 and picked == sorted(picked)
    assert picked == scan_eval_folder(many, imagenet_label, limit=3).images
