"""``sqz classify`` and its API (hls.infer.classify): images in, top-5 classes out, through
the golden model, the C simulation or the RTL; checked against the golden model run here
directly on frames preprocessed here (Caffe: 256 x 256 resize, centre 227 crop, BGR)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hls import cli
from hls.infer.classify import Classifier, CsimBackend, GoldenBackend, log_softmax
from hls.plan.prepare import Frame
from model.imagenet import imagenet_class_names
from model.photos import bundled_photos
from model.progress import ProgressBar, progress
from model.quantize import run_golden


def expected_top(prep, frame: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """(index, probability) of the k best classes: golden model, dequantized, softmax."""
    gap = prep.nodes[-1].name
    codes = run_golden(prep.nodes, prep.plan, frame)[gap]
    real = codes * 2.0 ** -prep.plan.layers[gap].out_fmt.frac
    e = np.exp(real - real.max())
    p = e / e.sum()
    order = sorted(range(len(p)), key=lambda i: (-real[i], i))[:k]
    return [(i, float(p[i])) for i in order]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """chelsea as JPEG and coffee as PNG, written here from the bundled photos."""
    out = tmp_path_factory.mktemp("images")
    photos = {p.name: p.rgb for p in bundled_photos()}
    jpg, png = out / "chelsea.jpg", out / "coffee.png"
    Image.fromarray(photos["chelsea"]).save(jpg, quality=90)
    Image.fromarray(photos["coffee"]).save(png)
    return [jpg, png]


def test_classify_default_network_matches_the_golden_model(default_prep, images, caffe) -> None:
    preds = Classifier(default_prep).classify(images)
    names = imagenet_class_names()
    assert [p.image for p in preds] == [str(i) for i in images]
    for pred, path in zip(preds, images, strict=True):
        want = expected_top(default_prep, caffe(path))
        assert [c.index for c in pred.top] == [i for i, _ in want]
        assert [c.name for c in pred.top] == [names[i] for i, _ in want]
        assert [c.prob for c in pred.top] == pytest.approx([p for _, p in want], rel=1e-9)
    assert preds[1].top[0].name == "espresso"
    assert preds[0].top[0].name in ("tabby", "tiger cat", "Egyptian cat")


def test_classify_cli_json_is_only_json_on_stdout(default_prep, images, monkeypatch,
                                                  capfd) -> None:
    # The command on the default config, with the session's prepare() of it (the same
    # call the command makes; test_classify_default_network_matches_the_golden_model runs
    # the whole default network)
    monkeypatch.setattr("hls.plan.prepare.prepare", lambda spec, log=print, demo=True: default_prep)
    assert cli.main(["classify", *map(str, images), "--json"]) == 0
    out, err = capfd.readouterr()
    got = json.loads(out)  # stdout holds the JSON and nothing else
    assert isinstance(got, list) and len(got) == 2
    for entry, path in zip(got, images, strict=True):
        assert set(entry) == {"image", "top5"} and entry["image"] == str(path)
        assert len(entry["top5"]) == 5
        for c in entry["top5"]:
            assert set(c) == {"index", "name", "prob"}
            assert isinstance(c["index"], int) and isinstance(c["name"], str)
            assert isinstance(c["prob"], float) and 0 < c["prob"] <= 1
        probs = [c["prob"] for c in entry["top5"]]
        assert probs == sorted(probs, reverse=True)
    assert got[1]["top5"][0] == {"index": 967, "name": "espresso",
                                 "prob": pytest.approx(got[1]["top5"][0]["prob"])}
    assert "backend golden" in err and "time:" in err


def test_classify_cli_text_and_top_k(default_prep, images, monkeypatch, capsys, caffe) -> None:
    monkeypatch.setattr("hls.plan.prepare.prepare", lambda spec, log=print, demo=True: default_prep)
    assert cli.main(["classify", str(images[1]), "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    want = expected_top(default_prep, caffe(images[1]), 3)
    names = imagenet_class_names()
    body = out[out.index(f"-- {images[1]}") + 1:][:3]
    assert body == [f"   {p:6.1%}  {i:4d} {names[i]}" for i, p in want]


def test_classify_errors_name_every_bad_file(tmp_path, images, capsys) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    missing = tmp_path / "missing.png"
    cases = [([str(missing)], f"error: image file not found: {missing}\n"),
             ([str(tmp_path)], f"error: {tmp_path} is a directory, not an image file\n"),
             ([str(notes)], f"error: {notes} is not an image Pillow can read\n"),
             ([str(images[0]), str(missing), str(notes)],
              f"error: 2 of 3 images cannot be classified: image file not found: {missing}; "
              f"{notes} is not an image Pillow can read\n")]
    for argv, err in cases:
        assert cli.main(["classify", "--config", "tiny", *argv]) == 2
        got = capsys.readouterr()
        assert got.err == err and got.out == ""
    assert cli.main(["classify", str(images[0]), "--backend", "fpga"]) == 2
    assert capsys.readouterr().err == ("error: --backend: 'fpga' is not allowed; allowed: "
                                       "golden, csim, rtl, board\n")


class OffsetBackend:
    """A stand-in for a board driver: the golden scores, class 3 raised to the top."""

    name = "board"

    def __init__(self, prep, shape=None) -> None:
        self.golden, self.shape = GoldenBackend(prep), shape

    def run(self, frames):
        codes = self.golden.run(frames)
        codes[:, 3] = codes.max(axis=1) + 1
        return codes if self.shape is None else codes.reshape(self.shape)


def test_any_object_with_name_and_run_is_a_backend(tiny_prep) -> None:
    frames = tiny_prep.frames[:2]
    preds = Classifier(tiny_prep, OffsetBackend(tiny_prep)).predict(frames, k=10)
    for fr, pred in zip(frames, preds, strict=True):
        gap = tiny_prep.nodes[-1].name
        codes = run_golden(tiny_prep.nodes, tiny_prep.plan, fr.pixels)[gap]
        codes[3] = codes.max() + 1
        np.testing.assert_array_equal(pred.codes, codes)
        assert pred.top[0].index == 3 and pred.top[0].name is None  # 10 classes: no names
        assert sum(c.prob for c in pred.top) == pytest.approx(1.0)
    with pytest.raises(TypeError, match=r"backend 'board' returned int64 \(20,\), expected "
                                        r"integers of shape \(2, 10\)"):
        Classifier(tiny_prep, OffsetBackend(tiny_prep, shape=(20,))).predict(frames)
    with pytest.raises(TypeError, match="backend must have a name and run"):
        Classifier(tiny_prep, object())


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    log = io.StringIO()
    assert list(progress(range(25), "eval", unit="image", stream=log)) == list(range(25))
    lines = log.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [f"eval: {n}/25 images"
                                                    for n in (3, 6, 9, 12, 15, 18, 21, 24, 25)]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    assert list(progress(iter(range(3)), "csim", total=3, unit="frame", stream=tty)) == [0, 1, 2]
    assert "\r" in tty.getvalue() and "3/3" in tty.getvalue()

    # callback-driven work (sqz dse): a bar on a terminal, the caller's lines pass through
    said: list[str] = []
    tty = Terminal()
    with ProgressBar(2, "dse", unit="point", stream=tty) as bar:
        for k in (1, 2):
            bar.update()
            bar.log(said.append, f"[{k}/2] done")
    assert said == ["[1/2] done", "[2/2] done"]
    assert "dse" in tty.getvalue() and "2/2" in tty.getvalue()
    piped = io.StringIO()
    with ProgressBar(2, "dse", unit="point", stream=piped) as bar:
        bar.update()
        bar.log(said.append, "[1/2] piped")
    assert piped.getvalue() == "" and said[-1] == "[1/2] piped"


@pytest.mark.csim
@pytest.mark.slow  # CI time: runs in make test-all
def test_classify_through_the_c_simulation(tiny_prep, images, tmp_path, caffe) -> None:
    """The hls4ml C simulation's own output stream equals the golden model's scores; the
    same built backend then serves ``eval --csim``."""
    from hls.infer.evaluate import evaluate

    backend = CsimBackend(tiny_prep, log=lambda *a: None)
    frames = [Frame(str(p), caffe(p, 35, 39)) for p in images]
    codes = Classifier(tiny_prep, backend).codes(frames)
    gap = tiny_prep.nodes[-1].name
    for fr, got in zip(frames, codes, strict=True):
        np.testing.assert_array_equal(got, run_golden(tiny_prep.nodes, tiny_prep.plan,
                                                      fr.pixels)[gap])
    assert backend.checked.frames == 2 and backend.checked.compared > 0
    assert backend.checked.mismatches == 0, backend.checked.first_mismatch
    data = tmp_path / "flat"
    data.mkdir()
    for p in images:
        (data / p.name).write_bytes(p.read_bytes())
    res = evaluate(tiny_prep, data, tmp_path / "out", csim=2, csim_backend=backend,
                   log=lambda *a: None)
    assert res.csim["frames"] == 2 and res.csim["compared"] > 0
    assert res.csim["mismatches"] == 0
    assert f"csim: 2 frames, {res.csim['compared']} outputs compared, 0 mismatches" in res.lines()


@pytest.mark.rtl
def test_classify_through_the_rtl(tiny_prep) -> None:
    frames = tiny_prep.frames[:2]
    clf = Classifier(tiny_prep, "rtl", log=lambda *a: None)
    codes = clf.codes(frames)
    gap = tiny_prep.nodes[-1].name
    for fr, got in zip(frames, codes, strict=True):
        np.testing.assert_array_equal(got, run_golden(tiny_prep.nodes, tiny_prep.plan,
                                                      fr.pixels)[gap])
    assert clf.backend.checked.compared == 2 * tiny_prep.spec.classes
    assert clf.backend.checked.mismatches == 0


def test_log_softmax_is_the_log_of_the_softmax_and_stays_finite():
    x = np.array([[1.5, -0.25, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    e = np.exp(x)
    np.testing.assert_allclose(log_softmax(x), np.log(e / e.sum(axis=1, keepdims=True)),
                               rtol=1e-12)
    # softmax underflows to 0 for the second class; its log is still the exact -1000
    np.testing.assert_allclose(log_softmax(np.array([1000.0, 0.0])), [0.0, -1000.0],
                               atol=1e-12)
