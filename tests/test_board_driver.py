"""The board driver (hls.infer.board) against the RTL: the AXI-wrapped top of
configs/tiny.yaml Verilated with a model of the block design around it (the DMA, the PS's
AXI-Lite master: firmware/sim/sqz_axi_tb.cpp) and offered to the driver through PYNQ's
calls (sim.board_sim.SimOverlay). Three real photos give the same class scores through the
golden model, the RTL backend and the driver; a frame of the wrong length times out with a
register dump that names the cause, and the next frame still classifies. The identity and
format checks, the hang diagnosis and a missing PYNQ run on fake transports."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hls import cli
from hls.infer.board import (
    BoardBackend,
    BoardDriver,
    BoardError,
    BoardFormat,
    BoardHang,
)
from hls.infer.classify import Classifier, GoldenBackend, RtlBackend
from hls.rtl.axi import ID_VALUE, REGISTERS, VERSION_VALUE
from model.errors import CheckFailed, ToolNotFound
from model.photos import bundled_photos
from sim.rtl_frames import rtl_scores

PHOTOS = ("chelsea", "coffee", "astronaut")
# The driver's timeout in simulated cycles (the sim's clock): ~12x tiny's frame latency
# (~24k cycles), so a hang is declared after the same work on any machine.
TIMEOUT_CYCLES = 300_000


def _quiet(*_a) -> None:
    pass


@pytest.fixture(scope="module")
def photo_paths(tmp_path_factory) -> list[Path]:
    """Three bundled photos written as image files (JPEG, PNG, JPEG)."""
    out = tmp_path_factory.mktemp("board_photos")
    rgb = {p.name: p.rgb for p in bundled_photos()}
    paths = []
    for name, ext in zip(PHOTOS, (".jpg", ".png", ".jpg"), strict=True):
        path = out / f"{name}{ext}"
        Image.fromarray(rgb[name]).save(path)
        paths.append(path)
    return paths


def build_wrapped(prep):
    """The wrapped top of ``prep`` generated and its harness built (cached by digest)."""
    from hls.rtl.axi import generate_axi_top
    from sim import board_sim
    from sim.network import prepare_network, rtl_dir

    t0 = time.perf_counter()
    _, design, _ = prepare_network(prep.spec, frames=1, prep=prep)
    axi = generate_axi_top(design, prep, rtl_dir(prep.spec))
    binary, build_s = board_sim.build(axi, prep.spec.name)
    print(f"{axi.module}: {len(axi.sources)} sources, harness "
          + (f"built in {build_s:.1f} s" if build_s else "reused")
          + f" ({time.perf_counter() - t0:.1f} s with the RTL generation)")
    return axi, binary


@pytest.fixture(scope="module")
def wrapped(tiny_prep):
    return build_wrapped(tiny_prep)


def sim_driver(ov, prep, timeout_cycles: int = TIMEOUT_CYCLES) -> BoardDriver:
    return BoardDriver(ov.dma, ov.sqz, ov.allocate, BoardFormat.of(prep), reset=True,
                       timeout_s=timeout_cycles / (ov.clock_mhz * 1e6), clock=ov.seconds)


def overlay(binary, prep, **kw):
    from sim.board_sim import SimOverlay

    return SimOverlay(binary, clock_mhz=prep.spec.target.clock_mhz, **kw)


# ------------------------------------------------------------------ against the RTL


@pytest.mark.rtl
def test_the_wrapper_reports_the_networks_format(tiny_prep, wrapped) -> None:
    axi, _ = wrapped
    fmt = BoardFormat.of(tiny_prep)
    assert (axi.frame_bytes, axi.out_bytes, axi.classes, axi.field_bits, axi.score_bits,
            axi.score_signed) == (fmt.frame_bytes, fmt.out_bytes, fmt.classes,
                                  fmt.field_bits, fmt.score_bits, fmt.signed)
    assert (fmt.frame_bytes, fmt.out_bytes, fmt.field_bits) == (35 * 35 * 3, 20, 16)


@pytest.mark.rtl
def test_three_photos_through_the_driver_equal_golden_and_rtl(tiny_prep, wrapped,
                                                             photo_paths) -> None:
    _, binary = wrapped
    golden_clf = Classifier(tiny_prep, log=_quiet)
    frames = golden_clf.load_all(photo_paths)
    golden = GoldenBackend(tiny_prep).run(frames)
    rtl = RtlBackend(tiny_prep, log=_quiet).run(frames)
    _, fig = rtl_scores(tiny_prep, frames)   # the bare core's cycles a frame
    with overlay(binary, tiny_prep) as ov:
        drv = sim_driver(ov, tiny_prep)
        t0, c0 = time.perf_counter(), ov.cycles
        board = drv.classify(frames)
        regs = drv.registers()
        print(f"driver: {len(frames)} frames in {time.perf_counter() - t0:.2f} s, "
              f"{ov.cycles - c0:,d} cycles; LAST_LATENCY {regs['LAST_LATENCY']:,d}, "
              f"LAST_INTERVAL {regs['LAST_INTERVAL']:,d} cycles (the core alone: "
              f"{fig['cycles_per_frame']:,d} cycles a frame)")
        assert board.dtype == np.int64 and board.shape == (3, tiny_prep.spec.classes)
        print(f"compared {board.size} scores: driver == golden == rtl")
        np.testing.assert_array_equal(board, golden)
        np.testing.assert_array_equal(rtl, golden)
        assert (regs["FRAMES_IN"], regs["FRAMES_OUT"], regs["FRAMES_DROPPED"]) == (3, 3, 0)
        assert regs["STATUS"] == 0
        # the driver streams the frames: the wrapped top runs at the core's own interval
        assert regs["LAST_INTERVAL"] == fig["cycles_per_frame"] < regs["LAST_LATENCY"]

        # the classify API over the driver: the same top-5 as the golden model's
        preds = Classifier(tiny_prep, BoardBackend(tiny_prep, drv), log=_quiet).classify(
            photo_paths)
        want = golden_clf.classify(photo_paths)
        assert [p.image for p in preds] == [str(p) for p in photo_paths]
        for got, exp in zip(preds, want, strict=True):
            assert [c.index for c in got.top] == [c.index for c in exp.top]
            assert [c.prob for c in got.top] == [c.prob for c in exp.top]
            np.testing.assert_array_equal(got.codes, exp.codes)


@pytest.mark.rtl
def test_a_short_or_long_frame_times_out_with_a_register_dump(tiny_prep, wrapped,
                                                             photo_paths) -> None:
    _, binary = wrapped
    frames = Classifier(tiny_prep, log=_quiet).load_all(photo_paths[:2])
    golden = GoldenBackend(tiny_prep).run(frames)
    data = frames[0].pixels.tobytes()
    with overlay(binary, tiny_prep) as ov:
        drv = sim_driver(ov, tiny_prep)
        c0 = ov.cycles
        with pytest.raises(BoardHang) as short:
            drv.run_bytes(data[:-101], "short frame")
        msg = str(short.value)
        print(msg)
        assert ov.cycles - c0 >= TIMEOUT_CYCLES    # it waited the timeout, then gave up
        assert isinstance(short.value, CheckFailed) and short.value.exit_code == 1
        assert "no scores for short frame" in msg
        assert "STATUS=0x00000001 (ERR_SHORT)" in msg and "FRAMES_DROPPED=1 " in msg
        assert "likely cause: ERR_SHORT" in msg and "(sent 3,574)" in msg
        for name in REGISTERS:   # every register by name, CONTROL (write-only) aside
            assert name == "CONTROL" or f"{name}=" in msg
        # the receive transfer the short frame left armed takes the next frame's scores
        np.testing.assert_array_equal(drv.classify(frames[:1]), golden[:1])

        with pytest.raises(BoardHang) as long_:
            drv.run_bytes(data + bytes(13), "long frame")
        msg = str(long_.value)
        assert "STATUS=0x00000002 (ERR_LONG)" in msg and "FRAMES_DROPPED=2 " in msg
        assert "likely cause: ERR_LONG" in msg
        np.testing.assert_array_equal(drv.classify(frames[1:]), golden[1:])
        regs = drv.registers()
        assert (regs["FRAMES_IN"], regs["FRAMES_OUT"], regs["FRAMES_DROPPED"]) == (2, 2, 2)


@pytest.mark.rtl
def test_sqz_classify_backend_board_through_a_stand_in_pynq(tiny_prep, wrapped, photo_paths,
                                                            monkeypatch, capsys,
                                                            tmp_path) -> None:
    """The command line end to end: ``pynq`` is a stand-in module whose Overlay is the
    simulated board; the JSON equals the golden backend's."""
    import json
    import types

    from sim.board_sim import SimOverlay

    _, binary = wrapped
    bitfile = tmp_path / "tiny.bit"
    bitfile.write_bytes(b"not a real bitstream")
    loaded = []

    def load(path):
        loaded.append(path)
        return ov

    monkeypatch.setitem(sys.modules, "pynq", types.SimpleNamespace(
        Overlay=load, allocate=SimOverlay.allocate))
    monkeypatch.setattr("hls.plan.prepare.prepare", lambda spec, log=print, demo=True: tiny_prep)
    images = [str(p) for p in photo_paths]
    assert cli.main(["classify", "--config", "tiny", *images, "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    with overlay(binary, tiny_prep) as ov:
        assert cli.main(["classify", "--config", "tiny", *images, "--json", "--backend",
                         "board", "--bitfile", str(bitfile)]) == 0
        regs = BoardDriver(ov.dma, ov.sqz, ov.allocate).registers()
    out = capsys.readouterr()
    assert loaded == [str(bitfile)] and json.loads(out.out) == want
    assert "backend board" in out.err and f"board: {bitfile} loaded, FRAME_BYTES 3,675" in out.err
    assert (regs["FRAMES_IN"], regs["FRAMES_OUT"], regs["FRAMES_DROPPED"]) == (3, 3, 0)


@pytest.mark.rtl
def test_random_stalls_on_both_streams(tiny_prep, wrapped) -> None:
    """The DMA model drops TVALID (30 %) and TREADY (50 %) at random: same scores."""
    _, binary = wrapped
    frames = tiny_prep.frames[:3]
    with overlay(binary, tiny_prep, idle=0.3, backpressure=0.5, seed=5) as ov:
        drv = sim_driver(ov, tiny_prep)
        np.testing.assert_array_equal(drv.classify(frames),
                                      GoldenBackend(tiny_prep).run(frames))


# ------------------------------------------------------------------ fake transports


class FakeChannel:
    def __init__(self, done: bool = True) -> None:
        self.done, self.transfers = done, []

    def transfer(self, buf) -> None:
        self.transfers.append(np.array(buf))

    @property
    def idle(self) -> bool:
        return self.done and bool(self.transfers)

    def wait(self) -> None:
        assert self.idle   # the driver calls it only once idle: PYNQ's would spin forever


class FakeBoard:
    """Registers in a dict, a DMA whose receive channel never completes."""

    def __init__(self, prep, **regs) -> None:
        fmt = BoardFormat.of(prep)
        self.regs = {name: 0 for name in REGISTERS}
        self.regs.update({"ID": ID_VALUE, "VERSION": VERSION_VALUE,
                          "FRAME_BYTES": fmt.frame_bytes, "OUT_BYTES": fmt.out_bytes,
                          "OUT_FORMAT": fmt.out_format, **regs})
        self.sendchannel, self.recvchannel = FakeChannel(), FakeChannel(done=False)
        self.by_offset = {off: name for name, off in REGISTERS.items()}

    def read(self, offset: int) -> int:
        return self.regs[self.by_offset[offset]]

    def write(self, offset: int, value: int) -> None:
        self.regs.setdefault("_writes", []).append((self.by_offset[offset], value))

    @staticmethod
    def allocate(shape, dtype):
        return np.zeros(shape, dtype)

    def driver(self, prep, **kw) -> BoardDriver:
        return BoardDriver(self, self, self.allocate, BoardFormat.of(prep), **kw)


def test_the_id_and_version_checks_refuse_another_design(tiny_prep) -> None:
    with pytest.raises(BoardError, match=r"reads ID 0x12345678, expected 0x53515A4E "
                                         r"\(\"SQZN\"\): the loaded bitstream does not hold"):
        FakeBoard(tiny_prep, ID=0x12345678).driver(tiny_prep)
    with pytest.raises(BoardError, match=r"VERSION 0x00020000 \(major 2\), this driver "
                                         r"speaks major 1"):
        FakeBoard(tiny_prep, VERSION=0x00020000).driver(tiny_prep)
    FakeBoard(tiny_prep, VERSION=0x00010003).driver(tiny_prep)   # a minor version is fine


def test_a_format_mismatch_names_both(tiny_prep) -> None:
    fmt = BoardFormat.of(tiny_prep)
    other = BoardFormat(227 * 227 * 3, 2000, 1000, 16, 14, True)
    with pytest.raises(BoardError) as err:
        FakeBoard(tiny_prep, FRAME_BYTES=other.frame_bytes, OUT_BYTES=other.out_bytes,
                  OUT_FORMAT=other.out_format).driver(tiny_prep)
    msg = str(err.value)
    assert ("board FRAME_BYTES 154,587, OUT_BYTES 2,000, 1000 classes in 16-bit fields "
            "(14-bit signed scores); network FRAME_BYTES 3,675, OUT_BYTES 20, 10 classes in "
            "16-bit fields (16-bit unsigned scores)") in msg
    assert fmt.describe() in msg and BoardFormat.from_registers(
        fmt.frame_bytes, fmt.out_bytes, fmt.out_format) == fmt


def test_the_hang_dump_names_a_stopped_clock_and_frames_in_flight(tiny_prep) -> None:
    board = FakeBoard(tiny_prep, CYCLES=777, FRAMES_IN=5, FRAMES_OUT=3, STATUS=0b10100)
    drv = board.driver(tiny_prep, timeout_s=0.05)
    frame = tiny_prep.frames[0]
    t0 = time.perf_counter()
    with pytest.raises(BoardHang) as err:
        drv.classify([frame])
    assert 0.05 <= time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert f"no scores for {frame.name} within 0.05 s" in msg
    assert "STATUS=0x00000014 (IN_FRAME|OUT_FRAME)" in msg and "CYCLES=777 then 777" in msg
    assert "CYCLES did not advance between two reads" in msg
    assert "2 frame(s) stuck in flight: FRAMES_IN 5 but FRAMES_OUT 3" in msg
    # the frame went out whole, in the pixel order, after the flags were cleared
    assert board.sendchannel.transfers[0].tobytes() == frame.pixels.tobytes()
    assert board.regs["_writes"][0] == ("STATUS", 0b11)
    # the receive channel stays armed: the next call does not arm it twice
    with pytest.raises(BoardHang):
        drv.classify([frame])
    assert len(board.recvchannel.transfers) == 1 and len(board.sendchannel.transfers) == 2


def test_a_dma_error_is_a_board_error_with_the_dump(tiny_prep) -> None:
    board = FakeBoard(tiny_prep)
    drv = board.driver(tiny_prep)

    def refuse(buf):
        raise RuntimeError("DMA channel not idle")

    board.sendchannel.transfer = refuse
    with pytest.raises(BoardError, match=r"astronaut: the DMA send channel: DMA channel not "
                                         r"idle; registers: ID=0x53515A4E VERSION="):
        drv.classify(tiny_prep.frames[:1])


def test_scores_decode_as_signed_or_unsigned_fields() -> None:
    raw = np.array([-3, 5, -128, 127], "<i2").view(np.uint8)
    signed = BoardFormat(12, 8, 4, 16, 9, True)
    np.testing.assert_array_equal(signed.decode(raw), [-3, 5, -128, 127])
    unsigned = BoardFormat(12, 8, 4, 16, 16, False)
    np.testing.assert_array_equal(unsigned.decode(raw), [65533, 5, 65408, 127])
    eight = BoardFormat(12, 3, 3, 8, 8, True)
    np.testing.assert_array_equal(eight.decode(bytes([0xFF, 0x80, 0x7F])), [-1, -128, 127])
    with pytest.raises(BoardError, match="7 output bytes for a frame, expected OUT_BYTES 8"):
        signed.decode(raw[:7])


def test_without_pynq_the_board_backend_says_so(tiny_prep, photo_paths, monkeypatch,
                                               capsys) -> None:
    monkeypatch.setitem(sys.modules, "pynq", None)   # import pynq raises ImportError
    with pytest.raises(ToolNotFound, match=r"--backend board needs PYNQ \(the pynq package"):
        BoardDriver.open("build/board/zcu104/zcu104.bit", tiny_prep)
    def no_prepare(spec, log=print, demo=True):
        raise AssertionError("PYNQ is checked before the network is prepared")

    monkeypatch.setattr("hls.plan.prepare.prepare", no_prepare)
    image = str(photo_paths[0])
    assert cli.main(["classify", "--config", "tiny", image, "--backend", "board",
                     "--bitfile", "x.bit"]) == 1
    assert "error: --backend board needs PYNQ (the pynq package" in capsys.readouterr().err
    assert cli.main(["classify", "--config", "tiny", image, "--backend", "board"]) == 2
    assert capsys.readouterr().err == "error: --backend board needs --bitfile PATH\n"
    assert cli.main(["classify", "--config", "tiny", image, "--bitfile", "x.bit"]) == 2
    assert capsys.readouterr().err == "error: --bitfile is only for --backend board\n"


# ------------------------------------------------------------------ the full network


@pytest.mark.slow
@pytest.mark.rtl
def test_v1_1_through_the_driver(default_prep, photo_paths) -> None:
    """configs/squeezenet_v1_1.yaml: three photos, driver == golden == RTL; prints the
    build time, seconds a frame and the wrapper's latency and interval registers."""
    axi, binary = build_wrapped(default_prep)
    frames = Classifier(default_prep, log=_quiet).load_all(photo_paths)
    golden = GoldenBackend(default_prep).run(frames)
    t0 = time.perf_counter()
    rtl = RtlBackend(default_prep, log=_quiet).run(frames)
    rtl_s = time.perf_counter() - t0
    _, fig = rtl_scores(default_prep, frames)
    # the first frame's latency is ~215k cycles: time out after 4x that
    with overlay(binary, default_prep) as ov:
        drv = sim_driver(ov, default_prep, timeout_cycles=1_000_000)
        t0, c0 = time.perf_counter(), ov.cycles
        board = drv.classify(frames)
        wall = time.perf_counter() - t0
        regs = drv.registers()
    print(f"{axi.module}: {len(frames)} frames in {wall:.1f} s ({wall / len(frames):.1f} s a "
          f"frame, {ov.cycles - c0:,d} cycles); rtl backend {rtl_s:.1f} s; LAST_LATENCY "
          f"{regs['LAST_LATENCY']:,d}, LAST_INTERVAL {regs['LAST_INTERVAL']:,d} cycles (the "
          f"core alone: {fig['cycles_per_frame']:,d} cycles a frame, first frame "
          f"{fig['first_frame_latency_cycles']:,d})")
    print(f"compared {board.size} scores: driver == golden == rtl")
    np.testing.assert_array_equal(board, golden)
    np.testing.assert_array_equal(rtl, golden)
    assert (regs["FRAMES_IN"], regs["FRAMES_OUT"], regs["FRAMES_DROPPED"]) == (3, 3, 0)
    assert regs["LAST_INTERVAL"] == fig["cycles_per_frame"]
