"""The full default network (SqueezeNet v1.1, pretrained weights, 227x227 frames) through
hls4ml C simulation, every layer output checked against the golden model: what `make csim`
does, on two photos. About 80 s on two cores (g++ of the whole project, ~7 s of C
simulation per frame); the first run downloads the weights into build/weights."""

from __future__ import annotations

import pytest

from model.paths import DEFAULT_CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.csim]


def test_default_network_csim_bit_exact(tmp_path):
    from hls.hls4ml_backend.csim import build_project, run_csim
    from hls.plan.prepare import prepare
    from model.spec import load_spec

    prep = prepare(load_spec(DEFAULT_CONFIG), log=lambda *a: None)
    assert prep.spec.name == "squeezenet_v1_1" and prep.spec.classes == 1000
    _, hls_model = build_project(prep, out_dir=tmp_path / "squeezenet_v1_1",
                                 log=lambda *a: None)
    res = run_csim(prep, hls_model, prep.frames[:2])
    print(f"\nfull v1.1 csim: {res.frames} frames, {res.compared} outputs compared, "
          f"{res.mismatches} mismatches")
    assert res.frames == 2
    assert res.compared > 0
    assert res.mismatches == 0, res.first_mismatch
