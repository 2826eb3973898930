"""Where the project's files are: the one definition of the repository, build and source paths.

Hand-written hardware sources (``firmware``) and the bundled configs (``configs``) are
package data, located through ``importlib.resources``, so the installed ``sqz`` finds them
whether it was installed editable or not. Generated files go under ``BUILD``: the
checkout's ``build/`` when running from a checkout, else ``./build`` of the working
directory.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.spec import NetworkSpec

_ROOT = Path(__file__).resolve().parents[1]
# A checkout holds pyproject.toml beside the packages; an installed copy does not.
REPO: Path = _ROOT if (_ROOT / "pyproject.toml").is_file() else Path.cwd()
BUILD: Path = REPO / "build"
FIRMWARE: Path = Path(str(resources.files("firmware")))
RTL_DIR: Path = FIRMWARE / "rtl"
CONFIGS: Path = Path(str(resources.files("configs")))
DEFAULT_CONFIG: Path = CONFIGS / "squeezenet_v1_1.yaml"
TRAIN_CONFIG: Path = CONFIGS / "fashion_mnist.yaml"
# The hls4ml project (and so its top-level C++ function and exported RTL module) name.
HLS_PROJECT_NAME = "squeezenet"


def build_path(*parts: str | Path) -> Path:
    """``BUILD / parts...``, resolved, and refused unless it lies inside ``BUILD``: every
    generated file goes under the build folder, whatever a spec name or a flag holds."""
    from model.errors import InputError

    root = BUILD.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise InputError(f"output path {path} is outside the build folder {root}; names "
                         "and output folders must stay inside it")
    return path


def config_path(name: str | Path) -> Path:
    """A config given as a path, or as the name of a bundled one (``tiny`` or ``tiny.yaml``)."""
    p = Path(name)
    if p.exists() or p.is_absolute() or len(p.parts) > 1:
        return p
    bundled = CONFIGS / (p.name if p.suffix else p.name + ".yaml")
    return bundled if bundled.is_file() else p


def top_module_name(spec: NetworkSpec) -> str:
    """The Verilog module name of the spec's generated RTL top, also its file name
    (``<name>.v``): ``sqz_`` + the spec's name, every character not allowed in a Verilog
    identifier (``.`` and ``-`` in the bundled names) replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"sqz_{spec.name}")
