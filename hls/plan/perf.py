"""Performance report of a folded pipeline: per layer MACs, multipliers, cycles per frame.

The pipeline's throughput is set by its slowest block (the bottleneck); its efficiency is
``MACs per frame / (multipliers x cycles per frame)``: the share of multiplier-cycles that do
useful work. A measured cycles-per-frame figure from RTL simulation, when given, replaces
the model's estimate in the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hls.plan.folding import LayerFolding

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
        return sum(f.multipliers for f in self.layers)

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
        """One multiplier per DSP slice, every slice busy every cycle."""
        return self.clock_mhz * 1e6 * self.dsp / self.macs

    def format(self) -> str:
        b = self.bottleneck.cycles
        lines = [f"{'layer':<20} {'MACs':>12} {'PE':>5} {'SIMD':>5} {'mult':>6} "
                 f"{'cycles':>9} {'of bottleneck':>13}"]
        for f in self.layers:
            lines.append(f"{f.name:<20} {f.macs:>12,d} {f.pe:>5} {f.simd:>5} "
                         f"{f.multipliers:>6} {f.cycles:>9,d} {f.cycles / b:>12.0%}")
        source = "measured in RTL simulation" if self.measured_cycles else "estimated"
        lines += [
            f"MACs per frame: {self.macs:,d}; multipliers: {self.multipliers} "
            f"(of {self.dsp} DSP slices)",
            f"cycles per frame: {self.cycles_per_frame:,d} ({source}); bottleneck "
            f"{self.bottleneck.name} at {b:,d} (estimate)",
            f"pipeline efficiency: {self.efficiency:.1%} of the instantiated multipliers",
            f"projected: {self.fps:,.0f} frames/s at {self.clock_mhz:g} MHz "
            f"({1e3 / self.fps:.2f} ms between frames)",
            f"anchors: DPU on ZCU102 ~{DPU_ZCU102_FPS:,.0f} frames/s; one multiplier per DSP "
            f"at {self.clock_mhz:g} MHz bounds any pipeline at {self.limit_fps:,.0f} frames/s",
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
