// A CPU stand-in for the few CUDA features kernels.cu uses, so its kernels run here without a GPU:
// each block's threads are std::threads, __syncthreads is a barrier, dynamic shared memory one buffer.
// Blocks run one after another. Warp-level operations are not emulated (the kernels use none).
#pragma once
#include <algorithm>
#include <barrier>
#include <cstddef>
#include <thread>
#include <vector>

struct emu_dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local emu_dim3 threadIdx, blockIdx;
inline emu_dim3 blockDim, gridDim;
inline std::barrier<>* emu_barrier = nullptr;
using std::max;
using std::min;

#define __global__
#define __shared__
#define __syncthreads() emu_barrier->arrive_and_wait()

constexpr std::size_t EMU_SMEM_FLOATS = std::size_t(1) << 22;   // 16 MiB of "shared memory"
float smem[EMU_SMEM_FLOATS];

template <typename... A, std::size_t... I>
void emu_call(void (*k)(A...), void** params, std::index_sequence<I...>) {
    k(*static_cast<std::remove_reference_t<A>*>(params[I])...);
}

// Runs kernel k on grid × block threads; params[i] points at the i-th argument (as cuLaunchKernel).
template <typename... A>
int emu_launch(void (*k)(A...), unsigned grid, unsigned block, std::size_t smem_bytes, void** params) {
    if (smem_bytes > sizeof(smem)) return 1;
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> bar(block);
        emu_barrier = &bar;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([=] {
                threadIdx.x = t;
                blockIdx.x = b;
                emu_call(k, params, std::index_sequence_for<A...>{});
            });
        for (auto& th : threads) th.join();
    }
    return 0;
}
