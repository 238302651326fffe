// A CPU stand-in for the few CUDA features kernels.cu uses, so its kernels run here without a GPU:
// each block's threads are std::threads, __syncthreads is a barrier, dynamic shared memory one buffer.
// Blocks run one after another. Warp-level operations: __syncwarp is a block barrier (valid for kernels
// whose warps all pass the same __syncwarp calls, as ours do), and wmma fragments hold the whole tile
// in every lane (the kernels only touch fragment elements uniformly), with TF32 rounding emulated.
#pragma once
#include <algorithm>
#include <barrier>
#include <cstddef>
#include <cstring>
#include <type_traits>
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
#define __syncwarp() emu_barrier->arrive_and_wait()
#define __forceinline__ inline
#define __device__
#define __align__(n)          // the emulated shared memory below is 256-byte aligned

namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    static constexpr int num_elements = rows * cols;
    float x[num_elements];
};

// cvt.rna.tf32.f32: round to nearest (ties away from zero) to 10 mantissa bits
inline float __float_to_tf32(float v) {
    unsigned u;
    std::memcpy(&u, &v, 4);
    u = (u + 0x1000u) & 0xFFFFE000u;
    std::memcpy(&v, &u, 4);
    return v;
}

template <typename F> void fill_fragment(F& f, float v) { for (auto& e : f.x) e = v; }

template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const float* p, unsigned ld) {
    using F = fragment<Use, M, N, K, T, Layout>;
    constexpr bool col = std::is_same_v<Layout, col_major>;
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = col ? p[c * ld + r] : p[r * ld + c];
}

template <typename F> void load_matrix_sync(F& f, const float* p, unsigned ld, layout_t) {   // accumulator
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = p[r * ld + c];
}

template <typename F> void store_matrix_sync(float* p, const F& f, unsigned ld, layout_t) {
    if (threadIdx.x % 32) return;                         // one lane writes the tile
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c) p[r * ld + c] = f.x[r * F::cols + c];
}

template <typename D, typename A, typename B>
void mma_sync(D& d, const A& a, const B& b, const D& c) {
    float out[D::num_elements];
    for (int i = 0; i < A::rows; ++i)
        for (int j = 0; j < B::cols; ++j) {
            float s = c.x[i * D::cols + j];
            for (int k = 0; k < A::cols; ++k) s += a.x[i * A::cols + k] * b.x[k * B::cols + j];
            out[i * D::cols + j] = s;
        }
    std::memcpy(d.x, out, sizeof(out));
}
}  // namespace nvcuda::wmma

constexpr std::size_t EMU_SMEM_FLOATS = std::size_t(1) << 22;   // 16 MiB of "shared memory"
alignas(256) float smem[EMU_SMEM_FLOATS];

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
