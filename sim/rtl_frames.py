"""Any frames through the open RTL of a prepared network: the class scores the RTL computes.

``sim.network.prepare_network`` writes the golden vectors of a ``Prepared``'s own frames and
``sim.fast.run`` checks the RTL's scores against them; this runs the same two on frames
the caller chooses (a user's images, ``sqz classify --backend rtl``) and reads back the
scores themselves, not only their comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from hls.plan.prepare import Frame, Prepared


def rtl_scores(prep: Prepared, frames: Sequence[Frame]) -> tuple[np.ndarray, dict]:
    """Run ``frames`` through the Verilated top of ``prep`` (built when its sources changed,
    under ``build/sim/fast/<name>/``). Returns the RTL's class scores, int64 (frames x
    classes) codes of the logit format, and the figures of ``sim.fast.run`` (compared,
    mismatches against the golden model, cycles, ...). Raises ``sim.fast.SimError`` when the
    simulation does not finish."""
    from sim import fast
    from sim.network import prepare_network, rtl_dir

    if not frames:
        return np.zeros((0, prep.spec.classes), np.int64), {"frames": 0, "compared": 0,
                                                            "mismatches": 0}
    spec = prep.spec
    _, design, vectors = prepare_network(spec, prep=replace(prep, frames=list(frames)))
    fig = fast.run(design.top, design.sources() + [rtl_dir(spec) / f"{design.top}.v"],
                   vectors, spec.name)
    out = fast.fast_dir(spec.name)
    geo = fast.write_frames(vectors, out / "frames.bin")  # the file run() wrote, again
    scores, _ = fast.read_beats(out / "outputs.bin", geo)
    return scores, fig
