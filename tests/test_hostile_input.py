"""Hostile and careless input: identifiers that reach file names and generated scripts,
parts, numeric flags and malformed spec files each get one ``error:`` line and exit 2, and
nothing they carry runs (the injection tests check that a marker file is never created).
"""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hls import cli
from hls.hls4ml_backend.convert import check_tcl_safe_path
from hls.plan.parts import part_info
from hls.rtl.yosys import synthesize, ys_quote
from model import paths
from model.errors import InputError, SqzError
from model.spec import SpecError, load_spec, spec_from_dict, with_target

TINY = paths.CONFIGS / "tiny.yaml"


def _spec_file(tmp_path, **overrides) -> str:
    raw = yaml.safe_load(TINY.read_text())
    raw.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize("name", ["x\n!touch {marker}", "../../escape", "/abs/name",
                                  "a b", "a;touch {marker}", "", "1abc", "x" * 65, "é"])
def test_spec_name_outside_the_pattern_is_refused(tmp_path, capsys, name):
    marker = tmp_path / "marker"
    config = _spec_file(tmp_path, name=name.format(marker=marker))
    assert cli.main(["info", "--config", config]) == 2
    err = _one_error_line(capsys)
    assert "name: " in err and "a letter, then up to 63 letters" in err
    assert not marker.exists()


def test_name_from_the_file_name_is_checked_too(tmp_path, capsys):
    raw = yaml.safe_load(TINY.read_text())
    del raw["name"]
    path = tmp_path / "my-net.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["info", "--config", str(path)]) == 2
    err = _one_error_line(capsys)
    assert "'my-net'" in err and "set name: in the spec" in err
    (tmp_path / "my_net.yaml").write_text(yaml.safe_dump(raw))
    assert load_spec(tmp_path / "my_net.yaml").name == "my_net"


PART_INJECTION = 'xczu9eg"; exec touch {marker}; set x "'


def test_part_injection_in_a_spec_is_refused(tmp_path, capsys):
    marker = tmp_path / "marker"
    raw = yaml.safe_load(TINY.read_text())
    raw.setdefault("target", {})["part"] = PART_INJECTION.format(marker=marker)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["perf", "--config", str(path)]) == 2
    assert "target.part: " in _one_error_line(capsys)
    assert not marker.exists()


@pytest.mark.parametrize("part", [PART_INJECTION, "xczu9eg[exec id]", "xczu9eg\nputs hi",
                                  "XCZU9EG", "zu9eg", "xczu9eg-ffvb1156-2-e-x-y"])
def test_part_flag_is_refused_before_anything_runs(tmp_path, capsys, part):
    marker = tmp_path / "marker"
    assert cli.main(["perf", "--config", "tiny", "--part", part.format(marker=marker)]) == 2
    assert "--part: " in _one_error_line(capsys)
    assert not marker.exists()


def test_known_parts_pass_and_the_plan_checks_the_part_itself():
    for part in ("xczu9eg-ffvb1156-2-e", "xcu250-figd2104-2L-e", "xc7z020clg400-1"):
        assert with_target(load_spec(TINY), part=part).target.part == part
        part_info(part)
    with pytest.raises(SpecError, match="AMD part number"):
        part_info('xczu9eg"; exec id')


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "1e9", "9.9"])
def test_clock_flag_takes_the_spec_range(capsys, value):
    with pytest.raises(SystemExit) as info:
        cli.main(["perf", "--config", "tiny", "--clock-mhz", value])
    assert info.value.code == 2
    err = _one_error_line(capsys)
    assert "argument --clock-mhz: expected a number in [10, 800]" in err


@pytest.mark.parametrize("value", [0.0, -5.0, math.nan, math.inf, 1e9])
def test_clock_override_takes_the_spec_range(value):
    """The same range when a program (not the flag parser) overrides the target."""
    with pytest.raises(SpecError, match="--clock-mhz: must be a number in 10..800 MHz"):
        with_target(load_spec(TINY), clock_mhz=value)


def test_clock_flag_in_range_is_used(capsys):
    assert cli.main(["perf", "--config", "tiny", "--clock-mhz", "100"]) == 0
    assert "at 100 MHz" in capsys.readouterr().out


@pytest.mark.parametrize("text, key", [
    ("", "the file is empty"),
    ("seed: abc\n", "seed: expected an integer"),
    ("seed: 3.7\n", "seed: expected an integer"),
    ("seed: -1\n", "seed: expected an integer"),
    ("seed: true\n", "seed: expected an integer"),
    ("[1, 2]\n", "expected a mapping of spec keys, got list"),
    ("name: [unclosed\n", "not valid YAML"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "YAML nested too deeply to be a spec"),
])
def test_malformed_spec_files_name_the_problem(tmp_path, capsys, text, key):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert cli.main(["info", "--config", str(path)]) == 2
    assert key in _one_error_line(capsys)


def test_build_path_stays_under_build():
    assert paths.build_path("rtl", "tiny") == (paths.BUILD / "rtl" / "tiny").resolve()
    for bad in ("../../x", "/etc", "../../build2"):  # build2: a prefix of no use
        with pytest.raises(InputError, match="outside the build folder"):
            paths.build_path("rtl", bad)


def test_yosys_script_refuses_a_path_that_would_start_a_command(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / f"x.v\n!touch {marker}\n"
    with pytest.raises(InputError, match="cannot go into a Yosys script"):
        synthesize([evil], "top", "xczu9eg", tmp_path / "work")
    assert not marker.exists()
    assert not (tmp_path / "work" / "synth.ys").exists()
    assert ys_quote(tmp_path / "a b.v") == f'"{tmp_path / "a b.v"}"'
    with pytest.raises(InputError, match="not a plain Verilog identifier"):
        synthesize([], "top\n!id", "xczu9eg", tmp_path / "work")


@pytest.mark.parametrize("folder", ["a[exec id]", "a$b", 'a"b', "a{b}", "a\\b"])
def test_tcl_special_characters_in_the_project_folder_are_refused(tmp_path, folder):
    with pytest.raises(InputError, match="which Tcl would interpret"):
        check_tcl_safe_path(tmp_path / folder)
    check_tcl_safe_path(tmp_path / "plain folder-1.0")


# Property: any YAML document the loader is given gives a spec or one SpecError line.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True), st.text(max_size=12))
_keys = st.sampled_from(["name", "variant", "input", "classes", "weights", "seed", "bypass",
                         "n_fire", "conv1", "pool_after", "metaparameters", "quantization",
                         "compression", "target", "height", "width", "channels", "part",
                         "clock_mhz", "filters", "SR", "pct3x3", "share_bits", "bogus"])
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)), max_leaves=12)


@settings(max_examples=300, deadline=None, derandomize=True,  # the same cases in every run
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(_keys, _values, max_size=6))
def test_spec_loader_never_raises_anything_but_a_spec_error(tmp_path, doc):
    path = tmp_path / "prop.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        spec = load_spec(path)
    except SpecError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        return
    # a spec that loads is a usable one: its names are safe and its numbers in range
    assert paths.build_path("rtl", spec.name)
    assert 10 <= spec.target.clock_mhz <= 800 and math.isfinite(spec.target.clock_mhz)


def test_spec_errors_are_sqz_errors_with_exit_2():
    with pytest.raises(SqzError) as info:
        spec_from_dict({"name": "../x"})
    assert info.value.exit_code == 2


@pytest.mark.parametrize("overrides, words", [
    ({"input": {"height": 4096, "width": 4096}}, "at most 67,108,864 are allowed"),
    ({"classes": 100_000_000}, "its weights alone need"),
])
def test_huge_networks_are_refused_before_any_allocation(overrides, words):
    """The bound comes from the graph, before weights or calibration frames exist."""
    import time

    from hls.plan.prepare import prepare
    from model.errors import DoesNotFitError

    spec = spec_from_dict({"name": "huge", "weights": "random", **overrides})
    t0 = time.perf_counter()
    with pytest.raises(DoesNotFitError, match=words):
        prepare(spec, log=lambda *_: None)
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("argv, words", [
    (["csim", "--frames", "-1"], "argument --frames: expected an integer >= 0, got -1"),
    (["finetune", "--data", "x", "--limit", "-3"], "argument --limit: expected an integer >= 0"),
    (["finetune", "--data", "x", "--test-images", "-1"], "argument --test-images: expected"),
    (["compress", "--hw-bits", "0"], "argument --hw-bits: expected an integer 2..7, got 0"),
    (["compress", "--hw-bits", "1"], "argument --hw-bits: expected an integer 2..7, got 1"),
    (["finetune", "--data", "x", "--lr", "-1"], "argument --lr: expected a number in (0, 10]"),
    (["perf", "--clock-mhz", "nan"], "argument --clock-mhz: expected a number in [10, 800]"),
    (["perf", "--clock-mhz", "abc"], "argument --clock-mhz: expected a number in [10, 800], "
                                     "got 'abc'"),
    (["compress", "--sparsity", "1"], "argument --sparsity: expected a number in [0, 1)"),
    (["sim-full", "--frames", "0"], "argument --frames: expected an integer >= 1, got 0"),
    (["dse", "--workers", "0"], "argument --workers: expected an integer 1..256, got 0"),
    (["eval", "--data", "x", "--out", "/tmp/elsewhere"], "outside the build folder"),
    (["dse", "--out", "../outside"], "outside the build folder"),
])
def test_numeric_and_path_flags_are_checked_in_one_line(capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = _one_error_line(capsys)
    assert words in err


def test_training_folders_naming_one_class_twice_are_refused(tmp_path, capsys):
    """'1' and 'goldfish' are both ImageNet class 1: refused before any training."""
    from PIL import Image

    for folder in ("1", "goldfish"):
        (tmp_path / "train" / folder).mkdir(parents=True)
        Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "train" / folder / "a.png")
    assert cli.main(["finetune", "--data", str(tmp_path), "--epochs", "1"]) == 2
    err = _one_error_line(capsys)
    assert "class folders '1' and 'goldfish' both stand for class 1" in err
