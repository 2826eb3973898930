"""``make bitstream`` without Vivado: the generated Vivado scripts run under ``tclsh`` against
stub procedures, one per Vivado command they use; every stub knows its command's options
and refuses unknown ones, malformed arguments and out-of-order use, and a command with no
stub fails (Tcl's ``unknown``). Then the recorded calls are checked: every pin of the
wrapper cell ``sqz`` exists in the wrapper's Verilog, every pin of a Xilinx IP cell is one
that IP has (the tables below, from the IPs' product guides), the DMA matches the
wrapper's stream widths, the PS clock is the spec's.

The stubs check the scripts' form and their names, not Vivado's behaviour: whether
Vivado builds the design is for a machine with Vivado (``make bitstream`` there).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from hls.board import bitstream as bs
from hls.board.boards import BOARDS, board_info
from hls.rtl.vendor import parse_ports
from model import paths
from model.errors import InputError, SqzError, ToolNotFound
from model.spec import load_spec

TCLSH = shutil.which("tclsh")
needs_tclsh = pytest.mark.skipif(TCLSH is None, reason="needs tclsh (Debian package tcl)")

try:
    import hls.rtl.axi  # noqa: F401  (the wrapper generator, issue #12 part A)
    HAVE_AXI = True
except ImportError:
    HAVE_AXI = False
needs_axi = pytest.mark.skipif(not HAVE_AXI, reason="hls.rtl.axi (the AXI wrapper) is not there")

# ------------------------------------------------------------------ the stub commands

PRELUDE = r"""
set ::log [open [lindex $argv 0] w]
set ::run_script [lindex $argv 1]
if {![info exists ::board_parts_installed]} {set ::board_parts_installed 1}
set ::cells [dict create]
set ::bd {}
set ::project {}
set ::files {}
set ::launched {}
set ::waited {}
set ::opened {}
set ::connected_intf {}

proc _fail {msg} {return -code error "STUB: $msg"}
proc _out {args} {puts $::log [join $args "\t"]}
# Options of a command: spec = {-flag arity ...}; minpos..maxpos positional words (-1: any).
proc _args {cmd spec minpos maxpos argv} {
    set opts [dict create]
    set pos {}
    for {set i 0} {$i < [llength $argv]} {incr i} {
        set a [lindex $argv $i]
        if {[string index $a 0] eq "-"} {
            if {![dict exists $spec $a]} {_fail "$cmd: unknown option $a"}
            if {[dict exists $opts $a]} {_fail "$cmd: $a given twice"}
            if {[dict get $spec $a]} {
                incr i
                if {$i >= [llength $argv]} {_fail "$cmd: $a needs a value"}
                dict set opts $a [lindex $argv $i]
            } else {
                dict set opts $a 1
            }
        } else {
            lappend pos $a
        }
    }
    set n [llength $pos]
    if {$n < $minpos || ($maxpos >= 0 && $n > $maxpos)} {
        _fail "$cmd: $minpos..$maxpos positional arguments expected, got $n: $pos"
    }
    return [list $opts $pos]
}
proc _ident {what v} {
    if {![regexp {^[A-Za-z_][A-Za-z0-9_]*$} $v]} {_fail "$what: malformed name '$v'"}
}
proc _abs {what v} {
    if {[string index $v 0] ne "/" || [regexp {[][\s$\\{}"]} $v]} {
        _fail "$what: not a clean absolute path '$v'"
    }
}
proc _obj {what v kind} {
    if {![string match "$kind:*" $v]} {_fail "$what: expected a $kind object, got '$v'"}
}
proc _pairs {what v} {
    if {[catch {llength $v} n] || $n % 2} {_fail "$what: not name/value pairs: $v"}
}
proc _need_project {cmd} {if {$::project eq ""} {_fail "$cmd: no project open"}}
proc _need_bd {cmd} {if {$::bd eq ""} {_fail "$cmd: no block design"}}

proc create_project {args} {
    lassign [_args create_project {-part 1 -force 0 -in_memory 0} 2 2 $args] o p
    _ident "create_project name" [lindex $p 0]
    _abs "create_project folder" [lindex $p 1]
    if {![dict exists $o -part]} {_fail "create_project: no -part"}
    if {![regexp {^xc[a-z0-9]+(-[A-Za-z0-9]+)*$} [dict get $o -part]]} {
        _fail "create_project: malformed part [dict get $o -part]"
    }
    set ::project [lindex $p 0]
    _out PROJECT [lindex $p 0] [lindex $p 1] [dict get $o -part]
    return "project:$::project"
}
proc current_project {args} {
    _args current_project {-quiet 0} 0 0 $args
    _need_project current_project
    return "project:$::project"
}
proc get_projects {args} {
    _args get_projects {-quiet 0} 0 1 $args
    if {$::project eq ""} {return {}}
    return [list "project:$::project"]
}
proc open_project {args} {
    lassign [_args open_project {-quiet 0} 1 1 $args] o p
    set xpr [lindex $p 0]
    _abs open_project $xpr
    if {![string match *.xpr $xpr]} {_fail "open_project: not an .xpr: $xpr"}
    if {$::project ne ""} {_fail "open_project: a project is open already"}
    set ::project [file rootname [file tail $xpr]]
    _out OPEN_PROJECT $xpr
    return "project:$::project"
}
proc get_board_parts {args} {
    lassign [_args get_board_parts {-quiet 0 -latest_file_version 0 -latest_hw_revision 0
                                    -filter 1} 0 1 $args] o p
    set pat [lindex $p 0]
    if {![regexp {^[a-z0-9.]+:[a-z0-9_]+:part[0-9]:([0-9]+\.[0-9]+|\*)$} $pat]} {
        _fail "get_board_parts: malformed board part $pat"
    }
    _out BOARD_PARTS $pat
    if {!$::board_parts_installed} {return {}}
    return [list [string map {* 9.9} $pat]]
}
proc set_property {args} {
    lassign [_args set_property {-dict 1 -quiet 0} 1 3 $args] o p
    if {[dict exists $o -dict]} {
        if {[llength $p] != 1} {_fail "set_property -dict: one object expected, got $p"}
        set pairs [dict get $o -dict]
        _pairs "set_property -dict" $pairs
    } else {
        if {[llength $p] != 3} {_fail "set_property: NAME VALUE OBJECT expected, got $p"}
        set pairs [lrange $p 0 1]
    }
    set obj [lindex $p end]
    if {![regexp {^(project|bd_cell|fileset|run|file):} $obj]} {
        _fail "set_property: not an object: $obj"
    }
    if {[string match bd_cell:* $obj]} {
        foreach {k v} $pairs {
            if {![regexp {^CONFIG\.[A-Za-z0-9_]+$} $k]} {_fail "set_property: cell key $k"}
        }
    }
    foreach {k v} $pairs {_out PROP $obj $k $v}
}
proc add_files {args} {
    lassign [_args add_files {-norecurse 0 -fileset 1 -quiet 0} 1 1 $args] o p
    _need_project add_files
    foreach f [lindex $p 0] {
        _abs add_files $f
        if {![string match /stub/* $f] && ![file isfile $f]} {_fail "add_files: no file $f"}
        lappend ::files $f
        _out FILE $f
    }
}
proc update_compile_order {args} {
    _args update_compile_order {-fileset 1 -quiet 0} 0 0 $args
    _need_project update_compile_order
}
proc update_ip_catalog {args} {
    _args update_ip_catalog {-rebuild 0 -quiet 0} 0 0 $args
    _need_project update_ip_catalog
    _out IP_CATALOG
}
proc create_bd_design {args} {
    lassign [_args create_bd_design {-dir 1} 1 1 $args] o p
    _need_project create_bd_design
    _ident create_bd_design [lindex $p 0]
    set ::bd [lindex $p 0]
    _out BD $::bd
}
proc create_bd_cell {args} {
    lassign [_args create_bd_cell {-type 1 -vlnv 1 -reference 1} 1 1 $args] o p
    _need_bd create_bd_cell
    set name [lindex $p 0]
    _ident "create_bd_cell name" $name
    if {[dict exists $::cells $name]} {_fail "create_bd_cell: $name exists"}
    set type [expr {[dict exists $o -type] ? [dict get $o -type] : ""}]
    switch -- $type {
        ip {
            if {![dict exists $o -vlnv] || [dict exists $o -reference]} {
                _fail "create_bd_cell -type ip: -vlnv and no -reference"
            }
            set v [dict get $o -vlnv]
            if {![regexp {^[a-z0-9.]+:ip:([a-z0-9_]+)(:[0-9]+\.[0-9]+)?$} $v -> ip]} {
                _fail "create_bd_cell: malformed -vlnv $v"
            }
            dict set ::cells $name $ip
            _out CELL ip $name $ip
        }
        module {
            if {![dict exists $o -reference] || [dict exists $o -vlnv]} {
                _fail "create_bd_cell -type module: -reference and no -vlnv"
            }
            set ref [dict get $o -reference]
            _ident "create_bd_cell -reference" $ref
            set found 0
            foreach f $::files {
                if {[string match /stub/* $f]} continue
                set ch [open $f]
                set text [read $ch]
                close $ch
                if {[regexp -line "^\\s*module\\s+$ref\\M" $text]} {set found 1}
            }
            if {!$found} {_fail "create_bd_cell: module $ref is in no added source"}
            dict set ::cells $name module
            _out CELL module $name $ref
        }
        default {_fail "create_bd_cell: -type ip or module, got '$type'"}
    }
    return "bd_cell:$name"
}
proc get_bd_cells {args} {
    lassign [_args get_bd_cells {-quiet 0} 1 1 $args] o p
    set n [lindex $p 0]
    if {![dict exists $::cells $n]} {_fail "get_bd_cells: no cell $n"}
    return "bd_cell:$n"
}
proc _pin {cmd path} {
    if {![regexp {^([A-Za-z_][A-Za-z0-9_]*)/([A-Za-z_][A-Za-z0-9_]*)$} $path -> c pin]} {
        _fail "$cmd: malformed pin $path"
    }
    if {![dict exists $::cells $c]} {_fail "$cmd: no cell $c"}
    return [list $c $pin]
}
proc get_bd_intf_pins {args} {
    lassign [_args get_bd_intf_pins {-quiet 0} 1 1 $args] o p
    lassign [_pin get_bd_intf_pins [lindex $p 0]] c pin
    _out INTF_PIN $c [dict get $::cells $c] $pin
    return "bd_intf_pin:$c/$pin"
}
proc get_bd_pins {args} {
    lassign [_args get_bd_pins {-quiet 0} 1 1 $args] o p
    lassign [_pin get_bd_pins [lindex $p 0]] c pin
    _out PIN $c [dict get $::cells $c] $pin
    return "bd_pin:$c/$pin"
}
proc apply_bd_automation {args} {
    lassign [_args apply_bd_automation {-rule 1 -config 1} 1 1 $args] o p
    if {![dict exists $o -rule] ||
        ![regexp {^xilinx\.com:bd_rule:[a-z0-9_]+$} [dict get $o -rule]]} {
        _fail "apply_bd_automation: -rule missing or malformed"
    }
    set config [expr {[dict exists $o -config] ? [dict get $o -config] : {}}]
    _pairs "apply_bd_automation -config" $config
    _obj apply_bd_automation [lindex $p 0] bd_cell
    _out AUTOMATION [dict get $o -rule] [lindex $p 0] $config
}
proc connect_bd_intf_net {args} {
    lassign [_args connect_bd_intf_net {-intf_net 1} 2 2 $args] o p
    foreach x $p {
        _obj connect_bd_intf_net $x bd_intf_pin
        if {$x in $::connected_intf} {_fail "connect_bd_intf_net: $x connected twice"}
        lappend ::connected_intf $x
    }
    _out CONNECT_INTF {*}[string map {bd_intf_pin: ""} $p]
}
proc connect_bd_net {args} {
    lassign [_args connect_bd_net {-net 1} 2 -1 $args] o p
    foreach x $p {_obj connect_bd_net $x bd_pin}
    _out CONNECT_NET {*}[string map {bd_pin: ""} $p]
}
proc assign_bd_address {args} {
    _args assign_bd_address {-offset 1 -range 1 -target_address_space 1 -force 0 -quiet 0} 0 1 $args
    _need_bd assign_bd_address
    _out ADDRESS
}
proc validate_bd_design {args} {
    _args validate_bd_design {-force 0 -quiet 0} 0 0 $args
    _need_bd validate_bd_design
    _out VALIDATE
}
proc save_bd_design {args} {
    _args save_bd_design {-quiet 0} 0 1 $args
    _need_bd save_bd_design
    _out SAVE
}
proc get_files {args} {
    lassign [_args get_files {-quiet 0} 1 1 $args] o p
    if {[lindex $p 0] ne "$::bd.bd"} {_fail "get_files: no [lindex $p 0] (the design is $::bd.bd)"}
    return "file:[lindex $p 0]"
}
proc generate_target {args} {
    lassign [_args generate_target {-force 0 -quiet 0} 2 2 $args] o p
    if {[lindex $p 0] ni {all synthesis simulation implementation instantiation_template}} {
        _fail "generate_target: unknown target [lindex $p 0]"
    }
    _obj generate_target [lindex $p 1] file
    _out GENERATE
}
proc make_wrapper {args} {
    lassign [_args make_wrapper {-files 1 -top 0 -import 0 -force 0 -fileset 1} 0 0 $args] o p
    if {![dict exists $o -files]} {_fail "make_wrapper: no -files"}
    _obj make_wrapper [dict get $o -files] file
    _out WRAPPER "${::bd}_wrapper"
    return "/stub/hdl/${::bd}_wrapper.v"
}
proc current_fileset {args} {
    _args current_fileset {-quiet 0} 0 0 $args
    _need_project current_fileset
    return "fileset:sources_1"
}
proc launch_runs {args} {
    lassign [_args launch_runs {-jobs 1 -to_step 1 -quiet 0} 1 1 $args] o p
    _need_project launch_runs
    set r [lindex $p 0]
    if {$r ni {synth_1 impl_1}} {_fail "launch_runs: no run $r"}
    if {$r eq "impl_1" && "synth_1" ni $::waited} {_fail "launch_runs impl_1 before synth_1 ended"}
    if {[dict exists $o -jobs] && ![string is integer -strict [dict get $o -jobs]]} {
        _fail "launch_runs: -jobs [dict get $o -jobs]"
    }
    set step [expr {[dict exists $o -to_step] ? [dict get $o -to_step] : ""}]
    if {$step ni {"" opt_design place_design route_design write_bitstream}} {
        _fail "launch_runs: -to_step $step"
    }
    lappend ::launched $r
    _out LAUNCH $r $step
}
proc wait_on_run {args} {
    lassign [_args wait_on_run {-timeout 1 -quiet 0} 1 1 $args] o p
    if {[lindex $p 0] ni $::launched} {_fail "wait_on_run: [lindex $p 0] not launched"}
    lappend ::waited [lindex $p 0]
    _out WAIT [lindex $p 0]
}
proc get_runs {args} {
    lassign [_args get_runs {-quiet 0} 1 1 $args] o p
    if {[lindex $p 0] ni {synth_1 impl_1}} {_fail "get_runs: no run [lindex $p 0]"}
    return "run:[lindex $p 0]"
}
proc get_property {args} {
    lassign [_args get_property {-quiet 0} 2 2 $args] o p
    lassign $p name obj
    _obj get_property $obj run
    set r [string range $obj 4 end]
    switch -- $name {
        PROGRESS {return [expr {$r in $::waited ? "100%" : "0%"}]}
        DIRECTORY {return /stub/runs/$r}
        default {_fail "get_property: no stub for $name"}
    }
}
proc open_run {args} {
    lassign [_args open_run {-name 1 -quiet 0} 1 1 $args] o p
    if {[lindex $p 0] ni $::waited} {_fail "open_run: [lindex $p 0] has not run"}
    set ::opened [lindex $p 0]
    _out OPEN_RUN [lindex $p 0]
}
proc _report {cmd spec argv} {
    lassign [_args $cmd $spec 0 0 $argv] o p
    if {$::opened ne "impl_1"} {_fail "$cmd: the implemented design is not open"}
    if {![dict exists $o -file]} {_fail "$cmd: no -file"}
    _abs $cmd [dict get $o -file]
    _out REPORT $cmd [dict get $o -file]
}
proc report_utilization {args} {
    _report report_utilization {-file 1 -hierarchical 0 -quiet 0} $args
}
proc report_timing_summary {args} {
    _report report_timing_summary {-file 1 -max_paths 1 -delay_type 1 -quiet 0} $args
}
proc write_hw_platform {args} {
    _report write_hw_platform {-fixed 0 -include_bit 0 -force 0 -file 1} $args
}
rename glob _real_glob
proc glob {args} {
    lassign [_args glob {-nocomplain 0 -directory 1 -join 0} 1 -1 $args] o p
    if {![dict exists $o -directory]} {_fail "glob without -directory"}
    set d [dict get $o -directory]
    if {![string match /stub/* $d]} {_abs glob $d}
    _out GLOB $d [join $p /]
    return [list "/stub/glob/[join $p /]"]
}
rename file _real_file
proc file {sub args} {
    switch -- $sub {
        copy {
            lassign [_args "file copy" {-force 0} 2 2 $args] o p
            lassign $p src dst
            if {![string match /stub/* $src]} {_fail "file copy from $src"}
            _abs "file copy" $dst
            _out COPY $src $dst
        }
        delete - mkdir - rename - link - attributes {_fail "file $sub: not expected"}
        default {return [_real_file $sub {*}$args]}
    }
}
proc unknown {args} {_fail "unknown command: [lindex $args 0]"}

if {[catch {source $::run_script} msg]} {
    close $::log
    puts stderr $msg
    exit 1
}
close $::log
"""

# The Xilinx IPs the block design uses: interface and plain pins (Zynq UltraScale+ MPSoC
# PS: PG201; AXI DMA: PG021; SmartConnect: PG247; Processor System Reset: PG164).
IP_PINS: dict[str, tuple[set[str], set[str]]] = {
    "zynq_ultra_ps_e": (
        {"M_AXI_HPM0_FPD", "M_AXI_HPM1_FPD", "M_AXI_HPM0_LPD", "S_AXI_HPC0_FPD",
         "S_AXI_HPC1_FPD", "S_AXI_HP0_FPD", "S_AXI_HP1_FPD", "S_AXI_HP2_FPD", "S_AXI_HP3_FPD",
         "S_AXI_LPD", "S_AXI_ACP_FPD"},
        {"pl_clk0", "pl_clk1", "pl_clk2", "pl_clk3", "pl_resetn0", "pl_resetn1",
         "maxihpm0_fpd_aclk", "maxihpm1_fpd_aclk", "maxihpm0_lpd_aclk", "saxihpc0_fpd_aclk",
         "saxihpc1_fpd_aclk", "saxihp0_fpd_aclk", "saxihp1_fpd_aclk", "saxihp2_fpd_aclk",
         "saxihp3_fpd_aclk", "pl_ps_irq0"}),
    "axi_dma": (
        {"S_AXI_LITE", "M_AXI_SG", "M_AXI_MM2S", "M_AXI_S2MM", "M_AXIS_MM2S", "S_AXIS_S2MM"},
        {"s_axi_lite_aclk", "m_axi_sg_aclk", "m_axi_mm2s_aclk", "m_axi_s2mm_aclk",
         "axi_resetn", "mm2s_introut", "s2mm_introut", "mm2s_prmry_reset_out_n",
         "s2mm_prmry_reset_out_n"}),
    "smartconnect": ({f"S{i:02d}_AXI" for i in range(16)} | {f"M{i:02d}_AXI" for i in range(16)},
                     {"aclk", "aclk1", "aresetn"}),
    "proc_sys_reset": (set(), {"slowest_sync_clk", "ext_reset_in", "aux_reset_in",
                               "mb_debug_sys_rst", "dcm_locked", "mb_reset", "bus_struct_reset",
                               "peripheral_reset", "interconnect_aresetn",
                               "peripheral_aresetn"}),
}
# AXI DMA parameters (PG021) and what each may be.
DMA_PARAMS = {"c_include_sg": {"0", "1"}, "c_sg_length_width": {str(n) for n in range(8, 27)},
              "c_sg_include_stscntrl_strm": {"0", "1"},
              "c_addr_width": {str(n) for n in range(32, 65)},
              "c_m_axi_mm2s_data_width": {str(2**k) for k in range(5, 11)},
              "c_m_axis_mm2s_tdata_width": {str(2**k) for k in range(3, 11)},
              "c_m_axi_s2mm_data_width": {str(2**k) for k in range(5, 11)},
              "c_s_axis_s2mm_tdata_width": {str(2**k) for k in range(3, 11)},
              "c_mm2s_burst_size": {str(2**k) for k in range(1, 9)},
              "c_s2mm_burst_size": {str(2**k) for k in range(1, 9)}}
AXIS = ("tdata", "tkeep", "tlast", "tvalid", "tready")
AXI_LITE = ("awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
            "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready", "rdata",
            "rresp", "rvalid", "rready")


def run_stubbed(script: Path, tmp: Path, board_parts_installed: bool = True):
    """Run ``script`` under tclsh with the stubs; (return code, stderr, recorded calls)."""
    prelude = tmp / "stubs.tcl"
    prelude.write_text(f"set ::board_parts_installed {int(board_parts_installed)}\n" + PRELUDE)
    log = tmp / "calls.txt"
    res = subprocess.run([TCLSH, str(prelude), str(log), str(script)], capture_output=True,
                         text=True, timeout=60)
    calls = [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []
    return res.returncode, res.stderr, calls


# ------------------------------------------------------------------ the wrapper

def contract_verilog(module: str) -> str:
    """A stand-in ``<core top>_axi`` with the contract's ports (notes/axi_contract.md),
    for the checks that do not need helper A's real wrapper."""
    decls = [f"    {d} wire {f'[{w - 1}:0] ' if w > 1 else ''}{n}"
             for n, (d, w) in bs.WRAPPER_PORTS.items()]
    attr = ('    (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF s_axis:m_axis:s_axi_ctrl, '
            'ASSOCIATED_RESET aresetn" *)\n')
    return f"module {module} (\n{attr}" + ",\n".join(decls) + "\n);\nendmodule\n"


def standin_wrapper(folder: Path, module: str = "sqz_tiny_axi") -> bs.Wrapper:
    folder.mkdir(parents=True, exist_ok=True)
    core = folder / "sqz_tiny.v"
    core.write_text("module sqz_tiny (input wire clk);\nendmodule\n")
    top = folder / f"{module}.v"
    top.write_text(contract_verilog(module))
    return bs.Wrapper(module=module, sources=(core, top), spec_name="tiny", core_top="sqz_tiny",
                      frame_bytes=35 * 35 * 3, out_bytes=20, field_bits=16, score_bits=16,
                      score_signed=True, classes=10, frame_shape=(35, 35, 3),
                      logit_format={"width": 16, "integer": 6, "signed": True},
                      registers=[{"name": "ID", "offset": 0}])


def interfaces_of(ports) -> dict[str, dict[str, object]]:
    """AXI-Stream and AXI4-Lite interfaces by port-name prefix (what a module reference
    infers from the names), each {signal: Port}."""
    found: dict[str, dict[str, object]] = {}
    for p in ports:
        m = re.fullmatch(rf"(\w+?)_({'|'.join(AXIS + AXI_LITE)})", p.name)
        if m:
            found.setdefault(m.group(1), {})[m.group(2)] = p
    return found


def check_wrapper_side(calls, w: bs.Wrapper, clock_mhz: float) -> None:
    """The recorded calls against the wrapper's Verilog and the Xilinx IPs' pins."""
    top = next(s for s in w.sources if s.name == f"{w.module}.v")
    text = top.read_text()
    ports = {p.name: p for p in parse_ports(text, w.module)}
    intfs = interfaces_of(ports.values())
    busif = re.search(r"ASSOCIATED_BUSIF\s+([\w:]+)", text)
    assert busif, f"{top}: no ASSOCIATED_BUSIF on the clock"
    assert set(busif.group(1).split(":")) == set(bs.WRAPPER_INTERFACES)
    # a FREQ_HZ fixed in the Verilog would have to equal pl_clk0 (validate_bd_design)
    freq = re.search(r"FREQ_HZ\s+(\d+)", text)
    assert freq is None or int(freq.group(1)) == round(clock_mhz * 1e6)

    cells = {c[2]: c[3] if c[1] == "ip" else "module" for c in calls if c[0] == "CELL"}
    assert [c[3] for c in calls if c[0] == "CELL" and c[1] == "module"] == [w.module]
    assert cells[bs.CELL_CORE] == "module" and cells[bs.CELL_DMA] == "axi_dma"
    assert cells["zynq_ultra_ps_e_0"] == "zynq_ultra_ps_e"
    props: dict[str, dict[str, str]] = {}
    for c in calls:
        if c[0] == "PROP" and c[1].startswith("bd_cell:"):
            props.setdefault(c[1][8:], {})[c[2].removeprefix("CONFIG.")] = c[3]
    for kind, cell, ip, pin in (c for c in calls if c[0] in ("INTF_PIN", "PIN")):
        if cell == bs.CELL_CORE:
            if kind == "INTF_PIN":
                assert pin in intfs, f"sqz/{pin}: no such interface in {top} ({sorted(intfs)})"
                assert pin in busif.group(1).split(":")
            else:
                assert pin in ports, f"sqz/{pin}: no such port in {top}"
        else:
            known = IP_PINS[ip][0 if kind == "INTF_PIN" else 1]
            assert pin in known, f"{cell}/{pin}: {ip} has no such {kind.lower()}"
            if ip == "smartconnect" and kind == "INTF_PIN":
                side = "NUM_SI" if pin[0] == "S" else "NUM_MI"
                assert int(pin[1:3]) < int(props[cell][side]), f"{cell}/{pin} beyond {side}"
    # the wrapper's interfaces, each connected once, to the DMA's matching side
    intf = {(a, b) for c in calls if c[0] == "CONNECT_INTF" for a, b in [(c[1], c[2])]}
    assert (f"{bs.CELL_DMA}/M_AXIS_MM2S", "sqz/s_axis") in intf
    assert ("sqz/m_axis", f"{bs.CELL_DMA}/S_AXIS_S2MM") in intf
    assert ("ctrl_smc/M01_AXI", "sqz/s_axi_ctrl") in intf
    for name in bs.WRAPPER_INTERFACES:
        assert sum(f"sqz/{name}" in pair for pair in intf) == 1
    s_in, s_out, ctrl = (intfs[n] for n in bs.WRAPPER_INTERFACES)
    assert set(s_in) == set(s_out) == set(AXIS) and set(ctrl) == set(AXI_LITE)
    assert s_in["tdata"].direction == "input" and s_in["tready"].direction == "output"
    assert s_out["tdata"].direction == "output" and s_out["tready"].direction == "input"
    assert ctrl["awaddr"].direction == "input" and ctrl["rdata"].direction == "output"
    assert ctrl["wdata"].width == ctrl["rdata"].width == 32
    dma = props[bs.CELL_DMA]
    for k, v in dma.items():
        assert k in DMA_PARAMS and v in DMA_PARAMS[k], f"dma CONFIG.{k} = {v}"
    assert dma["c_include_sg"] == "0" and dma["c_sg_length_width"] == "26"
    assert int(dma["c_m_axis_mm2s_tdata_width"]) == s_in["tdata"].width \
        == 8 * w.in_bytes_per_beat
    assert int(dma["c_s_axis_s2mm_tdata_width"]) == s_out["tdata"].width \
        == 8 * w.out_bytes_per_beat
    assert s_in["tkeep"].width * 8 == s_in["tdata"].width
    assert w.frame_bytes < 2 ** int(dma["c_sg_length_width"])
    ps = props["zynq_ultra_ps_e_0"]
    assert float(ps["PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"]) == clock_mhz
    assert ps["PSU__USE__M_AXI_GP0"] == "1" and ps["PSU__USE__S_AXI_GP2"] == "1"
    assert ps["PSU__SAXIGP2__DATA_WIDTH"] == dma["c_m_axi_mm2s_data_width"]
    # one clock net from pl_clk0 reaches every clock pin, the wrapper's included
    nets = [c[1:] for c in calls if c[0] == "CONNECT_NET"]
    clock = next(n for n in nets if n[0] == "zynq_ultra_ps_e_0/pl_clk0")
    clock_pins = {f"{cell}/{pin}" for kind, cell, _, pin in (c for c in calls if c[0] == "PIN")
                  if pin.endswith("aclk") or pin in ("slowest_sync_clk",)}
    assert clock_pins <= set(clock) and "sqz/aclk" in clock
    assert any("sqz/aresetn" in n and "rst_pl/peripheral_aresetn" in n for n in nets)


def check_flow(calls, s: bs.BoardScripts) -> None:
    """Order of the flow and the files it leaves where PYNQ and the CLI look."""
    order = [c[0] for c in calls]
    first = {k: order.index(k) for k in ("PROJECT", "BD", "ADDRESS", "VALIDATE", "WRAPPER",
                                          "OPEN_RUN")}
    assert first["PROJECT"] < first["BD"] < first["ADDRESS"] < first["VALIDATE"] \
        < first["WRAPPER"] < first["OPEN_RUN"]
    assert [c[1:] for c in calls if c[0] == "LAUNCH"] == [["synth_1", ""],
                                                         ["impl_1", "write_bitstream"]]
    project = next(c for c in calls if c[0] == "PROJECT")
    assert project[2] == str(s.project_dir) and project[3] == s.board.part
    assert ["BOARD_PARTS", s.board.board_part] in calls
    props = {(c[1], c[2]): c[3] for c in calls if c[0] == "PROP"}
    assert props[("fileset:sources_1", "top")] == f"{bs.BD_NAME}_wrapper"
    assert "FILE" in order and f"/stub/hdl/{bs.BD_NAME}_wrapper.v" in [c[1] for c in calls
                                                                        if c[0] == "FILE"]
    copies = {Path(c[2]): c[1] for c in calls if c[0] == "COPY"}
    assert set(copies) == {s.bit, s.hwh}
    assert s.bit.stem == s.hwh.stem == s.board.name        # PYNQ: same stem
    assert copies[s.hwh].endswith(f"hw_handoff/{bs.BD_NAME}.hwh")
    reports = {c[1]: Path(c[2]) for c in calls if c[0] == "REPORT"}
    assert reports == {"report_utilization": s.utilization,
                       "report_timing_summary": s.timing, "write_hw_platform": s.xsa}


# ------------------------------------------------------------------ tests: the scripts

@needs_tclsh
def test_scripts_under_stubbed_vivado(build_tmp):
    w = standin_wrapper(build_tmp / "rtl")
    s = bs.write_board_project(board_info("zcu102"), w, 200.0, out_dir=build_tmp / "zcu102")
    assert all(p.is_file() for p in [*s.scripts, s.deploy])
    rc, err, calls = run_stubbed(s.run, build_tmp)
    assert rc == 0, err
    check_wrapper_side(calls, w, 200.0)
    check_flow(calls, s)
    assert "IP_CATALOG" not in [c[0] for c in calls]   # no hls4ml IP given
    deploy = json.loads(s.deploy.read_text())
    assert deploy["board"] == "zcu102" and deploy["cells"]["dma"] == bs.CELL_DMA
    assert deploy["frame_bytes"] == 3675 and deploy["out_bytes"] == 20
    assert deploy["registers"] == [{"name": "ID", "offset": 0}]
    assert (deploy["bitstream"], deploy["hwh"]) == ("zcu102.bit", "zcu102.hwh")


@needs_tclsh
@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_board_and_an_hls4ml_ip_repo(build_tmp, name):
    board = board_info(name)
    ip = build_tmp / "hls" / "squeezenet_prj" / "solution1" / "impl" / "ip"
    ip.mkdir(parents=True)
    w = standin_wrapper(build_tmp / "rtl")
    s = bs.write_board_project(board, w, 187.5, out_dir=build_tmp / name, ip_repo=ip)
    rc, err, calls = run_stubbed(s.run, build_tmp)
    assert rc == 0, err
    check_wrapper_side(calls, w, 187.5)
    check_flow(calls, s)
    assert [c[3] for c in calls if c[0] == "PROP" and c[2] == "ip_repo_paths"] == [str(ip)]
    assert "IP_CATALOG" in [c[0] for c in calls]


@needs_tclsh
def test_build_script_alone_opens_the_project(build_tmp):
    s = bs.write_board_project(board_info("zcu104"), standin_wrapper(build_tmp / "rtl"), 200.0,
                               out_dir=build_tmp / "zcu104")
    rc, err, calls = run_stubbed(s.build, build_tmp)
    assert rc == 0, err
    assert calls[0] == ["OPEN_PROJECT", str(s.project_dir / f"{s.project_name}.xpr")]


@needs_tclsh
def test_missing_board_files_stop_the_script(build_tmp):
    s = bs.write_board_project(board_info("kv260"), standin_wrapper(build_tmp / "rtl"), 200.0,
                               out_dir=build_tmp / "kv260")
    rc, err, calls = run_stubbed(s.run, build_tmp, board_parts_installed=False)
    assert rc == 1
    assert "the board files of kv260 (xilinx.com:kv260_som:part0:*) are not installed" in err
    assert "BD" not in [c[0] for c in calls]


@needs_tclsh
@pytest.mark.parametrize("script, expect", [
    ("create_bd_cell -type module sqz\n", "no block design"),
    ("create_project p /tmp/p -part xczu9eg-ffvb1156-2-e\ncreate_bd_design d\n"
     "create_bd_cell -type module sqz\n", "-reference and no -vlnv"),
    ("create_project p /tmp/p -part xczu9eg-ffvb1156-2-e -bogus\n", "unknown option -bogus"),
    ("launch_runs impl_1\n", "no project open"),
    ("create_project p /tmp/p -part xczu9eg-ffvb1156-2-e\n"
     "set_property -dict [list CONFIG.a] [current_project]\n", "not name/value pairs"),
    ("open_bd_design x\n", "unknown command: open_bd_design"),
], ids=["order", "module-without-reference", "unknown-option", "no-project", "odd-dict",
        "unknown-command"])
def test_the_stubs_refuse_what_vivado_would(build_tmp, script, expect):
    """The harness itself: an unknown command, an unknown option, a missing argument or a
    command out of order fails the run."""
    path = build_tmp / "bad.tcl"
    path.write_text(script)
    rc, err, _ = run_stubbed(path, build_tmp)
    assert rc == 1 and expect in err, err


def test_contract_ports_are_one_table():
    """The stand-in follows WRAPPER_PORTS, whose interfaces are the three the Tcl wires."""
    ports = parse_ports(contract_verilog("x_axi"), "x_axi")
    assert {p.name: (p.direction, p.width) for p in ports} == bs.WRAPPER_PORTS
    assert set(interfaces_of(ports)) == set(bs.WRAPPER_INTERFACES)


# ------------------------------------------------------------------ refusals

def test_hostile_values_are_refused_before_any_tcl(build_tmp):
    w = standin_wrapper(build_tmp / "rtl")
    out = build_tmp / "out"
    zcu102 = board_info("zcu102")
    for name in ("zcu999", "zcu102;ls", "zcu102[x]", "ZCU102", "", None):
        with pytest.raises(InputError, match="not a supported board"):
            board_info(name)
    bad_dir = build_tmp / "has$dollar"
    bad_dir.mkdir()
    bad_src = bad_dir / "x.v"
    bad_src.write_text("module x; endmodule\n")
    spaced = build_tmp / "a b"
    for kwargs, match in [
        (dict(wrapper=replace(w, module="sqz;x")), "wrapper module"),
        (dict(wrapper=replace(w, module="a[b]")), "wrapper module"),
        (dict(wrapper=replace(w, core_top="x y")), "core top"),
        (dict(wrapper=replace(w, sources=(bad_src,))), r"holds '\$'"),
        (dict(wrapper=replace(w, sources=(Path("rel.v"),))), "absolute"),
        (dict(wrapper=replace(w, sources=(build_tmp / "none.v",))), "not found"),
        (dict(wrapper=replace(w, module="other_axi")), "no source declares module other_axi"),
        (dict(wrapper=replace(w, frame_bytes=2**26)), "one DMA transfer"),
        (dict(wrapper=replace(w, in_bytes_per_beat=3)), "bytes per beat"),
        (dict(out_dir=build_tmp / "x[1]"), r"holds '\[\]'"),
        (dict(out_dir=spaced), r"holds ' '"),
        (dict(out_dir=Path("/tmp/outside")), "outside the build folder"),
        (dict(ip_repo=build_tmp / "ip{x}"), r"holds '\{\}'"),
        (dict(clock_mhz=1e9), "target.clock_mhz"),
        (dict(clock_mhz=float("nan")), "target.clock_mhz"),
        (dict(jobs=0), "jobs"),
    ]:
        args = dict(board=zcu102, wrapper=w, clock_mhz=200.0, out_dir=out) | kwargs
        with pytest.raises(SqzError, match=match):
            bs.write_board_project(**args)
        assert not out.exists() and not (build_tmp / "x[1]").exists()
        assert not spaced.exists()


def test_the_board_sets_the_part(tmp_path):
    spec = load_spec(paths.CONFIGS / "tiny.yaml")
    said = []
    zcu104 = board_info("zcu104")
    moved = bs.board_spec(spec, zcu104, log=said.append)
    assert moved.target.part == "xczu7ev-ffvc1156-2-e" and spec.target.part != moved.target.part
    assert said == ["part: tiny is written for xczu9eg-ffvb1156-2-e, board zcu104 carries "
                    "xczu7ev-ffvc1156-2-e: planned for xczu7ev-ffvc1156-2-e"]
    assert bs.board_spec(spec, board_info("zcu102"), log=said.append) is spec
    with pytest.raises(InputError, match="--part xczu9eg-ffvb1156-2-e is not the part of board "
                                         r"zcu104 \(xczu7ev-ffvc1156-2-e\)"):
        bs.board_spec(spec, zcu104, part_flag="xczu9eg-ffvb1156-2-e")


def test_without_vivado_the_error_names_it(build_tmp, monkeypatch):
    s = bs.write_board_project(board_info("zcu102"), standin_wrapper(build_tmp / "rtl"), 200.0,
                               out_dir=build_tmp / "zcu102")
    monkeypatch.setenv("PATH", str(build_tmp))
    with pytest.raises(ToolNotFound) as err:
        bs.find_vivado(s)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("no Vivado on PATH: looked for vivado.")
    assert str(s.run) in msg and "make bitstream BOARD=zcu102" in msg


# ------------------------------------------------------------------ Vivado's reports

UTILIZATION = """\
1. CLB Logic
------------

+----------------------------+--------+-------+------------+-----------+-------+
|          Site Type         |  Used  | Fixed | Prohibited | Available | Util% |
+----------------------------+--------+-------+------------+-----------+-------+
| CLB LUTs*                  | 123456 |     0 |          0 |    274080 | 45.04 |
|   LUT as Logic             | 120000 |     0 |          0 |    274080 | 43.78 |
| CLB Registers              | 150000 |     0 |          0 |    548160 | 27.36 |
+----------------------------+--------+-------+------------+-----------+-------+

3. BLOCKRAM
-----------

+-------------------+-------+-------+------------+-----------+-------+
|     Site Type     |  Used | Fixed | Prohibited | Available | Util% |
+-------------------+-------+-------+------------+-----------+-------+
| Block RAM Tile    | 700.5 |     0 |          0 |       912 | 76.81 |
|   RAMB36/FIFO*    |   690 |     0 |          0 |       912 | 75.66 |
| URAM              |     0 |     0 |          0 |         0 |  0.00 |
+-------------------+-------+-------+------------+-----------+-------+

4. ARITHMETIC
-------------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           | 1860 |     0 |          0 |      2520 | 73.81 |
+----------------+------+-------+------------+-----------+-------+
"""

TIMING = """\
------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------
     -0.125       -3.500                     40               400000        0.010        0.000                      0               400000        1.958        0.000                       0                150000
"""  # noqa: E501


def test_report_parsing():
    """Hand-written excerpts in the layout of Vivado's report_utilization and
    report_timing_summary (not the output of a run)."""
    u = bs.parse_utilization(UTILIZATION)
    assert (u["LUT"].used, u["LUT"].available) == (123456, 274080)
    assert u["FF"].used == 150000 and u["BRAM"].used == 700.5 and u["DSP"].percent == 73.81
    t = bs.parse_timing_summary(TIMING)
    assert t == {"WNS": -0.125, "TNS": -3.5, "WHS": 0.01, "THS": 0.0}
    with pytest.raises(InputError, match="no Design Timing Summary"):
        bs.parse_timing_summary("nothing here")


def test_fake_vivado_run_reads_the_reports(build_tmp):
    """The driver's plumbing with a shell script standing in for vivado: argv, the copies
    it checks for, the figures it prints (no Vivado involved)."""
    s = bs.write_board_project(board_info("zcu102"), standin_wrapper(build_tmp / "rtl"), 200.0,
                               out_dir=build_tmp / "zcu102")
    fake = build_tmp / "vivado"
    fake.write_text("#!/bin/sh\n"
                    f'echo "$@" > {build_tmp}/argv\n'
                    f"cp {build_tmp}/u.rpt {s.utilization}\ncp {build_tmp}/t.rpt {s.timing}\n"
                    f"touch {s.bit} {s.hwh}\n")
    fake.chmod(0o755)
    (build_tmp / "u.rpt").write_text(UTILIZATION)
    (build_tmp / "t.rpt").write_text(TIMING)
    res = bs.run_vivado(str(fake), s, log=lambda *a: None)
    assert (build_tmp / "argv").read_text().split() == [
        "-mode", "batch", "-nojournal", "-log", str(s.log), "-source", str(s.run)]
    assert not res.timing_met
    text = res.format()
    assert "DSP          1,860 /      2,520 (73.8%)" in text
    assert "WNS -0.125 ns" in text and "NOT met" in text


# ------------------------------------------------------------------ the real wrapper

@pytest.fixture(scope="module")
def cli_run():
    """``sqz bitstream --config tiny --board zcu102`` with no vivado on PATH, its board
    folder redirected into build/test-out: (exit code, stdout, stderr, folder)."""
    folder = paths.BUILD / "test-out" / "bitstream_cli"
    shutil.rmtree(folder, ignore_errors=True)
    rc, out, err = _cli_bitstream(["--config", "tiny", "--board", "zcu102"], folder)
    yield rc, out, err, folder / "zcu102"
    shutil.rmtree(folder, ignore_errors=True)


@needs_axi
def test_cli_without_vivado_writes_the_scripts_and_names_it(cli_run):
    rc, out, err, folder = cli_run
    assert rc == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Vivado on PATH: looked for "
                                                   "vivado."), err
    for name in ("create_project.tcl", "build.tcl", "run.tcl", "deploy.json"):
        assert (folder / name).is_file()
    assert "== Vivado project scripts:" in out
    deploy = json.loads((folder / "deploy.json").read_text())
    assert deploy["spec"] == "tiny" and deploy["module"] == "sqz_tiny_axi"
    assert deploy["frame_bytes"] == 35 * 35 * 3 and deploy["classes"] == 10


@needs_axi
@needs_tclsh
def test_scripts_against_the_real_wrapper(cli_run, tmp_path):
    """The generated Tcl of tiny against helper A's rendered wrapper Verilog: every sqz pin
    named in the Tcl is a port or an interface of that Verilog."""
    rc, _, err, folder = cli_run
    assert rc == 1, err
    deploy = json.loads((folder / "deploy.json").read_text())
    s = bs._scripts(board_info("zcu102"), folder)
    sources = tuple(Path(line.strip().strip("{} \\")) for line in s.create.read_text()
                    .split("add_files -norecurse [list \\\n", 1)[1].split("]")[0].splitlines()
                    if line.strip().startswith("{"))
    w = bs.Wrapper(module=deploy["module"], sources=sources, spec_name=deploy["spec"],
                   core_top=deploy["core_top"], frame_bytes=deploy["frame_bytes"],
                   out_bytes=deploy["out_bytes"], field_bits=deploy["field_bits"],
                   score_bits=deploy["score_bits"], score_signed=deploy["score_signed"],
                   classes=deploy["classes"], in_bytes_per_beat=deploy["in_bytes_per_beat"],
                   out_bytes_per_beat=deploy["out_bytes_per_beat"])
    rc, err, calls = run_stubbed(s.run, tmp_path)
    assert rc == 0, err
    check_wrapper_side(calls, w, 200.0)
    check_flow(calls, s)
    top = next(p for p in sources if p.name == f"{w.module}.v")
    ports = {p.name: (p.direction, p.width) for p in parse_ports(top.read_text(), w.module)}
    assert ports == bs.WRAPPER_PORTS    # the contract's table is the Verilog's


def test_cli_refuses_a_hostile_board_before_any_work(capsys):
    from hls import cli

    assert cli.main(["bitstream", "--config", "tiny", "--board", "zcu102;rm"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --board: 'zcu102;rm' is not a supported board; supported: zcu102, "
                   "zcu104, kv260\n")
    assert not (paths.BUILD / "board" / "zcu102;rm").exists()


# ------------------------------------------------------------------ --core hls4ml

def _cli_bitstream(argv, folder: Path):
    """``sqz bitstream ...`` with the board folder under ``folder`` and no vivado on PATH:
    (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bs, "board_dir", lambda board: folder / board.name)
        no_vivado = [d for d in os.environ.get("PATH", "").split(os.pathsep)
                     if d and not (Path(d) / "vivado").exists()]
        mp.setenv("PATH", os.pathsep.join(no_vivado))
        from hls import cli

        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["bitstream", *argv])
    return rc, out.getvalue(), err.getvalue()


@needs_axi
@needs_tclsh
def test_hls4ml_core_behind_the_adapter(build_tmp, monkeypatch, tmp_path):
    """``--core hls4ml`` on a fake ``make synth`` export: a Vitis-style stand-in
    (sim/vendor_mock.py, the open RTL top behind the vendor's ports, not vendor RTL) with a
    ROM file and an IP Tcl beside it. The Tcl adds the exported Verilog, the memory file,
    the adapter, the shell and the wrapper; every sqz pin is a port of the rendered
    wrapper, which instantiates the adapter with all classes per core beat."""
    from sim.vendor_mock import mock_vendor_top

    project = build_tmp / "hls" / "tiny_vitis"
    export = project / "squeezenet_prj" / "solution1" / "impl" / "verilog"
    export.mkdir(parents=True)
    (export / "squeezenet.v").write_text(mock_vendor_top("vitis", "sqz_tiny", 10, 16))
    (export / "squeezenet_w2_rom.v").write_text(
        'module squeezenet_w2_rom;\ninitial $readmemh("./squeezenet_w2_rom.dat", mem);\n'
        "endmodule\n")
    (export / "squeezenet_w2_rom.dat").write_text("00\n01\n")
    (export / "squeezenet_fadd_ip.tcl").write_text("# create_ip ...\n")
    monkeypatch.setattr(bs, "hls4ml_verilog_dirs",
                        lambda spec: [(project, "*_prj/solution1/impl/verilog")])
    rc, out, err = _cli_bitstream(["--config", "tiny", "--board", "zcu102", "--core",
                                   "hls4ml"], build_tmp / "board")
    assert rc == 1 and err.startswith("error: no Vivado on PATH"), err
    assert "squeezenet_fadd_ip.tcl" in out   # named, not sourced
    folder = build_tmp / "board" / "zcu102"
    deploy = json.loads((folder / "deploy.json").read_text())
    assert deploy["core"] == "hls4ml" and deploy["module"] == "sqz_tiny_axi"
    assert deploy["core_top"] == "sqz_tiny_hls4ml" and deploy["classes"] == 10
    s = bs._scripts(board_info("zcu102"), folder)
    rc, err, calls = run_stubbed(s.run, tmp_path)
    assert rc == 0, err
    rtl = folder / "rtl"
    files = [Path(c[1]) for c in calls if c[0] == "FILE"]
    assert files[:6] == [export / "squeezenet.v", export / "squeezenet_w2_rom.v",
                         rtl / "sqz_tiny_hls4ml.v", paths.RTL_DIR / "sqz_axi_shell.v",
                         rtl / "sqz_tiny_axi.v", export / "squeezenet_w2_rom.dat"]
    assert not any(f.suffix == ".tcl" for f in files)
    assert not (rtl / "sqz_tiny.v").exists()     # the open core is not written
    w = bs.Wrapper(module="sqz_tiny_axi", sources=tuple(files[:5]), spec_name="tiny",
                   core_top="sqz_tiny_hls4ml", frame_bytes=deploy["frame_bytes"],
                   out_bytes=deploy["out_bytes"], field_bits=16, score_bits=16,
                   score_signed=deploy["score_signed"], classes=10, core="hls4ml")
    check_wrapper_side(calls, w, 200.0)
    check_flow(calls, s)
    top = (rtl / "sqz_tiny_axi.v").read_text()
    ports = {p.name: (p.direction, p.width) for p in parse_ports(top, w.module)}
    assert ports == bs.WRAPPER_PORTS
    assert re.search(r"^sqz_tiny_hls4ml core \(", top, re.M)
    assert ".CORE_LANES(10)" in top and "wire [159:0] core_m_tdata;" in top
    adapter = parse_ports((rtl / "sqz_tiny_hls4ml.v").read_text(), "sqz_tiny_hls4ml")
    assert {p.name: p.width for p in adapter}["m_axis_tdata"] == 160


def test_hls4ml_core_without_an_export_stops_before_any_tcl(build_tmp, monkeypatch):
    monkeypatch.setattr(bs, "hls4ml_verilog_dirs",
                        lambda spec: [(build_tmp / "hls" / "tiny_vitis",
                                       "*_prj/solution1/impl/verilog")])
    rc, out, err = _cli_bitstream(["--config", "tiny", "--board", "zcu102", "--core",
                                   "hls4ml"], build_tmp / "board")
    assert rc == 2
    assert err == (f"error: --core hls4ml: no Verilog exported by make synth for tiny; looked "
                   f"in {build_tmp}/hls/tiny_vitis/*_prj/solution1/impl/verilog/*.v; run "
                   "`make synth CONFIG=<the config of tiny>` where Vitis HLS or Vivado HLS is "
                   "installed, or use --core open\n")
    assert not (build_tmp / "board").exists()
