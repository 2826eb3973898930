"""The whole-network bench against RTL exported by the vendor HLS tool (``make synth``),
through the stream adapter of ``hls/rtl/vendor.py``.

Where Vitis HLS / Vivado HLS has produced Verilog for the hls4ml project of the small spec,
the adapter wraps its top and the same cocotb bench (``sim.network_bench``) checks every
class score against the golden model; elsewhere that test skips and says why. The
adapter itself is checked on every machine against stand-ins with the vendor tools' port
styles (``sim/vendor_mock.py``: the open RTL top behind Vitis-style and Vivado-style
ports), which proves the adapter, not any vendor RTL.
"""

from __future__ import annotations

import numpy as np
import pytest

from hls.rtl.vendor import (
    VendorPortError,
    adapter_verilog,
    find_interface,
    parse_ports,
    write_adapter,
)
from model.paths import BUILD, HLS_PROJECT_NAME, REPO
from sim.network import run_network

pytestmark = pytest.mark.rtl


def exported_verilog(name: str = "tiny") -> list:
    found = []
    for backend in ("vitis", "vivado"):
        prj = BUILD / "hls" / f"{name}_{backend}"
        found += sorted(prj.glob("*_prj/solution1/impl/verilog/*.v"))
        found += sorted(prj.glob("*_prj/solution1/syn/verilog/*.v"))
    return found


@pytest.fixture(scope="module")
def tiny_vectors():
    """(spec, open-RTL design, vectors with one beat of all class scores per frame)."""
    from model.spec import load_spec
    from sim.network import prepare_network

    spec = load_spec(REPO / "configs" / "tiny.yaml")
    prep, design, vectors = prepare_network(spec, frames=4)
    v = dict(np.load(vectors))
    out_bits = int(v["out_bits"])
    v["out_lanes"] = np.array(spec.classes)   # the hls4ml top emits all scores at once
    path = vectors.parent / "vectors_vendor.npz"
    np.savez(path, **v)
    return spec, design, path, out_bits


# The Vivado-style stand-in (one stream per channel and per class, active-high reset) runs
# in make test-all, the Vitis-style one in the default suite (CI time).
@pytest.mark.parametrize("style", ["vitis", pytest.param("vivado", marks=pytest.mark.slow)])
def test_adapter_on_a_vendor_style_stand_in(style, tiny_vectors):
    from sim.vendor_mock import mock_vendor_top

    spec, design, vectors, out_bits = tiny_vectors
    out = vectors.parent / f"vendor_{style}"
    out.mkdir(exist_ok=True)
    mock = out / "squeezenet.v"
    mock.write_text(mock_vendor_top(style, design.top, spec.classes, out_bits))
    wrapper = f"sqz_vendor_{style}"
    wrapper_file = write_adapter([mock], HLS_PROJECT_NAME, wrapper, out, 3, 8, spec.classes,
                                 out_bits)
    fig = run_network(spec, design, vectors, "test_frames", toplevel=wrapper,
                      sources=[*design.sources(), vectors.parent / f"{design.top}.v", mock,
                               wrapper_file], build_name=f"vendor_{style}")
    print(f"\nadapter + {style}-style stand-in: {fig['frames']} frames, {fig['compared']} "
          f"outputs compared, {fig['mismatches']} mismatches")
    assert fig["frames"] == 4 and fig["compared"] == 4 * spec.classes
    assert fig["mismatches"] == 0


def test_vendor_exported_rtl_against_golden(tiny_vectors):
    files = exported_verilog()
    if not files:
        pytest.skip("no vendor-exported RTL under build/hls/tiny_*/*_prj/solution1: run "
                    "`make synth CONFIG=configs/tiny.yaml` where Vitis HLS or Vivado HLS is "
                    "installed")

    spec, design, vectors, out_bits = tiny_vectors
    out = vectors.parent / "vendor_exported"
    wrapper_file = write_adapter(files, HLS_PROJECT_NAME, "sqz_vendor_exported", out, 3, 8,
                                 spec.classes, out_bits)
    fig = run_network(spec, design, vectors, "test_frames", toplevel="sqz_vendor_exported",
                      sources=[*files, wrapper_file], build_name="vendor_exported")
    print(f"\nvendor RTL: {fig['frames']} frames, {fig['compared']} outputs compared, "
          f"{fig['mismatches']} mismatches")
    assert fig["compared"] > 0 and fig["mismatches"] == 0


VITIS_PORTS = """module squeezenet (ap_clk, ap_rst_n, ap_start, ap_done, frame_TDATA,
    frame_TVALID, frame_TREADY, out_TDATA, out_TVALID, out_TREADY{extra});
input ap_clk; input ap_rst_n; input ap_start; output ap_done;
input [23:0] frame_TDATA; input frame_TVALID; output frame_TREADY;
output [159:0] out_TDATA; output out_TVALID; input out_TREADY;{decl}
endmodule"""


def test_interface_recognition_and_refusals():
    ok = find_interface(parse_ports(VITIS_PORTS.format(extra="", decl=""), HLS_PROJECT_NAME),
                        HLS_PROJECT_NAME)
    assert ok.reset == "ap_rst_n" and ok.reset_active_low and ok.start == ["ap_start"]
    assert [c.data.width for c in ok.inputs + ok.outputs] == [24, 160]
    assert ok.ignored_outputs == ["ap_done"]
    text = adapter_verilog(ok, "w", 3, 8, 10, 16)
    assert ".ap_rst_n(!rst)" in text and ".ap_start(!rst)" in text
    unknown = VITIS_PORTS.format(extra=", s_axi_ctrl_AWADDR",
                                 decl="\ninput [4:0] s_axi_ctrl_AWADDR;")
    with pytest.raises(ValueError, match="does not know how to drive: s_axi_ctrl_AWADDR"):
        find_interface(parse_ports(unknown, HLS_PROJECT_NAME), HLS_PROJECT_NAME)
    with pytest.raises(ValueError, match="out_TDATA is 160 bits, narrower than 10 x 17"):
        adapter_verilog(ok, "w", 3, 8, 10, 17)
    with pytest.raises(ValueError, match="module 'other' not found"):
        parse_ports(VITIS_PORTS.format(extra="", decl=""), "other")


def test_packed_output_narrower_than_the_classes_is_refused():
    """A packed (Vitis-style) output carries every class score in one transfer: fewer
    lanes than scores would silently drop the high ones, so the adapter refuses."""
    ok = find_interface(parse_ports(VITIS_PORTS.format(extra="", decl=""), HLS_PROJECT_NAME),
                        HLS_PROJECT_NAME)
    with pytest.raises(VendorPortError) as err:
        adapter_verilog(ok, "w", 3, 8, 4, 16)
    assert str(err.value) == ("out_TDATA: a packed output stream of 10 class scores (160 "
                              "bits, 16 per score), but out_lanes is 4: the adapter would "
                              "keep only the low 4; pass out_lanes=10")
    assert isinstance(err.value, ValueError)
    adapter_verilog(ok, "w", 3, 8, 10, 16)   # all ten lanes: accepted
