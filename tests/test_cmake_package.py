"""The C++ package inside the installed wheel (issue 20, 19): medqk.get_include() / medqk.get_cmake_dir().

CI builds and runs tests/consumer against these folders (.ci/run); here the files and the paths are checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import medqk
from medqk import _cmake

PACKAGE_DIR = Path(medqk.__file__).resolve().parent
INSTALLED = (PACKAGE_DIR / "share" / "cmake" / "medqk").is_dir()


@pytest.mark.skipif(not INSTALLED, reason="medqk is imported from a source tree (python/medqk), where the wheel's "
                                          "C++ headers and CMake package are not copied in")
def test_installed_headers_library_and_cmake_package():
    include = Path(medqk.get_include())
    assert include == PACKAGE_DIR / "include"
    header = include / "medqk" / "medqk.h"
    assert "gemm_s8s8_s32" in header.read_text()
    assert "immintrin" not in header.read_text()  # the public API is intrinsic-free
    cmake_dir = Path(medqk.get_cmake_dir())
    assert cmake_dir == PACKAGE_DIR / "share" / "cmake" / "medqk"
    for name in ("medqkConfig.cmake", "medqkConfigVersion.cmake", "medqkTargets.cmake"):
        assert (cmake_dir / name).is_file(), name
    targets = (cmake_dir / "medqkTargets.cmake").read_text()
    assert "medqk::medqk" in targets and "Threads::Threads" in targets
    numeric = re.match(r"[0-9]+(\.[0-9]+)*", medqk.__version__).group(0)  # 0.2.0 of 0.2.0rc1, as CMake has it
    assert f'PACKAGE_VERSION "{numeric}"' in (cmake_dir / "medqkConfigVersion.cmake").read_text()
    assert (PACKAGE_DIR / "lib" / "libmedqk_core.a").is_file()


def test_clear_error_without_the_installed_files(tmp_path, monkeypatch):
    monkeypatch.setattr(_cmake, "_PACKAGE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="C\\+\\+ headers are not installed.*source tree"):
        medqk.get_include()
    with pytest.raises(FileNotFoundError, match="CMake package files are not installed.*source tree"):
        medqk.get_cmake_dir()


def test_paths_follow_the_package_folder(tmp_path, monkeypatch):
    (tmp_path / "include" / "medqk").mkdir(parents=True)
    (tmp_path / "include" / "medqk" / "medqk.h").write_text("")
    (tmp_path / "share" / "cmake" / "medqk").mkdir(parents=True)
    (tmp_path / "share" / "cmake" / "medqk" / "medqkConfig.cmake").write_text("")
    monkeypatch.setattr(_cmake, "_PACKAGE_DIR", tmp_path)
    assert medqk.get_include() == str(tmp_path / "include")
    assert medqk.get_cmake_dir() == str(tmp_path / "share" / "cmake" / "medqk")
    assert {"get_include", "get_cmake_dir"} <= set(medqk.__all__)
