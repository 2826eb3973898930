"""FPGA parts the plan budgets against: block RAM, DSP slices and LUTs per device family."""

from __future__ import annotations

from dataclasses import dataclass

from model.errors import InputError
from model.spec import check_part


@dataclass(frozen=True)
class Part:
    name: str
    bram36: int
    dsp: int
    lut: int
    uram: int = 0
    # DSP48E2 (UltraScale+): its 27x18 multiplier takes two 8-bit weights packed with an
    # 18-bit offset, so two lanes that share an activation fit one slice. A DSP48E1
    # (7-series) multiplies only 25x18: no packing there.
    dsp_pack: bool = True

    @property
    def bram18(self) -> int:
        return 2 * self.bram36


PARTS = {
    "xczu9eg": Part("xczu9eg", 912, 2520, 274080),
    "xczu7ev": Part("xczu7ev", 312, 1728, 230400, 96),
    # Kria K26 SOM (KV260): the XCK26 has the ZU5EV's fabric.
    "xck26": Part("xck26", 144, 1248, 117120, 64),
    "xc7z020": Part("xc7z020", 140, 220, 53200, dsp_pack=False),
    "xcu250": Part("xcu250", 2688, 12288, 1728000, 1280),
}


def part_info(part: str) -> Part:
    check_part("part", part)
    for key, info in PARTS.items():
        if part.lower().startswith(key):
            return info
    raise InputError(f"unknown FPGA part {part!r}; known families: {', '.join(PARTS)} "
                     "(e.g. xczu9eg-ffvb1156-2-e)")
