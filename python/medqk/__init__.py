"""medqk: fast, exact CPU quantization kernels for embedding retrieval.

Kernels run on the native C++ module (per-ISA SIMD: AVX2, NEON, NEON dotprod, scalar reference)
or on Numba twins with identical integer results; see :func:`info`.

``import medqk`` loads only the native module and reads ``MEDQK_BACKEND`` / ``MEDQK_ISA`` (a bad value is a
RuntimeError here, naming the variable, its value and the valid choices). Everything else is imported on
first use (PEP 562): the kernels and numpy on the first kernel name, the subpackages :mod:`medqk.index`,
:mod:`medqk.eval`, :mod:`medqk.quantizers`, :mod:`medqk.kernels`, :mod:`medqk.encoder`, :mod:`medqk.distributed`
and :mod:`medqk.data` on first access
(``medqk.index.create(...)`` works after a plain ``import medqk``).
"""

from . import _backend

if _backend.env_error is not None:
    from ._command import started_as_command as _started_as_command

    # the `medqk` command prints this as one `medqk: error:` line (medqk.cli.main); anything else gets it now
    if not _started_as_command():
        raise RuntimeError(_backend.env_error)

# public name -> the module (relative to this package) that defines it
_LAZY_NAMES = {
    "MAX_GEMM_K": "kernels",
    "PackedS8": "kernels",
    "gemm_s8s8_s32": "kernels",
    "pack_s8": "kernels",
    "pq_assign": "kernels",
    "quantize_rows_s8": "kernels",
    "QuantizedLinear": "linear",
    "LayerFileError": "_errors",  # a saved layer that cannot be read (QuantizedLinear.load)
    "MedqkFileError": "_errors",  # the base of every file error (medqk.index.IndexFileError too)
    "ModelFileError": "_errors",  # a saved model that cannot be read (SentenceEncoder.load of a .mqm)
    "QuantizedWeight": "weights",
    "dequantize": "weights",
    "quantize_weights": "weights",
    "get_cmake_dir": "_cmake",  # the installed C++ headers and CMake package
    "get_include": "_cmake",
    "available_isas": "runtime",
    "get_backend": "runtime",
    "get_isa": "runtime",
    "info": "runtime",
    "kernel_variants": "runtime",
    "set_backend": "runtime",
    "set_isa": "runtime",
    "use_backend": "runtime",
    "use_isa": "runtime",
    "use_kernel": "runtime",
}
# codebook: a module
_SUBPACKAGES = ("codebook", "data", "distributed", "encoder", "eval", "index", "kernels", "quantizers")


__all__ = [
    "LayerFileError",
    "MAX_GEMM_K",
    "MedqkFileError",
    "ModelFileError",
    "PackedS8",
    "QuantizedLinear",
    "QuantizedWeight",
    "__version__",
    "available_isas",
    "codebook",
    "dequantize",
    "gemm_s8s8_s32",
    "get_backend",
    "get_cmake_dir",
    "get_include",
    "get_isa",
    "info",
    "kernel_variants",
    "pack_s8",
    "pq_assign",
    "quantize_rows_s8",
    "quantize_weights",
    "set_backend",
    "set_isa",
    "use_backend",
    "use_isa",
    "use_kernel",
]




def __getattr__(name: str):
    from importlib import import_module

    if name in _SUBPACKAGES:
        return import_module(f"{__name__}.{name}")  # the import also binds it here
    if name == "__version__":
        from ._version import read_version

        value = read_version()
    elif name in _LAZY_NAMES:
        value = getattr(import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list:
    # the public API and the subpackages, not the implementation modules (runtime, linear, cli, _backend...)
    # that importing binds here
    dunders = {n for n in globals() if n.startswith("__") and n.endswith("__")}
    return sorted({*__all__, *_SUBPACKAGES} | dunders)

