"""ddpm_fast on the GPU: the CUDA C kernels of ``cuda/kernels.cu`` launched through CuPy.

Same functions as the CPU backend (reached through ``ddpm_fast.p_sample_loop``, ``ddim_sample_loop``
and ``train`` with ``backend="cupy"``); CuPy is imported only when a GPU function is first called.

- Sampling: one launch of ``ddpm_sample`` runs all K reverse steps for tiles of 128 points (weights
  in shared memory, the per-step layer-0 table and coefficients read from global memory/L2); noise
  is passed in (parity) or drawn in-kernel by the counter-based generator the Numba backend uses, so
  the same seed gives the same samples on CPU and GPU up to float32 rounding.
- Training: per step, ``ddpm_train_tiles`` (forward, L_simple, backward per tile; per-block partial
  gradients, no atomics), ``ddpm_reduce`` (partials summed in block order, squares for the norm) and
  ``ddpm_adam`` (clipping, Adam, EMA); the grid is fixed by the batch (never by the device), so results
  are deterministic. On a GPU the K steps of a chunk are captured once in a CUDA graph and replayed.
  ``train_baseline`` is the plain path to beat: CuPy matrix products (cuBLAS) and element-wise ops.

Kernels go through a *launcher* with ``xp`` (the array module), ``max_smem``, ``H`` (the compiled hidden
width), ``tc`` (whether its module has the tensor-core code) and ``launch(name, grid, smem_bytes, args)``:
:class:`CupyLauncher` on a GPU; the tests pass a CPU emulator of the same kernels (tests/cuda_emu), so
the host logic here and the kernels' logic are checked without a GPU.

Compilation (``compile_module``): one NVRTC module holds every kernel. If it does not compile (mma.h not
found, an NVRTC that rejects the wmma code), it is compiled again with ``-DDDPM_NO_TC`` — no tensor-core
code — after one warning line, and the host runs the SIMT kernels for sampling and training instead of
failing altogether. The options carry ``-DDDPM_SRC_HASH``, a hash of kernels.cu and every header it
includes: CuPy's on-disk cache keys on the source text and the options only, so without it an edit of
ddpm_common.cuh alone would be served a stale binary.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import warnings

import numpy as np

import ddpm_ref

from .layout import check_sampler_arrays, check_train_arrays, layout, model_widths, pack, unpack

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda", "kernels.cu")
NT = 256            # threads per block (kernels.cu)
TP = 128            # points per sampler block (kernels.cu)
GRID_MAX = 256      # most blocks in a training step: partial-gradient slots, fixed for determinism
ROWS_MAX = 32       # batch rows per training tile (fewer when shared memory is short)
ACT_CODES = {"relu": 0, "silu": 1, "gelu": 2, "tanh": 3}
NULL = np.uint64(0)  # a null pointer argument (the kernels test z and traj against nullptr)
# The sampler kernel: "tc" (hidden layers on tensor cores, 3×TF32, float32-accurate) or "simt" (plain
# float32 FMAs). Both are parity-tested; which is faster on a given GPU is what benchmarks/gpu_bench.py
# measures (both rows are in its table).
SAMPLER_KERNELS = {"tc": "ddpm_sample_tc", "simt": "ddpm_sample"}
SAMPLER_KERNEL = "tc"
# The training products likewise: "tc" runs those whose shapes fit (the hidden H × H layers) on tensor
# cores in 3×TF32, "simt" runs all of them as float32 FMAs.
TRAIN_KERNELS = ("tc", "simt")
TRAIN_KERNEL = "tc"
KERNEL_NAMES = ("ddpm_sample", "ddpm_sample_tc", "ddpm_train_tiles", "ddpm_reduce", "ddpm_adam")
TC_ONLY_KERNELS = ("ddpm_sample_tc",)     # absent from a -DDDPM_NO_TC build
# Row-stride padding (floats) of the samplers' shared arrays, kernels.cu's SA_SIMT, SA_TC and SW_TC:
# activations H + ACT_PAD, hidden weights H + W_PAD (against shared-memory bank conflicts; see there).
ACT_PAD = {"simt": 1, "tc": 4}
W_PAD = {"simt": 0, "tc": 8}


class GPUUnavailable(RuntimeError):
    """The cupy backend cannot run here (CuPy missing or no GPU)."""


_EMULATOR = None     # set by ``emulated``: a factory H -> launcher that stands in for the GPU


@contextlib.contextmanager
def emulated(factory):
    """Within this block the cupy backend runs its kernels through ``factory(H)`` launchers instead of
    a GPU — the tests pass the CPU emulator (tests/cuda_emu.EmuLauncher), so everything from
    ``ddpm_fast.p_sample_loop(..., backend="cupy")`` down is exercised without a device."""
    global _EMULATOR
    old, _EMULATOR = _EMULATOR, factory
    try:
        yield
    finally:
        _EMULATOR = old


def gpu_status() -> str | None:
    """None when the cupy backend can run (CuPy sees a GPU, or ``emulated``); else why not, in words."""
    return None if _EMULATOR is not None else _cupy_status()


@functools.lru_cache(maxsize=1)
def _cupy_status() -> str | None:
    try:
        import cupy
    except ImportError:
        return ("CuPy is not installed (CUDA 13: pip install 'ddpm[gpu]' or cupy-cuda13x; CUDA 12: "
                "pip install cupy-cuda12x)")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:                                    # no driver, no device, broken install
        return f"no GPU: CUDA reports {type(e).__name__}: {e}"
    return None if n > 0 else "no GPU: CUDA sees no device"


def require_gpu() -> None:
    """Raise :class:`GPUUnavailable` with the reason when the cupy backend cannot run."""
    reason = gpu_status()
    if reason:
        raise GPUUnavailable(f"backend 'cupy' cannot run here: {reason}")


def cuda_include_dirs() -> list[str]:
    """CUDA include folders holding mma.h (NVRTC needs one for the tensor-core kernels): the include folder
    of CuPy's CUDA path, $CUDA_PATH, $CUDA_HOME, /usr/local/cuda, then the header folders of CUDA's pip
    wheels as cuda-pathfinder (CuPy's own finder) locates them — the first that has it. None found: the
    kernels are compiled without the tensor-core code (``compile_module``)."""
    roots = []
    try:
        import cupy
        roots.append(cupy.cuda.get_cuda_path())
    except Exception:
        pass
    roots += [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    cands = [os.path.join(r, "include") for r in roots if r]
    try:
        from cuda import pathfinder
        for component in ("cudart", "nvcc"):
            try:
                cands.append(pathfinder.find_nvidia_header_directory(component))
            except Exception:
                pass
    except ImportError:
        pass
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "mma.h")):
            return [c]
    return []


_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def source_files(path: str | None = None) -> list[str]:
    """kernels.cu (or ``path``) and every file it includes with ``#include "..."``, recursively, relative to
    the including file's folder (mma.h and other <...> headers belong to the CUDA version, which CuPy's
    cache key already holds)."""
    files, todo = [], [os.path.abspath(path or KERNELS)]
    while todo:
        f = todo.pop(0)
        if f in files:
            continue
        files.append(f)
        with open(f, encoding="utf-8") as fh:
            todo += [os.path.join(os.path.dirname(f), inc) for inc in _INCLUDE.findall(fh.read())]
    return files


def source_hash(path: str | None = None) -> str:
    """The first 16 hex digits of SHA-256 over the names and bytes of ``source_files(path)``."""
    h = hashlib.sha256()
    for f in source_files(path):
        with open(f, "rb") as fh:
            h.update(os.path.basename(f).encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()[:16]


def nvrtc_options(H: int, tc: bool = True) -> tuple:
    """The options kernels.cu is compiled with (besides CuPy's own); ``tc=False``: without the tensor-core
    code (``-DDDPM_NO_TC``). ``-DDDPM_SRC_HASH`` makes CuPy's cache key change with any included file."""
    return ("-std=c++17", f"-DDDPM_H={H}", f"-DDDPM_SRC_HASH={source_hash()}", *(() if tc else ("-DDDPM_NO_TC",)),
            f"-I{os.path.dirname(KERNELS)}", *(f"-I{d}" for d in cuda_include_dirs()))


def compile_module(cp, H: int):
    """kernels.cu compiled (now, not at the first launch) into a ``cp.RawModule`` for hidden width H.
    Returns (module, tc): if the full source does not compile, one warning line says why and the module is
    compiled again without the tensor-core code (tc False; no ``ddpm_sample_tc``, and ``ddpm_train_tiles``
    runs every product as SIMT). ``cp`` is the cupy module (a stand-in in the tests)."""
    with open(KERNELS, encoding="utf-8") as f:
        code = f.read()
    try:
        module = cp.RawModule(code=code, options=nvrtc_options(H))
        module.compile()
        return module, True
    except cp.cuda.compiler.CompileException as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else type(e).__name__)
        warnings.warn(f"ddpm_fast.gpu: kernels.cu (H = {H}) does not compile with its tensor-core kernels "
                      f"({why[:200]}); recompiled with -DDDPM_NO_TC: sampling and training run the SIMT kernels",
                      RuntimeWarning, stacklevel=2)
    module = cp.RawModule(code=code, options=nvrtc_options(H, tc=False))
    module.compile()
    return module, False


class CupyLauncher:
    """Compiles kernels.cu with NVRTC for hidden width H (``-DDDPM_H``) and launches its kernels."""

    def __init__(self, H: int):
        require_gpu()
        import cupy as cp
        self.H = H                                            # the sampler kernels' compiled hidden width
        self.xp = cp
        self.module, self.tc = compile_module(cp, H)
        self.kernels = tuple(n for n in KERNEL_NAMES if self.tc or n not in TC_ONLY_KERNELS)
        dev = cp.cuda.Device()
        try:
            self.max_smem = int(dev.attributes["MaxSharedMemoryPerBlockOptin"])
        except KeyError:                                      # cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
            self.max_smem = int(cp.cuda.runtime.deviceGetAttribute(97, dev.id))
        self.functions = {}

    def prepare(self, name: str, smem_bytes: int):
        """Load kernel ``name`` and allow it ``smem_bytes`` of dynamic shared memory (done before any
        graph capture: module loading and attribute changes are not stream operations)."""
        fn = self.functions.get(name)
        if fn is None:
            fn = self.functions[name] = self.module.get_function(name)
        if smem_bytes > 48 * 1024 and fn.max_dynamic_shared_size_bytes < smem_bytes:
            fn.max_dynamic_shared_size_bytes = smem_bytes
        return fn

    def launch(self, name: str, grid: int, smem_bytes: int, args) -> None:
        fn = self.prepare(name, smem_bytes)
        fn((int(grid),), (NT,), tuple(args), shared_mem=int(smem_bytes))

    def graph(self, enqueue):
        """Capture the launches of ``enqueue()`` in a CUDA graph; returns a function that replays it."""
        cp = self.xp
        stream = cp.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            enqueue()
            g = stream.end_capture()

        def replay():
            # on the current stream, so it runs after the uploads queued there (the draws, the step
            # count), which a non-blocking stream would not wait for
            g.launch()
            cp.cuda.get_current_stream().synchronize()
        return replay


def kernel_attributes(lau) -> list[dict]:
    """Per kernel of a CuPy launcher's module: registers per thread, local memory per thread (stack frame and
    spill slots), static shared memory, the most threads per block the registers allow. ptxas -v (nvcc 13.0,
    sm_90) gives ddpm_sample, ddpm_sample_tc and ddpm_train_tiles a 40-byte stack frame, the double
    cos's argument reduction in the Box–Muller draws, and no spills, at H = 16, 128 and 256: more local
    memory than 40 bytes there means spills."""
    out = []
    for name in lau.kernels:
        fn = lau.module.get_function(name)
        out.append({"kernel": name, "num_regs": int(fn.num_regs), "local_size_bytes": int(fn.local_size_bytes),
                    "shared_size_bytes": int(fn.shared_size_bytes),
                    "max_threads_per_block": int(fn.max_threads_per_block)})
    return out


def build_report(widths=(16, 128, 256)) -> str:
    """What gpu_check.sh writes into gpu_env.txt about the build: the include folders, the options, and for
    each compiled hidden width whether the tensor-core code compiled and each kernel's attributes."""
    lines = [f"cuda include dirs (mma.h): {cuda_include_dirs() or 'none found'}",
             f"kernel source hash: {source_hash()}  ({', '.join(map(os.path.basename, source_files()))})"]
    for H in widths:
        lau = _cupy_launcher(H)
        lines.append(f"H = {H}: options {' '.join(nvrtc_options(H, lau.tc))}; tensor-core kernels: "
                     f"{'yes' if lau.tc else 'NO (SIMT only)'}; max dynamic shared memory {lau.max_smem} B")
        for a in kernel_attributes(lau):
            spill = "  <- spills? (40 B expected: see kernel_attributes)" if a["local_size_bytes"] > 40 else ""
            lines.append(f"  {a['kernel']:18s} regs {a['num_regs']:4d}  local {a['local_size_bytes']:6d} B  "
                         f"static smem {a['shared_size_bytes']:6d} B  max threads/block "
                         f"{a['max_threads_per_block']:5d}{spill}")
    return "\n".join(lines)


def _cupy_launcher(H: int):
    return _EMULATOR(H) if _EMULATOR is not None else _cached_launcher(H)


@functools.lru_cache(maxsize=8)
def _cached_launcher(H: int) -> CupyLauncher:
    return CupyLauncher(H)


def check_model(cfg) -> None:
    """The kernels' size limits: H a multiple of 16 in 16..256 (sampler register tiles), depth ≥ 1."""
    if cfg.hidden % 16 or not 16 <= cfg.hidden <= 256:
        raise ValueError(f"the cupy backend needs hidden a multiple of 16 in 16..256, got {cfg.hidden}")
    if cfg.depth < 1:
        raise ValueError("the cupy backend needs depth >= 1")


def _widths(cfg) -> np.ndarray:
    """The layer widths as the kernels take them (int32)."""
    return model_widths(cfg).astype(np.int32)


def _i32(v):
    return np.int32(v)


# --- sampling -------------------------------------------------------------------------------------------

def sampler_smem(H: int, D: int, L: int, max_smem: int, kernel: str = "simt", n_freq: int = 0) -> tuple[int, bool]:
    """Dynamic shared memory of sampler ``kernel`` ("simt": ``ddpm_sample``, "tc": ``ddpm_sample_tc``) in
    bytes, and whether the hidden weights fit in it (row strides padded as in kernels.cu); ``n_freq``:
    the model's Fourier octaves (their 2·n_freq·D features per point are kept in shared memory)."""
    base = 4 * (TP * (H + ACT_PAD[kernel]) + TP * D + NT * D + TP * 2 * n_freq * D)
    if base > max_smem:
        raise ValueError(f"the sampler needs {base} bytes of shared memory per block; the device has {max_smem}"
                         + (f" (fewer Fourier octaves than {n_freq} need less)" if n_freq else ""))
    with_w = base + 4 * (L - 2) * H * (H + W_PAD[kernel])
    return (with_w, True) if with_w <= max_smem else (base, False)


def _usable(kernel: str, lau) -> str:
    """``kernel``, or "simt" when it is "tc" and the launcher's module was built without tensor-core code."""
    return "simt" if kernel == "tc" and not getattr(lau, "tc", True) else kernel


def run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, z, seed, dtype=np.float32, tile=None,
                keep_traj=False, launcher=None, device_out=False, kernel: str | None = None):
    """K update steps x ← c_x[k]·x − c_eps[k]·ε_θ(x, t_k) + sigma[k]·z_k in one ``ddpm_sample`` launch.

    Same arguments as the Numba ``_run_sampler`` (coefficients from ``ancestral_coefficients`` or
    ``ddim_coefficients``; ``z`` (K, N, D) in kernel order, or empty with ``seed``); ``tile`` is fixed
    at 128 points by the kernel and ignored; ``kernel`` picks one of ``SAMPLER_KERNELS`` (default
    ``SAMPLER_KERNEL``; "tc" runs as "simt" where the module has no tensor-core code, see
    ``compile_module``). Returns float64 NumPy arrays (device arrays with ``device_out``).
    """
    kernel = kernel or SAMPLER_KERNEL
    if kernel not in SAMPLER_KERNELS:
        raise ValueError(f"unknown sampler kernel {kernel!r}; known: {', '.join(SAMPLER_KERNELS)}")
    if np.dtype(dtype) != np.float32:
        raise ValueError("the cupy backend computes in float32")
    check_model(cfg)
    lau = launcher or _cupy_launcher(cfg.hidden)
    if lau.H != cfg.hidden:
        raise ValueError(f"the launcher's kernels are compiled for H = {lau.H}, the model has hidden = {cfg.hidden}")
    kernel = _usable(kernel, lau)
    xp = lau.xp
    widths = _widths(cfg)
    offs, _ = layout(widths)
    L, D, H = len(widths) - 1, cfg.dim, cfg.hidden
    x = xp.array(xp.asarray(x_T), dtype=xp.float32)
    from . import time_table
    theta = pack(params, widths, np.float32)
    table = time_table(params, cfg, t_steps, np.float32)                               # (K, H)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    c_x, c_eps, sigma = f32(c_x), f32(c_eps), f32(sigma)
    z = None if z is None or (np.ndim(z) >= 1 and np.shape(z)[0] == 0) else f32(z)
    K, N = len(t_steps), x.shape[0] if x.ndim else 0
    traj = xp.empty((K + 1, N, D), dtype=xp.float32) if keep_traj else None
    check_sampler_arrays(cfg, widths, theta, x, table, c_x, c_eps, sigma, z, traj)
    if N == 0:                                                       # nothing to launch
        mod = xp if device_out else np
        return (mod.zeros((0, D)), mod.zeros((K + 1, 0, D))) if keep_traj else mod.zeros((0, D))
    if keep_traj:
        traj[K] = x
    dev = lambda a: xp.asarray(a)
    smem, w_in_smem = sampler_smem(H, D, L, lau.max_smem, kernel, cfg.fourier)
    lau.launch(SAMPLER_KERNELS[kernel], (N + TP - 1) // TP, smem,
               [dev(theta), dev(offs.ravel()), _i32(L), _i32(D), _i32(cfg.fourier), dev(table), dev(c_x), dev(c_eps), dev(sigma),
                NULL if z is None else dev(z), np.uint64(seed), x, NULL if traj is None else traj, _i32(N), _i32(K),
                _i32(ACT_CODES[cfg.activation]), _i32(w_in_smem)])
    if device_out:
        return (x, traj) if keep_traj else x
    host = (lambda a: a.get()) if hasattr(x, "get") else (lambda a: a)
    xo = host(x).astype(np.float64)
    return (xo, host(traj).astype(np.float64)) if keep_traj else xo


# --- training -------------------------------------------------------------------------------------------

def train_rows(widths: np.ndarray, max_smem: int) -> int:
    """Batch rows per tile: at most ROWS_MAX, fewer if a tile's activations would not fit in shared memory."""
    per_row = _words_per_row(widths)
    rows = min(ROWS_MAX, (max_smem // 4 - NT) // per_row)
    if rows < 1:
        raise ValueError(f"one training row needs {4 * per_row} bytes of shared memory; the device has {max_smem}")
    return rows


def _words_per_row(widths: np.ndarray) -> int:
    """4-byte words of shared memory per batch row in ``ddpm_train_tiles`` (see its comment)."""
    L, D = len(widths) - 1, int(widths[-1])
    return int(widths[:L].sum() + widths[1:L].sum() + 2 * widths.max()) + D + 2


def transposed_positions(widths: np.ndarray) -> np.ndarray:
    """For each entry of θ, its index in θ^T — θ with every W_l (w_l × w_{l+1}) stored transposed at the
    same offset — or −1 for biases."""
    offs, P = layout(widths)
    tpos = np.full(P, -1, dtype=np.int32)
    for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
        r, c = np.meshgrid(np.arange(fi), np.arange(fo), indexing="ij")
        tpos[offs[l, 0] + r * fo + c] = offs[l, 0] + c * fi + r
    return tpos


class TrainEngine:
    """Device buffers and launches for fused training steps of one (model, batch size).

    A chunk's K steps run as one CUDA graph (``run`` with ``use_graph``). A graph holds the device
    pointers and scalar arguments it was captured with, so it is dropped whenever they change: in
    ``set_chunk`` when the chunk buffers are reallocated (K changed) or the seed changed, and in ``run``
    when it is handed other θ, m, s, EMA buffers. A replay therefore never reads freed memory."""

    def __init__(self, cfg, B: int, data, sched, lau, kernel: str | None = None):
        kernel = kernel or TRAIN_KERNEL
        if kernel not in TRAIN_KERNELS:
            raise ValueError(f"unknown training kernel {kernel!r}; known: {', '.join(TRAIN_KERNELS)}")
        self.kernel = _usable(kernel, lau)                   # "simt" where the module lacks tensor-core code
        self.use_tc = _i32(self.kernel == "tc")
        self.lau, xp = lau, lau.xp
        self.widths = _widths(cfg)
        offs, self.P = layout(self.widths)
        self.offs = xp.asarray(offs.ravel())
        self.L, self.D, self.B = len(self.widths) - 1, cfg.dim, B
        self.n_freq = _i32(cfg.fourier)
        self.rows = train_rows(self.widths, lau.max_smem)
        n_tiles = (B + self.rows - 1) // self.rows
        self.G = min(n_tiles, GRID_MAX)
        self.smem = 4 * (self.rows * _words_per_row(self.widths) + NT)
        self.n_data, self.T = data.shape[0], sched.T
        self.n_red = (self.P + NT - 1) // NT
        self.act = _i32(ACT_CODES[cfg.activation])
        self.widths_d = xp.asarray(self.widths)
        self.data = xp.asarray(np.ascontiguousarray(data, dtype=np.float32))
        self.emb = xp.asarray(ddpm_ref.timestep_embedding(np.arange(sched.T + 1), cfg.emb_dim,
                                                          cfg.max_period).astype(np.float32))
        self.sab = xp.asarray(np.asarray(sched.sqrt_alpha_bar, dtype=np.float32))
        self.s1m = xp.asarray(np.asarray(sched.sqrt_one_minus_alpha_bar, dtype=np.float32))
        self.ps = -(-self.P // 8) * 8                         # slot stride: 32-byte aligned slots
        self.part = xp.zeros((self.G, self.ps), dtype=xp.float32)
        self.lossp = xp.zeros(self.G, dtype=xp.float32)
        self.grad = xp.zeros(self.P, dtype=xp.float32)
        self.normp = xp.zeros(self.n_red, dtype=xp.float32)
        self.base_step = xp.zeros(1, dtype=xp.int64)
        self.tpos_h = transposed_positions(self.widths)
        self.tpos = xp.asarray(self.tpos_h)
        self.K, self.idx, self.seed = 0, None, None
        self.graph, self._graph_args = None, None         # the captured chunk and what it was captured with
        if hasattr(lau, "prepare"):
            lau.prepare("ddpm_train_tiles", self.smem)
            lau.prepare("ddpm_reduce", 4 * NT)
            lau.prepare("ddpm_adam", 0)

    def set_chunk(self, K: int, seed: int | None = None) -> None:
        """Buffers for a chunk of K steps (learning rates, losses; the draws unless ``seed`` is given,
        in which case the kernels draw x_0, t, ε themselves, counter-based). Drops the captured graph if
        any buffer is replaced or the seed changes (both are baked into it)."""
        xp = self.lau.xp
        if seed != self.seed:
            self.graph = None
        self.seed = seed
        if K != self.K:
            self.K = K
            self.lrs = xp.zeros(K, dtype=xp.float64)
            self.losses = xp.zeros(K, dtype=xp.float32)
            self.idx = None
            self.graph = None
        if seed is None and self.idx is None:
            self.idx = xp.zeros((K, self.B), dtype=xp.int64)
            self.tt = xp.ones((K, self.B), dtype=xp.int64)
            self.eps = xp.zeros((K, self.B, self.D), dtype=xp.float32)
            self.graph = None

    def run(self, theta, thetaT, m, s, ema, tcfg, use_graph: bool) -> None:
        """The chunk's K steps on these buffers: launched one by one, or as a CUDA graph captured on the
        first call and replayed while nothing it holds has changed."""
        if not use_graph:
            self.enqueue(theta, thetaT, m, s, ema, tcfg)
            return
        args = (theta, thetaT, m, s, ema, tcfg)
        if self.graph is None or any(a is not b for a, b in zip(args, self._graph_args)):
            self.graph = self.lau.graph(lambda: self.enqueue(*args))
            self._graph_args = args                         # kept alive: the graph points into them
        self.graph()

    def transposed(self, theta):
        """θ^T for θ (see ``transposed_positions``): what the kernels keep up to date from then on."""
        xp = self.lau.xp
        tt = theta.copy()
        w = self.tpos_h >= 0
        tt[xp.asarray(self.tpos_h[w])] = theta[xp.asarray(np.flatnonzero(w))]
        return tt

    def enqueue(self, theta, thetaT, m, s, ema, tcfg) -> None:
        """Launch the K steps of the chunk (three kernels per step); capturable in a CUDA graph."""
        lau = self.lau
        own = self.seed is not None
        for k in range(self.K):
            draws = [NULL, NULL, NULL] if own else [self.idx[k], self.tt[k], self.eps[k]]
            lau.launch("ddpm_train_tiles", self.G, self.smem,
                       [theta, thetaT, self.offs, self.widths_d, _i32(self.L), _i32(self.D), self.n_freq, self.data, *draws,
                        self.emb, self.sab, self.s1m, _i32(self.B), _i32(self.rows), _i32(self.P), self.act,
                        self.part, self.lossp, np.uint64(self.seed if own else 0), _i32(self.n_data),
                        _i32(self.T), self.base_step, _i32(k), _i32(self.ps), self.use_tc])
            lau.launch("ddpm_reduce", self.n_red, 4 * NT,
                       [self.part, _i32(self.G), _i32(self.P), _i32(self.ps), self.grad, self.normp])
            lau.launch("ddpm_adam", self.n_red, 0,
                       [theta, thetaT, self.tpos, m, s, ema, self.grad, self.normp, _i32(self.n_red), self.lossp, _i32(self.G),
                        self.losses, _i32(k), self.base_step, self.lrs, np.float64(tcfg.adam_beta1),
                        np.float64(tcfg.adam_beta2), np.float64(tcfg.adam_eps), np.float64(tcfg.grad_clip),
                        np.float64(tcfg.ema_decay), _i32(self.P), np.float64(self.B * int(self.widths[-1]))])


def train(state: dict, data: np.ndarray, sched, cfg, tcfg, rng: np.random.Generator, n_steps: int,
          callback=None, launcher=None, use_graph: bool | None = None, chunk: int | None = None,
          draws: str = "rng", kernel: str | None = None):
    """``ddpm_ref.train`` (objective simple, ε) with the fused GPU kernels. Returns (state, losses (n_steps,)).

    ``draws="rng"``: the same draws from ``rng`` as the reference (made on the host, uploaded per
    chunk: the same training run up to float32 rounding). ``draws="counter"``: one seed is taken from
    ``rng`` and the kernels draw x_0, t, ε themselves (``counter_draws``), nothing per step on the host.
    Each chunk's K steps run as one CUDA graph (``use_graph``, default: when the launcher has ``graph``;
    the CPU emulator's records the launches and replays them the same way). ``kernel``: one of
    ``TRAIN_KERNELS`` (default ``TRAIN_KERNEL``; "tc" runs as "simt" where the module has no tensor-core
    code).
    """
    if draws not in ("rng", "counter"):
        raise ValueError(f"draws must be 'rng' or 'counter', got {draws!r}")
    from . import CHUNK, draw_chunk

    check_model(cfg)
    lau = launcher or _cupy_launcher(cfg.hidden)
    xp = lau.xp
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != cfg.dim:
        raise ValueError(f"data must have shape (N, {cfg.dim}), got {data.shape}")
    use_graph = hasattr(lau, "graph") if use_graph is None else use_graph
    B, T, D = tcfg.batch_size, sched.T, cfg.dim
    eng = TrainEngine(cfg, B, data, sched, lau, kernel)
    theta, m, s, ema = (xp.asarray(pack(d, eng.widths, np.float32))
                        for d in (state["params"], state["opt"]["m"], state["opt"]["s"], state["ema"]))
    thetaT = eng.transposed(theta)
    step = int(state["opt"]["step"])
    losses = np.empty(n_steps)
    done = 0
    chunk = chunk or CHUNK
    seed = int(rng.integers(0, 2**63 - 1)) if draws == "counter" else None
    while done < n_steps:
        K = min(chunk, n_steps - done)
        idx = tt = eps = None
        if seed is None:
            idx, tt, eps = draw_chunk(rng, data.shape[0], T, B, D, K)
            eps = eps.astype(np.float32)
        lrs = np.array([ddpm_ref.learning_rate(tcfg, step + k) for k in range(K)])
        check_train_arrays(cfg, eng.widths, T, B, theta, m, s, ema, eng.data, eng.emb, eng.sab, eng.s1m, lrs,
                           idx, tt, eps)
        eng.set_chunk(K, seed)
        if seed is None:
            eng.idx[...] = xp.asarray(idx)
            eng.tt[...] = xp.asarray(tt)
            eng.eps[...] = xp.asarray(eps)
        eng.lrs[...] = xp.asarray(lrs)
        eng.base_step[...] = step
        eng.run(theta, thetaT, m, s, ema, tcfg, use_graph)
        chunk_losses = eng.losses.get() if hasattr(eng.losses, "get") else eng.losses.copy()
        losses[done:done + K] = chunk_losses
        step += K
        if callback is not None:
            for k in range(K):
                callback(step - K + k + 1, float(chunk_losses[k]))
        done += K
    host = (lambda a: a.get()) if hasattr(theta, "get") else (lambda a: a)
    new = dict(state)
    new["params"] = unpack(host(theta), eng.widths)
    new["ema"] = unpack(host(ema), eng.widths)
    new["opt"] = {"m": unpack(host(m), eng.widths), "s": unpack(host(s), eng.widths), "step": step}
    return new, losses


def train_baseline(state: dict, data, sched, cfg, tcfg, rng: np.random.Generator, n_steps: int, xp=None,
                   draws: str = "rng"):
    """The plain path the fused kernels are measured against: one training step as array operations
    (matrix products through cuBLAS with CuPy, element-wise kernels for the rest), the same math as
    ``ddpm_ref.train_step``, in float32, with no host synchronisation inside the loop. ``draws="rng"``:
    the reference's draws from ``rng`` (made on the host); ``draws="device"``: drawn on the device by
    ``xp.random`` (seeded from ``rng``). ``xp`` is the array module (default CuPy; NumPy runs it on the
    CPU). Returns (state, losses)."""
    from . import draw_chunk

    if cfg.fourier:
        raise ValueError("the baseline is the plain [x_t, emb(t)] network: give it MLPConfig(fourier=0)")
    if xp is None:
        require_gpu()
        import cupy as xp
    if draws not in ("rng", "device"):
        raise ValueError(f"draws must be 'rng' or 'device', got {draws!r}")
    f32 = lambda a: xp.asarray(np.asarray(a, dtype=np.float32))
    L = cfg.depth + 1
    p = {k: f32(v) for k, v in state["params"].items()}
    m = {k: f32(v) for k, v in state["opt"]["m"].items()}
    s = {k: f32(v_) for k, v_ in state["opt"]["s"].items()}
    ema = {k: f32(v_) for k, v_ in state["ema"].items()}
    data_d = f32(data)
    emb = f32(ddpm_ref.timestep_embedding(np.arange(sched.T + 1), cfg.emb_dim, cfg.max_period))
    sab, s1m = f32(sched.sqrt_alpha_bar), f32(sched.sqrt_one_minus_alpha_bar)
    act, dact = _xp_activation(xp, cfg.activation)
    step = int(state["opt"]["step"])
    B, D = tcfg.batch_size, cfg.dim
    dev_rng = xp.random.default_rng(int(rng.integers(0, 2**63 - 1))) if draws == "device" else None
    losses = []
    for k in range(n_steps):
        if dev_rng is None:
            idx, tt, eps = draw_chunk(rng, data.shape[0], sched.T, B, D, 1)      # ddpm_ref.draw_batch's draws
            idx, tt, eps = xp.asarray(idx[0]), xp.asarray(tt[0]), f32(eps[0])
        else:
            idx = dev_rng.integers(0, data.shape[0], size=B)
            tt = dev_rng.integers(1, sched.T + 1, size=B)
            eps = dev_rng.standard_normal((B, D), dtype=xp.float32)
        h = [xp.concatenate([sab[tt, None] * data_d[idx] + s1m[tt, None] * eps, emb[tt]], axis=1)]
        a = []
        for l in range(L):
            a.append(h[-1] @ p[f"W{l}"] + p[f"b{l}"])
            if l < L - 1:
                h.append(act(a[-1]))
        diff = a[-1] - eps
        losses.append((diff * diff).mean())
        d = (2.0 / diff.size) * diff
        g = {}
        for l in range(L - 1, -1, -1):
            g[f"W{l}"] = h[l].T @ d
            g[f"b{l}"] = d.sum(axis=0)
            if l > 0:
                d = (d @ p[f"W{l}"].T) * dact(a[l - 1], h[l])
        nrm = xp.sqrt(sum((gi * gi).sum() for gi in g.values()))
        scale = xp.where(nrm > tcfg.grad_clip, tcfg.grad_clip / (nrm + 1e-12), 1.0) if tcfg.grad_clip > 0 else 1.0
        scale = xp.asarray(scale, dtype=xp.float32)
        lr = ddpm_ref.learning_rate(tcfg, step)
        step += 1
        b1, b2 = tcfg.adam_beta1, tcfg.adam_beta2
        for key in p:
            gi = g[key] * scale
            m[key] = b1 * m[key] + (1 - b1) * gi
            s[key] = b2 * s[key] + (1 - b2) * gi * gi
            p[key] = p[key] - lr * (m[key] / (1 - b1 ** step)) / (xp.sqrt(s[key] / (1 - b2 ** step)) + tcfg.adam_eps)
            ema[key] = tcfg.ema_decay * ema[key] + (1 - tcfg.ema_decay) * p[key]
    host = (lambda a: a.get()) if hasattr(data_d, "get") else (lambda a: a)
    to64 = lambda d: {k: np.asarray(host(x_), dtype=np.float64) for k, x_ in d.items()}
    new = dict(state)
    new["params"], new["ema"] = to64(p), to64(ema)
    new["opt"] = {"m": to64(m), "s": to64(s), "step": step}
    return new, np.array([float(host(l_)) for l_ in losses])


def _xp_activation(xp, name: str):
    """act and act'(a, h) as array expressions (ddpm_ref.mlp's formulas) in ``xp``'s own functions:
    ddpm_ref's SiLU calls scipy.special.expit, which a CuPy array cannot be handed to."""
    if name == "relu":
        return (lambda a: xp.maximum(a, 0)), (lambda a, h: (a > 0).astype(a.dtype))
    if name == "tanh":
        return xp.tanh, (lambda a, h: 1 - h * h)
    if name == "silu":
        sig = lambda a: 1 / (1 + xp.exp(-a))
        return (lambda a: a * sig(a)), (lambda a, h: sig(a) * (1 + a * (1 - sig(a))))
    c = np.float32(np.sqrt(2 / np.pi))

    def gelu_d(a, h):
        th = xp.tanh(c * (a + 0.044715 * a ** 3))
        return 0.5 * (1 + th) + 0.5 * a * (1 - th * th) * c * (1 + 3 * 0.044715 * a * a)
    return (lambda a: 0.5 * a * (1 + xp.tanh(c * (a + 0.044715 * a ** 3)))), gelu_d
