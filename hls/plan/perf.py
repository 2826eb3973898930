"""Performance report of a folded pipeline: per layer MACs, lanes, DSPs, cycles per frame.

The pipeline's throughput is set by its slowest block (the bottleneck); its efficiency is
``MACs per frame / (multiplier lanes x cycles per frame)``: the share of lane-cycles that do
useful work. Two lanes packed into one DSP48E2 make MACs per DSP per cycle up to 2. A
measured cycles-per-frame figure from RTL simulation, when given, replaces the model's
estimate in the totals. The hls4ml project takes the valid reuse factor nearest to each
block's RTL folding; the report shows both and where they differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hls.plan.folding import LayerFolding, hls_reuse_factor

# DESIGN.md anchors (SqueezeNet-class, 8-bit): AMD DPU on ZCU102 (3 x B4096 @ 281 MHz).
DPU_ZCU102_FPS = 1035.0


@dataclass
class PerfReport:
    name: str
    layers: list[LayerFolding]
    clock_mhz: float
    dsp: int
    measured_cycles: int | None = None

    @property
    def macs(self) -> int:
        return sum(f.macs for f in self.layers)

    @property
    def multipliers(self) -> int:
        """Multiplier lanes."""
        return sum(f.multipliers for f in self.layers)

    @property
    def dsps(self) -> int:
        return sum(f.dsps for f in self.layers)

    @property
    def macs_per_dsp_cycle(self) -> float:
        return self.macs / (self.dsps * self.cycles_per_frame)

    @property
    def bottleneck(self) -> LayerFolding:
        return max(self.layers, key=lambda f: f.cycles)

    @property
    def cycles_per_frame(self) -> int:
        return self.measured_cycles or self.bottleneck.cycles

    @property
    def efficiency(self) -> float:
        return self.macs / (self.multipliers * self.cycles_per_frame)

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles_per_frame

    @property
    def limit_fps(self) -> float:
        """Two 8-bit MACs per DSP slice, every slice busy every cycle."""
        return self.clock_mhz * 1e6 * 2 * self.dsp / self.macs

    def hls_differences(self) -> list[str]:
        """Blocks whose hls4ml reuse factor differs from the RTL's SF * NF, with the cycles."""
        out = []
        for f in self.layers:
            rf = hls_reuse_factor(f)
            if rf != f.reuse_factor:
                hls_cycles = max(f.pixels * rf, f.in_pixels)
                out.append(f"{f.name}: RTL {f.reuse_factor} cycles/pixel ({f.cycles:,d}/frame), "
                           f"hls4ml RF {rf} ({hls_cycles:,d}/frame, "
                           f"{hls_cycles / f.cycles - 1:+.0%})")
        return out

    def format(self) -> str:
        b = self.bottleneck.cycles
        lines = [f"{'layer':<20} {'MACs':>12} {'PE':>5} {'SIMD':>5} {'lanes':>6} {'DSP':>5} "
                 f"{'cycles':>9} {'of bottleneck':>13} {'RTL RF':>7} {'hls4ml RF':>9}"]
        for f in self.layers:
            lines.append(f"{f.name:<20} {f.macs:>12,d} {f.pe:>5} {f.simd:>5} "
                         f"{f.multipliers:>6} {f.dsps:>5} {f.cycles:>9,d} {f.cycles / b:>12.0%} "
                         f"{f.reuse_factor:>7} {hls_reuse_factor(f):>9}")
        source = "measured in RTL simulation" if self.measured_cycles else "estimated"
        diffs = self.hls_differences()
        lines += [
            f"MACs per frame: {self.macs:,d}; multiplier lanes: {self.multipliers} in "
            f"{self.dsps} DSP slices (of {self.dsp}; two lanes per DSP where PE is even)",
            f"cycles per frame: {self.cycles_per_frame:,d} ({source}); bottleneck "
            f"{self.bottleneck.name} at {b:,d} (estimate)",
            f"pipeline efficiency: {self.efficiency:.1%} of the multiplier lanes; "
            f"{self.macs_per_dsp_cycle:.2f} MACs per DSP per cycle",
            f"projected: {self.fps:,.0f} frames/s at {self.clock_mhz:g} MHz "
            f"({1e3 / self.fps:.2f} ms between frames)",
            f"anchors: DPU on ZCU102 ~{DPU_ZCU102_FPS:,.0f} frames/s; two MACs per DSP on "
            f"every slice at {self.clock_mhz:g} MHz bounds any pipeline at "
            f"{self.limit_fps:,.0f} frames/s",
            "hls4ml reuse factors: " + ("the same as the RTL folding" if not diffs else
                                        f"{len(diffs)} differ from the RTL folding (hls4ml's "
                                        "valid set):\n  " + "\n  ".join(diffs)),
        ]
        return "\n".join(lines)

    def plot(self, path: Path) -> Path:
        """Bar chart of cycles per frame per layer (multipliers on a second axis)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [f.name.replace("_squeeze1x1", " s").replace("_expand1x1", " e1")
                 .replace("_expand3x3", " e3") for f in self.layers]
        fig, ax = plt.subplots(figsize=(12, 4.5))
        ax.bar(range(len(names)), [f.cycles for f in self.layers], color="#4477aa")
        ax.axhline(self.cycles_per_frame, color="#cc3311", lw=1,
                   label=f"cycles/frame {self.cycles_per_frame:,d}")
        ax.set_ylabel("cycles per frame")
        ax.set_xticks(range(len(names)), names, rotation=70, fontsize=8)
        ax2 = ax.twinx()
        ax2.plot(range(len(names)), [f.multipliers for f in self.layers], "o-",
                 color="#228833", ms=3, label="multipliers")
        ax2.set_ylabel("multipliers (PE x SIMD)")
        ax.set_title(f"{self.name}: {self.fps:,.0f} frames/s at {self.clock_mhz:g} MHz, "
                     f"efficiency {self.efficiency:.0%}")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def perf_report(name: str, folding: dict[str, LayerFolding], clock_mhz: float, dsp: int,
                measured_cycles: int | None = None) -> PerfReport:
    return PerfReport(name, list(folding.values()), clock_mhz, dsp, measured_cycles)
