"""Network spec validation and the paper's parameter counts."""

import pytest

from model.graph import build_graph, macs_per_frame, parameter_count, pool_out_ceil
from model.spec import SpecError, load_spec, spec_from_dict

REPO_CONFIGS = ["configs/squeezenet_v1_0.yaml", "configs/squeezenet_v1_1.yaml", "configs/tiny.yaml"]


def count(**raw) -> int:
    return parameter_count(build_graph(spec_from_dict({"weights": "random", **raw})))


def test_paper_parameter_counts():
    # Paper, Section 3.3 / Table 1 (weights + biases).
    assert count(variant="v1.0") == 1_248_424
    assert count(variant="v1.1") == 1_235_496


def formula_params(sr: float, pct: float, variant: str = "v1.0") -> int:
    """Independent count from the metaparameter formula, written out per Fire module."""
    c_in = 96 if variant == "v1.0" else 64
    k1 = 7 if variant == "v1.0" else 3
    total = k1 * k1 * 3 * c_in + c_in
    for i in range(8):
        e = 128 + 128 * (i // 2)
        e3 = int(e * pct + 0.5)
        e1 = e - e3
        s = int(sr * e + 0.5)
        total += c_in * s + s + s * e1 + e1 + 9 * s * e3 + e3
        c_in = e1 + e3
    return total + c_in * 1000 + 1000


@pytest.mark.parametrize("sr", [0.125, 0.25, 0.5, 0.75])
def test_squeeze_ratio_sweep(sr):
    assert count(variant="v1.0", metaparameters={"SR": sr}) == formula_params(sr, 0.5)


def test_sr_075_reported_against_paper():
    # The paper quotes 4.75M parameters at SR = 0.75; its own formula gives 4,841,704.
    n = count(variant="v1.0", metaparameters={"SR": 0.75})
    assert n == 4_841_704
    assert abs(n - 4.75e6) / 4.75e6 < 0.02


@pytest.mark.parametrize("pct", [0.01, 0.25, 0.5, 0.75, 0.99])
def test_pct3x3_sweep(pct):
    assert count(variant="v1.0", metaparameters={"pct3x3": pct}) == formula_params(0.125, pct)


def test_v11_geometry():
    nodes = build_graph(spec_from_dict({"variant": "v1.1", "weights": "random"}))
    shapes = {n.name: n.out_shape for n in nodes}
    assert shapes["conv1"] == (113, 113, 64)
    assert shapes["pool_conv1"] == (56, 56, 64)
    assert shapes["pool_fire3"] == (28, 28, 128)
    assert shapes["pool_fire5"] == (14, 14, 256)
    assert shapes["conv10"] == (14, 14, 1000)
    assert shapes["gap"] == (1, 1, 1000)
    # Anchors in DESIGN.md: 388M MACs (v1.1) and 833M (v1.0) at 227x227.
    assert round(macs_per_frame(nodes) / 1e6) == 388
    v10 = build_graph(spec_from_dict({"variant": "v1.0", "weights": "random"}))
    assert round(macs_per_frame(v10) / 1e6) == 833


def test_pool_out_ceil_matches_caffe():
    assert [pool_out_ceil(s) for s in (113, 56, 28, 111, 55, 27, 7, 8, 3)] == \
        [56, 28, 14, 55, 27, 13, 3, 4, 1]


@pytest.mark.parametrize("path", REPO_CONFIGS)
def test_repository_configs_load(path):
    spec = load_spec(path)
    assert build_graph(spec)[-1].kind == "gap"


@pytest.mark.parametrize("raw, message", [
    ({"colour": 1}, r"spec: unknown key\(s\) 'colour'; allowed: .*variant"),
    ({"variant": "v2"}, r"variant: 'v2' is not allowed; allowed: v1.0, v1.1, custom"),
    ({"metaparameters": {"SR": 2.0}, "weights": "random"}, r"metaparameters.SR: must lie"),
    ({"metaparameters": {"sr": 0.5}}, r"metaparameters: unknown key\(s\) 'sr'"),
    ({"metaparameters": {"pct3x3": "half"}}, r"metaparameters.pct3x3: expected float"),
    ({"target": {"backend": "Quartus"}}, r"target.backend: 'Quartus' is not allowed"),
    ({"quantization": {"weight_bits": 4}}, r"weight_bits and activation_bits must be 8"),
    ({"quantization": {"classifier_bits": 20}},
     r"quantization.classifier_bits: must be 8..16 \(activation_bits..logit_bits\), got 20"),
    ({"quantization": {"classifier_bits": 7}}, r"quantization.classifier_bits: must be 8..16"),
    ({"input": {"height": 0}}, r"input.height: expected a positive integer"),
    ({"classes": 10}, r"weights: 'imagenet' exists only for the standard SqueezeNet v1.1"),
    ({"variant": "custom", "weights": "random"}, r"variant 'custom' needs 'conv1'"),
    ({"pool_after": ["fire12"], "weights": "random"}, r"pool_after entry: 'fire12'"),
])
def test_bad_specs_are_refused_with_the_key(raw, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="config file not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
