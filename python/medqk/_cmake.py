"""Where the installed wheel keeps medqk's C++ package (as ``pybind11.get_include`` / ``get_cmake_dir``).

The wheel installs the public headers, the static library ``libmedqk_core.a`` and a CMake package config
inside the Python package::

    medqk/include/medqk/medqk.h
    medqk/lib/libmedqk_core.a
    medqk/share/cmake/medqk/medqkConfig.cmake  (target medqk::medqk)

A C++ project then builds against it with
``cmake -Dmedqk_DIR="$(python -c 'import medqk; print(medqk.get_cmake_dir())')"`` and
``find_package(medqk CONFIG REQUIRED)`` / ``target_link_libraries(app PRIVATE medqk::medqk)``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _installed(folder: Path, marker: str, what: str) -> str:
    if not (folder / marker).is_file():
        raise FileNotFoundError(
            f"medqk's {what} are not installed in {_PACKAGE_DIR} (no {marker} under {folder}): this medqk "
            "runs from a source tree, where they are not copied in. Install the package "
            "(pip install medqk, or pip install . in a checkout), or from a checkout use csrc/include and "
            "`cmake --install` (share/cmake/medqk under the prefix)."
        )
    return str(folder)


def get_include() -> str:
    """The folder to add to the include path for ``#include <medqk/medqk.h>``.

    Raises FileNotFoundError, saying why, when medqk is imported from a source tree without the headers.
    """
    return _installed(_PACKAGE_DIR / "include", "medqk/medqk.h", "C++ headers")


def get_cmake_dir() -> str:
    """The folder holding ``medqkConfig.cmake``: pass it as ``-Dmedqk_DIR=...`` to CMake.

    Raises FileNotFoundError, saying why, when medqk is imported from a source tree without the package.
    """
    return _installed(_PACKAGE_DIR / "share" / "cmake" / "medqk", "medqkConfig.cmake", "CMake package files")


__all__ = ["get_cmake_dir", "get_include"]
