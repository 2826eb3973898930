"""A non-editable install works: the wheel carries the hand-written hardware sources, the
bundled configs and the class names, and ``model.paths`` finds them from any directory.

The wheel is built offline from a copy of the checkout (so no ``build/`` or ``*.egg-info``
lands in the tree) with the virtual environment's setuptools, without build isolation:
pyproject.toml's dev extras pin the setuptools that this needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from model.paths import REPO

PACKAGE_DATA = [
    "firmware/rtl/sqz_mvu.v",
    "firmware/rtl/sqz_top.v.j2",
    "firmware/rtl/sqz_vendor_adapter.v.j2",
    "sim/templates/vendor_mock.v.j2",
    "firmware/nnet_sqz_pool_stream.h",
    "firmware/tb_bitexact.cpp",
    "configs/squeezenet_v1_1.yaml",
    "model/data/imagenet_classes.txt",
]

CHECK = """
from model import paths
from model.imagenet import imagenet_class_names
from model.spec import load_spec
assert (paths.RTL_DIR / "sqz_mvu.v").is_file(), paths.RTL_DIR
assert (paths.RTL_DIR / "sqz_top.v.j2").is_file(), paths.RTL_DIR
assert (paths.FIRMWARE / "nnet_sqz_pool_stream.h").is_file(), paths.FIRMWARE
assert (paths.FIRMWARE / "tb_bitexact.cpp").is_file(), paths.FIRMWARE
assert paths.DEFAULT_CONFIG.is_file() and paths.TRAIN_CONFIG.is_file(), paths.CONFIGS
assert load_spec(paths.config_path("tiny")).name == "tiny"
assert len(imagenet_class_names()) == 1000
print(paths.FIRMWARE)
"""


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False,
                         timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_wheel_carries_package_data_and_runs_installed(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "sim_build"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", str(dist), "."], cwd=src)
    (wheel,) = dist.glob("squeezenet_fpga-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in PACKAGE_DATA if p not in names]
    assert not missing, f"{wheel.name} lacks {missing}"

    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
          "--target", str(site), str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # PYTHONPATH comes before the editable install's entry, so the copy under site/ is
    # imported; the printed FIRMWARE path proves it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    out = _run([sys.executable, "-c", CHECK], cwd=elsewhere, env=env)
    assert Path(out.strip()) == site / "firmware"
