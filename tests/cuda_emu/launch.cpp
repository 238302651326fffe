// Built by tests/cuda_emu/__init__.py into a shared library: emu_launch(name, grid, block, smem, params);
// an unknown name (ddpm_sample_tc in a -DDDPM_NO_TC build) returns 2.
#include <cstring>
#include "emu.h"
#include "kernels.cu"

extern "C" int emu_launch_named(const char* name, unsigned grid, unsigned block, std::size_t smem_bytes,
                                void** params) {
    if (!std::strcmp(name, "ddpm_sample")) return emu_launch(ddpm_sample, grid, block, smem_bytes, params);
#ifndef DDPM_NO_TC
    if (!std::strcmp(name, "ddpm_sample_tc")) return emu_launch(ddpm_sample_tc, grid, block, smem_bytes, params);
#endif
    if (!std::strcmp(name, "ddpm_train_tiles")) return emu_launch(ddpm_train_tiles, grid, block, smem_bytes, params);
    if (!std::strcmp(name, "ddpm_reduce")) return emu_launch(ddpm_reduce, grid, block, smem_bytes, params);
    if (!std::strcmp(name, "ddpm_adam")) return emu_launch(ddpm_adam, grid, block, smem_bytes, params);
    return 2;
}
