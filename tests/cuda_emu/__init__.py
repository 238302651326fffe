"""Run ddpm_fast/cuda/kernels.cu on the CPU: each block's threads as std::threads (see emu.h).

``EmuLauncher(H)`` has the interface of ``ddpm_fast.gpu.CupyLauncher`` (xp, max_smem, H, tc, kernels,
launch, graph) with NumPy arrays, so ``ddpm_fast.gpu``'s host code and the kernels run unchanged without
a GPU. ``EmuLauncher(H, tc=False)`` is built with -DDDPM_NO_TC, as gpu.py recompiles when NVRTC cannot
compile the tensor-core kernels.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CUDA_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "ddpm_fast", "cuda")
MAX_SMEM = 232448          # sm_90's opt-in shared memory per block, so the host logic sizes as on an H100/H200


@functools.lru_cache(maxsize=1)
def compiler_status() -> str | None:
    """None when g++ builds the emulator's C++20 (std::barrier, threads); else why not."""
    if not shutil.which("g++"):
        return "g++ not found"
    with tempfile.TemporaryDirectory(prefix="ddpm_emu_probe_") as d:
        src = os.path.join(d, "probe.cpp")
        with open(src, "w") as f:
            f.write("#include <barrier>\n#include <thread>\nint main() { std::barrier<> b(1); b.arrive_and_wait(); }\n")
        res = subprocess.run(["g++", "-std=c++20", "-pthread", src, "-o", os.path.join(d, "probe")],
                             capture_output=True, text=True)
    return None if res.returncode == 0 else f"g++ cannot build C++20 std::barrier: {res.stderr.strip()[:200]}"


@functools.lru_cache(maxsize=8)
def _library(H: int, tc: bool = True) -> ctypes.CDLL:
    """kernels.cu built for hidden width H (without the tensor-core code unless ``tc``) and loaded; the
    build folder is deleted at once (the loaded library stays mapped), so test runs leave nothing in the
    temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ddpm_emu_") as d:
        out = os.path.join(d, f"emu{H}.so")
        cmd = ["g++", "-std=c++20", "-O2", "-pthread", "-shared", "-fPIC", "-Wno-unknown-pragmas",
               f"-DDDPM_H={H}", *(() if tc else ("-DDDPM_NO_TC",)), f"-I{CUDA_DIR}",
               os.path.join(HERE, "launch.cpp"), "-o", out]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        lib = ctypes.CDLL(out)
    lib.emu_launch_named.restype = ctypes.c_int
    lib.emu_launch_named.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_size_t,
                                     ctypes.POINTER(ctypes.c_void_p)]
    return lib


_SCALARS = {np.int32: ctypes.c_int32, np.int64: ctypes.c_int64, np.uint64: ctypes.c_uint64,
            np.float32: ctypes.c_float, np.float64: ctypes.c_double}


class EmuLauncher:
    xp = np
    max_smem = MAX_SMEM

    def __init__(self, H: int, tc: bool = True):
        from ddpm_fast.gpu import KERNEL_NAMES, TC_ONLY_KERNELS
        self.H = H                                            # the compiled hidden width (DDPM_H)
        self.tc = tc                                          # built with the tensor-core code
        self.kernels = tuple(n for n in KERNEL_NAMES if tc or n not in TC_ONLY_KERNELS)
        self.lib = _library(H, tc)
        self.launches = []                                    # (kernel name, grid) of every launch run
        self._capture = None

    def graph(self, enqueue):
        """Stand-in for CUDA graph capture: the launches ``enqueue()`` makes are recorded, not run, with
        the arguments they were given — the arrays themselves, as a captured graph holds device pointers
        — and every replay runs them again. So a graph replayed after its buffers were replaced works on
        the old buffers here too."""
        rec = []
        self._capture = rec
        try:
            enqueue()
        finally:
            self._capture = None

        def replay():
            for launch in rec:
                self._run(*launch)
        return replay

    def launch(self, name: str, grid: int, smem_bytes: int, args) -> None:
        if self._capture is not None:
            self._capture.append((name, grid, smem_bytes, list(args)))
        else:
            self._run(name, grid, smem_bytes, args)

    def _run(self, name: str, grid: int, smem_bytes: int, args) -> None:
        self.launches.append((name, int(grid)))
        keep, copies = [], []
        for a in args:
            if a is None:
                keep.append(ctypes.c_void_p(None))
            elif isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, f"{name}: argument arrays must be C-contiguous"
                b = _aligned(a)
                if b is not a:
                    copies.append((a, b))
                keep.append(ctypes.c_void_p(b.ctypes.data))
            else:
                keep.append(_SCALARS[type(a)](a))
        params = (ctypes.c_void_p * len(keep))(*[ctypes.cast(ctypes.pointer(o), ctypes.c_void_p) for o in keep])
        rc = self.lib.emu_launch_named(name.encode(), int(grid), 256, int(smem_bytes), params)
        for a, b in copies:                                     # results back where the caller looks
            a[...] = b
        if rc:
            raise RuntimeError(f"emulated launch of {name} failed with code {rc}")


def _aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it starts on a 256-byte boundary (as every CUDA allocation does), else an
    aligned copy, so the kernels take the same (alignment-dependent) paths as on a GPU."""
    if a.ctypes.data % 256 == 0:
        return a
    buf = np.empty(a.nbytes + 256, dtype=np.uint8)
    off = (-buf.ctypes.data) % 256
    b = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    b[...] = a
    return b
