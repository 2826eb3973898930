"""Tests for hls/synth.py: csynth report parsing and the vendor-tool driver.

No vendor HLS tool is used here. The report files under tests/data are hand-written
fixtures in the vendor's csynth.xml format (see the comment at their top), and the
"fake tool" tests put a small shell script named like the vendor tool on PATH: they check
the driver's plumbing (argv, options, log, report lookup), never a synthesis result.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from hls.hls4ml_backend import synth
from hls.hls4ml_backend.synth import (
    SynthSummary,
    ToolNotFoundError,
    find_csynth_report,
    find_hls_tool,
    format_summary,
    parse_csynth_report,
    run_synthesis,
)

DATA = Path(__file__).parent / "data"
VITIS_XML = DATA / "csynth_vitis_example.xml"
VIVADO_XML = DATA / "csynth_vivado_example.xml"

DEFAULT_OPTS = "reset=0 csim=0 synth=1 cosim=0 validation=0 export=1 vsynth=0 fifo_opt=0"


# ---------------------------------------------------------------------------- helpers


def _quiet(_msg: str) -> None:
    pass


def _empty_path(monkeypatch, tmp_path: Path) -> Path:
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def _fake_tool(
    bindir: Path,
    name: str,
    *,
    record: Path,
    fixture: Path | None = None,
    exit_code: int = 0,
) -> Path:
    """Write an executable shell script called ``name`` that records its argv (one per
    line), its cwd and (if present) build_opt.tcl, prints a few lines on stdout/stderr
    and, when ``fixture`` is given, copies it to where the vendor tool writes the csynth
    report. It stands in for the vendor tool to test the driver only."""
    bindir.mkdir(parents=True, exist_ok=True)
    copy = ""
    if fixture is not None:
        copy = (
            'name=$(sed -n \'s/^set project_name "\\(.*\\)"/\\1/p\' project.tcl)\n'
            'mkdir -p "${name}_prj/solution1/syn/report"\n'
            f'cp "{fixture}" "${{name}}_prj/solution1/syn/report/${{name}}_csynth.xml"\n'
        )
    script = (
        "#!/bin/sh\n"
        f': > "{record}"\n'
        f'for a in "$@"; do printf "%s\\n" "$a" >> "{record}"; done\n'
        f'pwd > "{record}.cwd"\n'
        f'if [ -f build_opt.tcl ]; then cp build_opt.tcl "{record}.build_opt"; fi\n'
        f'echo "FAKE {name}: driver plumbing test, no synthesis is run"\n'
        'echo "fake tool stderr line" 1>&2\n'
        f"{copy}"
        f'echo "fake tool last line, exit {exit_code}"\n'
        f"exit {exit_code}\n"
    )
    path = bindir / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _path_with(monkeypatch, bindir: Path) -> None:
    # The fake tools need sed/mkdir/cp; no vendor tool is installed on this machine.
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")


def _project(tmp_path: Path, *, style: str = "vitis", name: str = "myproject") -> Path:
    """A minimal stand-in for an hls4ml-written project directory."""
    prj = tmp_path / "hls_prj"
    prj.mkdir()
    (prj / "project.tcl").write_text(
        f'variable project_name\nset project_name "{name}"\nvariable backend\n'
        f'set backend "{style}"\nset part "xczu9eg-ffvb1156-2-e"\nset clock_period 5\n'
    )
    if style == "vitis":  # hls4ml 1.3.0 templates/vitis/build_prj.tcl reads build_opt.tcl
        (prj / "build_prj.tcl").write_text(
            "set tcldir [file dirname [info script]]\n"
            "source [file join $tcldir project.tcl]\n"
            "source [file join $tcldir build_opt.tcl]\n"
        )
    else:  # hls4ml 1.3.0 templates/vivado/build_prj.tcl parses $::argv
        (prj / "build_prj.tcl").write_text(
            "array set opt {\n    csim 1\n}\n"
            "foreach arg $::argv {\n    foreach o [lsort [array names opt]] {\n"
            '        regexp "$o=+(\\\\w+)" $arg unused opt($o)\n    }\n}\n'
        )
    # hls4ml's writer dumps a '!keras_model' tag; the loader must tolerate it.
    (prj / "hls4ml_config.yml").write_text(
        f"Backend: {'Vitis' if style == 'vitis' else 'Vivado'}\n"
        "ClockPeriod: 5\nIOType: io_stream\n"
        "KerasModel: !keras_model /somewhere/keras_model.keras\n"
        f"OutputDir: {prj}\nPart: xczu9eg-ffvb1156-2-e\nProjectName: {name}\n"
    )
    return prj


# ---------------------------------------------------------------------------- parser


def test_parse_vitis_fixture():
    s = parse_csynth_report(VITIS_XML)
    assert isinstance(s, SynthSummary)
    assert s.top == "myproject"
    assert s.part == "xczu9eg-ffvb1156-2-e"
    assert s.tool_version == "2023.2"
    assert s.target_clock_ns == pytest.approx(5.0)
    assert s.clock_uncertainty_ns == pytest.approx(1.35)
    assert s.estimated_clock_ns == pytest.approx(3.894)
    assert (s.best_latency, s.worst_latency) == (1523417, 1523480)
    assert (s.interval_min, s.interval_max) == (1492001, 1492064)
    assert s.dsp_element == "DSP"
    assert s.resources == {"BRAM_18K": 1204, "DSP": 1630, "FF": 187342, "LUT": 201587, "URAM": 0}
    assert s.available == {
        "BRAM_18K": 1824, "DSP": 2520, "FF": 548160, "LUT": 274080, "URAM": 0,
    }
    assert (s.bram_18k, s.dsp, s.ff, s.lut, s.uram) == (1204, 1630, 187342, 201587, 0)
    assert s.utilization("DSP") == pytest.approx(1630 / 2520)
    assert s.utilization("URAM") is None  # 0 available
    assert s.worst_latency_ns() == pytest.approx(1523480 * 5.0)


def test_parse_vivado_fixture_dsp48e_and_undef_latency():
    s = parse_csynth_report(VIVADO_XML)
    assert s.top == "myproject"
    assert s.part == "xc7z020clg400-1"
    assert s.tool_version == "2019.2"
    assert s.target_clock_ns == pytest.approx(10.0)
    assert s.estimated_clock_ns == pytest.approx(8.723)
    # 'undef' in the report -> None, not 0 and not an exception
    assert s.best_latency is None and s.worst_latency is None
    assert s.interval_min is None and s.interval_max is None
    assert s.worst_latency_ns() is None
    # DSP48E is stored under the common key DSP; the report's own name is kept
    assert s.dsp_element == "DSP48E"
    assert s.resources == {"BRAM_18K": 96, "DSP": 148, "FF": 31277, "LUT": 42915, "URAM": 0}
    assert s.available == {"BRAM_18K": 280, "DSP": 220, "FF": 106400, "LUT": 53200, "URAM": 0}


def test_parser_agrees_with_hls4ml_element_paths():
    """Our values equal what hls4ml 1.3.0's own report parser reads with the same paths."""
    import xml.etree.ElementTree as ET

    for xml in (VITIS_XML, VIVADO_XML):
        root = ET.parse(xml).getroot()
        perf = root.find("./PerformanceEstimates")
        s = parse_csynth_report(xml)
        assert float(root.find("./UserAssignments/TargetClockPeriod").text) == s.target_clock_ns
        est = perf.find("./SummaryOfTimingAnalysis/EstimatedClockPeriod").text
        assert float(est) == s.estimated_clock_ns
        for tag, got in (
            ("Best-caseLatency", s.best_latency),
            ("Worst-caseLatency", s.worst_latency),
            ("Interval-min", s.interval_min),
            ("Interval-max", s.interval_max),
        ):
            text = perf.find(f"./SummaryOfOverallLatency/{tag}").text
            assert (None if text == "undef" else int(text)) == got
        for child in root.find("./AreaEstimates/Resources"):
            key = "DSP" if child.tag == "DSP48E" else child.tag
            assert s.resources[key] == int(child.text)


def test_format_summary_vitis():
    text = format_summary(parse_csynth_report(VITIS_XML))
    assert "myproject" in text and "xczu9eg-ffvb1156-2-e" in text
    assert "estimated 3.894 ns" in text and "target 5.000 ns" in text
    assert "1,523,480" in text and "1,492,001" in text
    assert re.search(r"DSP\s+1,630\s+2,520\s+64\.7%", text)
    assert re.search(r"BRAM_18K\s+1,204\s+1,824", text)


def test_format_summary_vivado_undef():
    text = format_summary(parse_csynth_report(VIVADO_XML))
    assert "best undef, worst undef" in text
    assert "min undef, max undef" in text
    assert re.search(r"DSP48E\s+148\s+220\s+67\.3%", text)


def test_parse_rejects_non_report(tmp_path):
    bad = tmp_path / "not_a_report.xml"
    bad.write_text("<profile><UserAssignments/></profile>")
    with pytest.raises(ValueError, match="not a csynth report"):
        parse_csynth_report(bad)
    broken = tmp_path / "broken.xml"
    broken.write_text("<profile>")
    with pytest.raises(ValueError, match="not a readable XML"):
        parse_csynth_report(broken)


def test_find_csynth_report(tmp_path):
    prj = _project(tmp_path)
    expected = r"myproject_prj/solution1/syn/report/myproject_csynth\.xml"
    with pytest.raises(FileNotFoundError, match=expected):
        find_csynth_report(prj)
    rdir = prj / "myproject_prj" / "solution1" / "syn" / "report"
    rdir.mkdir(parents=True)
    shutil.copy(VITIS_XML, rdir / "myproject_csynth.xml")
    assert find_csynth_report(prj) == rdir / "myproject_csynth.xml"


# ---------------------------------------------------------------------------- tool lookup


def test_tool_not_found_names_all_three_tools(monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    for backend in ("Vitis", "Vivado"):
        with pytest.raises(ToolNotFoundError) as ei:
            find_hls_tool(backend)
        msg = str(ei.value)
        assert msg.startswith(
            "no vendor HLS tool on PATH: looked for vitis_hls, vitis-run, vivado_hls"
        )
        assert "settings64.sh" in msg
        assert isinstance(ei.value, RuntimeError)


def test_run_synthesis_fails_on_missing_tool_before_anything_else(monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    # The project dir does not even exist: the tool check must come first.
    with pytest.raises(ToolNotFoundError, match="looked for vitis_hls, vitis-run, vivado_hls"):
        run_synthesis(tmp_path / "does_not_exist", "Vitis", log=_quiet)
    prj = _project(tmp_path)
    before = sorted(p.name for p in prj.iterdir())
    with pytest.raises(ToolNotFoundError):
        run_synthesis(prj, "Vivado", log=_quiet)
    assert sorted(p.name for p in prj.iterdir()) == before  # nothing written


def test_bad_backend_rejected(monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    for bad in ("vitis", "Quartus", ""):
        with pytest.raises(ValueError, match=r"allowed values are 'Vitis', 'Vivado'"):
            find_hls_tool(bad)
        with pytest.raises(ValueError, match=r"allowed values are 'Vitis', 'Vivado'"):
            run_synthesis(tmp_path, bad, log=_quiet)


def test_tool_preference_and_argv(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vitis-run", record=rec)
    _path_with(monkeypatch, bindir)
    name, argv = find_hls_tool("Vitis")
    assert name == "vitis-run"
    assert argv == [str(bindir / "vitis-run"), "--mode", "hls", "--tcl"]

    _fake_tool(bindir, "vitis_hls", record=rec)
    name, argv = find_hls_tool("Vitis")
    assert name == "vitis_hls" and argv == [str(bindir / "vitis_hls"), "-f"]

    # Only Vitis tools present: backend Vivado says what it found and what it needs.
    with pytest.raises(ToolNotFoundError, match=r"vivado_hls.*found vitis_hls, vitis-run"):
        find_hls_tool("Vivado")

    _fake_tool(bindir, "vivado_hls", record=rec)
    name, argv = find_hls_tool("Vivado")
    assert name == "vivado_hls" and argv == [str(bindir / "vivado_hls"), "-f"]


# ---------------------------------------------------------------------------- driver plumbing


def test_run_synthesis_without_build_prj_errors_clearly(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vitis_hls", record=rec)
    _path_with(monkeypatch, bindir)

    prj = tmp_path / "half_prj"
    prj.mkdir()
    (prj / "hls4ml_config.yml").write_text("ProjectName: myproject\n")
    expected = r"not an hls4ml-written HLS project: missing build_prj\.tcl"
    with pytest.raises(FileNotFoundError, match=expected):
        run_synthesis(prj, "Vitis", log=_quiet)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_synthesis(tmp_path / "nope", "Vitis", log=_quiet)
    assert not rec.exists()  # the tool was never started


def test_fake_vitis_hls_drives_build_prj_and_parses_report(monkeypatch, tmp_path):
    """Driver plumbing only: a shell script named vitis_hls stands in for the vendor tool.
    It records its argv and copies the hand-written fixture report to where Vitis HLS
    writes it. Nothing here is, or may be presented as, a synthesis result."""
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vitis_hls", record=rec, fixture=VITIS_XML)
    _path_with(monkeypatch, bindir)
    prj = _project(tmp_path, style="vitis")
    messages: list[str] = []

    s = run_synthesis(prj, "Vitis", log=messages.append)

    # argv exactly as hls4ml runs the script: options in ONE argument after the script
    assert rec.read_text().splitlines() == ["-f", "build_prj.tcl", DEFAULT_OPTS]
    assert Path(rec.with_suffix(".txt.cwd").read_text().strip()) == prj.resolve()
    # the Vitis-layout script reads build_opt.tcl; it was written before the tool ran
    build_opt = Path(str(rec) + ".build_opt").read_text()
    assert build_opt == (prj / "build_opt.tcl").read_text()
    assert re.search(r"^\s*synth\s+1$", build_opt, re.M)
    assert re.search(r"^\s*csim\s+0$", build_opt, re.M)
    assert re.search(r"^\s*export\s+1$", build_opt, re.M)
    # the tool's stdout and stderr went to synth.log
    logtext = (prj / "synth.log").read_text()
    assert "FAKE vitis_hls: driver plumbing test" in logtext
    assert "fake tool stderr line" in logtext
    # the report the fake tool copied is found and parsed
    assert s == parse_csynth_report(
        prj / "myproject_prj/solution1/syn/report/myproject_csynth.xml"
    )
    assert (s.worst_latency, s.dsp, s.dsp_element) == (1523480, 1630, "DSP")
    assert any("C-synthesis estimate" in m for m in messages)


def test_fake_vivado_hls_passes_options_as_argv(monkeypatch, tmp_path):
    """Driver plumbing only (fake vivado_hls script, hand-written fixture report)."""
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vivado_hls", record=rec, fixture=VIVADO_XML)
    _path_with(monkeypatch, bindir)
    prj = _project(tmp_path, style="vivado")

    s = run_synthesis(prj, "Vivado", csim=True, cosim=True, export=False, log=_quiet)

    expected = "reset=0 csim=1 synth=1 cosim=1 validation=0 export=0 vsynth=0 fifo_opt=0"
    assert rec.read_text().splitlines() == ["-f", "build_prj.tcl", expected]
    assert not (prj / "build_opt.tcl").exists()  # this script layout does not read it
    assert s.dsp_element == "DSP48E" and s.worst_latency is None


def test_fake_vitis_run_uses_unified_cli(monkeypatch, tmp_path):
    """Driver plumbing only: vitis-run gets no script arguments; build_opt.tcl carries them."""
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vitis-run", record=rec, fixture=VITIS_XML)
    _path_with(monkeypatch, bindir)
    prj = _project(tmp_path, style="vitis")
    s = run_synthesis(prj, "Vitis", synth=True, export=False, log=_quiet)
    assert rec.read_text().splitlines() == ["--mode", "hls", "--tcl", "build_prj.tcl"]
    assert re.search(r"^\s*export\s+0$", (prj / "build_opt.tcl").read_text(), re.M)
    assert s.top == "myproject"

    # An argv-style (Vivado-layout) script cannot get its options through vitis-run.
    prj2 = tmp_path / "other"
    prj2.mkdir()
    vivado_prj = _project(prj2, style="vivado")
    with pytest.raises(RuntimeError, match="vitis-run"):
        run_synthesis(vivado_prj, "Vitis", log=_quiet)


def test_fake_tool_failure_raises_with_log_tail(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vitis_hls", record=rec, exit_code=3)
    _path_with(monkeypatch, bindir)
    prj = _project(tmp_path)
    with pytest.raises(RuntimeError, match="exit status 3") as ei:
        run_synthesis(prj, "Vitis", log=_quiet)
    assert "fake tool last line, exit 3" in str(ei.value)
    assert "synth.log" in str(ei.value)


def test_fake_tool_without_report_or_with_stale_report(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    rec = tmp_path / "argv.txt"
    _fake_tool(bindir, "vitis_hls", record=rec)  # exits 0, writes no report
    _path_with(monkeypatch, bindir)
    prj = _project(tmp_path)
    with pytest.raises(RuntimeError, match="wrote no C-synthesis report"):
        run_synthesis(prj, "Vitis", log=_quiet)

    # synth=False: nothing to parse, returns None
    assert run_synthesis(prj, "Vitis", synth=False, log=_quiet) is None
    assert "synth=0" in rec.read_text()

    # A report left from an earlier run is not passed off as this run's result.
    rdir = prj / "myproject_prj/solution1/syn/report"
    rdir.mkdir(parents=True)
    old = rdir / "myproject_csynth.xml"
    shutil.copy(VITIS_XML, old)
    os.utime(old, (1_000_000_000, 1_000_000_000))
    with pytest.raises(RuntimeError, match="older than this run"):
        run_synthesis(prj, "Vitis", log=_quiet)


# ---------------------------------------------------------------- against hls4ml's templates


def _hls4ml_template(backend_dir: str, name: str) -> Path | None:
    try:
        import hls4ml
    except Exception:
        return None
    p = Path(hls4ml.__file__).parent / "templates" / backend_dir / name
    return p if p.is_file() else None


def _tcl_opts(tcl_src: str, *args: str) -> dict[str, str]:
    tcl = shutil.which("tclsh")
    prog = tcl_src + "\nforeach k [lsort [array names opt]] { puts \"$k=$opt($k)\" }\n"
    out = subprocess.run(
        [tcl, "-", *args], input=prog, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="needs tclsh")
def test_option_string_parsed_by_hls4ml_vivado_template():
    """Run the option-parsing part of hls4ml's own templates/vivado/build_prj.tcl in tclsh
    (not a vendor tool) with our argv: every option must come out as we set it."""
    tpl = _hls4ml_template("vivado", "build_prj.tcl")
    if tpl is None:
        pytest.skip("hls4ml not importable")
    text = tpl.read_text()
    opt_block = re.search(r"array set opt \{.*?\n\}\n", text, re.S).group(0)
    argv_block = re.search(r"foreach arg \$::argv \{.*?\n\}\n", text, re.S).group(0)
    opts = {"reset": 0, "csim": 0, "synth": 1, "cosim": 0, "validation": 0,
            "export": 1, "vsynth": 0, "fifo_opt": 0}
    got = _tcl_opts(opt_block + argv_block, synth._tcl_option_string(opts))
    assert got == {k: str(v) for k, v in opts.items()}
    # vsynth=1 must not leak into synth (the regexp for 'synth' also matches 'vsynth=')
    opts.update(synth=0, vsynth=1)
    got = _tcl_opts(opt_block + argv_block, synth._tcl_option_string(opts))
    assert got["synth"] == "0" and got["vsynth"] == "1"


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="needs tclsh")
def test_build_opt_tcl_matches_hls4ml_vitis_template_format(tmp_path):
    """Our build_opt.tcl defines the same option names hls4ml's Vitis template does."""
    tpl = _hls4ml_template("vitis", "build_opt.tcl")
    if tpl is None:
        pytest.skip("hls4ml not importable")
    theirs = _tcl_opts(tpl.read_text())
    opts = {k: (k in ("synth", "export")) for k in theirs}
    ours = _tcl_opts(synth._build_opt_tcl(opts))
    assert set(ours) == set(theirs)
    assert ours == {k: str(int(v)) for k, v in opts.items()}
