"""Builds sap_kernels._C with CMake (the pybind11 cmake_example pattern). No torch needed."""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class CMakeExtension(Extension):
    def __init__(self, name: str, source_dir: str = ".") -> None:
        super().__init__(name, sources=[])
        self.source_dir = str(Path(source_dir).resolve())


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        output_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_type = "Debug" if self.debug else "Release"
        import pybind11  # a build requirement (pyproject.toml)

        configure = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={output_dir}{os.sep}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={build_type}",
        ]
        # Pass-through options, e.g. SAP_KERNELS_CUDA=ON or SAP_KERNELS_NATIVE=ON.
        for name in ("SAP_KERNELS_CUDA", "SAP_KERNELS_NATIVE", "CMAKE_CUDA_ARCHITECTURES"):
            if name in os.environ:
                configure.append(f"-D{name}={os.environ[name]}")
        configure += [arg for arg in os.environ.get("CMAKE_ARGS", "").split() if arg]
        build_dir = Path(self.build_temp) / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run(["cmake", ext.source_dir, *configure], cwd=build_dir, check=True)
        subprocess.run(
            ["cmake", "--build", ".", "--config", build_type, "--parallel", jobs],
            cwd=build_dir,
            check=True,
        )


setup(
    ext_modules=[CMakeExtension("sap_kernels._C")],
    cmdclass={"build_ext": CMakeBuild},
)
