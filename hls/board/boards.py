"""The boards ``make bitstream`` targets: each a Zynq UltraScale+ MPSoC, so one block design
(PS ``zynq_ultra_ps_e_0`` with the board preset, an AXI DMA, the wrapped network) fits all.

Board part strings are those of AMD's board files (Vivado's board store, XHub): the
ZCU102 rev 3.4, ZCU104 1.1 and Kria KV260 SOM 1.4 files, as public Vivado project
scripts name them. The generated Tcl falls back to the newest installed file version of
the same board when that exact version is not installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from model.errors import InputError
from model.spec import check_part

# A board name as the command line and the Makefile give it (also a folder name and a
# word of the Tcl): lower-case letters and digits.
BOARD_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# vendor:board:component:file_version, e.g. xilinx.com:zcu102:part0:3.4
BOARD_PART = re.compile(r"[a-z0-9.]{1,32}:[a-z0-9_]{1,32}:part[0-9]:[0-9]{1,3}\.[0-9]{1,3}")


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    part: str
    board_part: str

    @property
    def board_part_any_version(self) -> str:
        """The board part with its file version replaced by ``*`` (a Vivado pattern)."""
        return self.board_part.rsplit(":", 1)[0] + ":*"


BOARDS: dict[str, Board] = {
    "zcu102": Board("zcu102", "AMD Zynq UltraScale+ MPSoC ZCU102 Evaluation Kit",
                    "xczu9eg-ffvb1156-2-e", "xilinx.com:zcu102:part0:3.4"),
    "zcu104": Board("zcu104", "AMD Zynq UltraScale+ MPSoC ZCU104 Evaluation Kit",
                    "xczu7ev-ffvc1156-2-e", "xilinx.com:zcu104:part0:1.1"),
    "kv260": Board("kv260", "AMD Kria KV260 Vision AI Starter Kit (K26 SOM)",
                   "xck26-sfvc784-2LV-c", "xilinx.com:kv260_som:part0:1.4"),
}

# The Zynq UltraScale+ PS (zynq_ultra_ps_e) as the block design uses it, the same on every
# board above. The PS IP names its AXI ports by the GP number: M_AXI_HPM0_FPD is GP0,
# M_AXI_HPM1_FPD GP1, M_AXI_HPM0_LPD GP2 (master side); S_AXI_HP0_FPD is GP2 (slave side).
PS_CELL = "zynq_ultra_ps_e_0"
PS_VLNV = "xilinx.com:ip:zynq_ultra_ps_e"
PS_RULE = "xilinx.com:bd_rule:zynq_ultra_ps_e"
PS_MASTER = "M_AXI_HPM0_FPD"          # control: the DMA's and the wrapper's AXI-Lite
PS_MASTER_CLOCK = "maxihpm0_fpd_aclk"
PS_HP = "S_AXI_HP0_FPD"               # memory: the DMA's MM2S and S2MM masters
PS_HP_CLOCK = "saxihp0_fpd_aclk"
PS_CLOCK = "pl_clk0"                  # the fabric clock, at the spec's clock_mhz
PS_RESET = "pl_resetn0"
# CONFIG.* of the PS set after the board preset: HPM0 FPD on, HPM1 FPD and HPM0 LPD off
# (an enabled master port with an unconnected clock fails validation), HP0 FPD on at the
# DMA's memory width, PL clock 0 and the fabric reset on.
PS_CONFIG_MASTER = "PSU__USE__M_AXI_GP0"
PS_CONFIG_OFF = ("PSU__USE__M_AXI_GP1", "PSU__USE__M_AXI_GP2")
PS_CONFIG_HP = "PSU__USE__S_AXI_GP2"
PS_CONFIG_HP_WIDTH = "PSU__SAXIGP2__DATA_WIDTH"
PS_CONFIG_PL0 = "PSU__FPGA_PL0_ENABLE"
PS_CONFIG_PL0_MHZ = "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"
PS_CONFIG_FABRIC_RESET = "PSU__USE__FABRIC__RST"


def board_info(name: object) -> Board:
    """The board called ``name``; anything else is refused with the known names."""
    if not isinstance(name, str) or not BOARD_NAME.fullmatch(name) or name not in BOARDS:
        raise InputError(f"--board: {name!r} is not a supported board; supported: "
                         f"{', '.join(BOARDS)}")
    board = BOARDS[name]
    check_part(f"board {name} part", board.part)
    if not BOARD_PART.fullmatch(board.board_part):
        raise InputError(f"board {name}: board part {board.board_part!r} is malformed")
    return board
