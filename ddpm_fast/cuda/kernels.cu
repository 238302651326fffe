// ddpm_fast's GPU kernels (loaded by ddpm_fast/gpu.py with cupy.RawModule; compiled for sm_90 by the
// tests when nvcc is present; run on the CPU by tests/cuda_emu/emu.h, which gives each thread of a
// block its own std::thread, makes __syncthreads a barrier and stands in for wmma). float32 throughout; the flat parameter layout θ
// is cpu.py's: for linear layer l, W_l (w_l × w_{l+1}) row-major at offs[2l], b_l at offs[2l+1].
//
//   ddpm_sample       all K reverse steps for a tile of TP points in one launch (Algorithm 2 / DDIM)
//   ddpm_sample_tc    the same with the hidden layers on tensor cores, 3×TF32 (float32-accurate)
//   ddpm_train_tiles  Algorithm 1's forward, L_simple and backward for tiles of the batch (SIMT or, for
//                     the products that fit, tensor cores in 3×TF32): per-block partial gradients and
//                     losses (no atomics; each block owns its slot)
//   ddpm_reduce       sums the partial gradients in block order and the squares for the global norm
//   ddpm_adam         clipping, Adam (Kingma & Ba Alg. 1) and the EMA, one thread per parameter
//
// Compile-time size: DDPM_H, the hidden width (a multiple of 16, at most 256): the sampler's register
// tiles depend on it; the training kernels take every width at run time.
// DDPM_NO_TC: build without the tensor-core code (no ddpm_sample_tc, no mma.h; ddpm_train_tiles ignores
// use_tc) — ddpm_fast/gpu.py recompiles with it when NVRTC cannot compile the tensor-core kernels, so the
// SIMT kernels still run. DDPM_SRC_HASH (set by gpu.py, unused here) names the bytes of this file and of
// the headers it includes, so CuPy's kernel cache, which hashes only this file's text and the options,
// never hands back a binary built from an older ddpm_common.cuh.
#include "ddpm_common.cuh"
#if defined(__CUDACC__) && !defined(DDPM_NO_TC)
#include <mma.h>                // wmma: the tensor-core paths (tests/cuda_emu/emu.h stands in on the CPU)
#endif

#ifndef DDPM_H
#define DDPM_H 128
#endif
#define NT 256                 // threads per block, every kernel
#define TP 128                 // points per block in the sampler
#define RM 8                   // sampler: rows (points) per thread  (16 row groups × 8 = TP)
#define CN (DDPM_H / 16)       // sampler: columns (units) per thread (16 column groups)
// Row strides (floats) of the samplers' shared arrays, padded against bank conflicts (32 banks of 4 bytes):
#define SA_SIMT (DDPM_H + 1)   // ddpm_sample's activations: odd, so the two row groups a warp reads in the
                               // hidden layers (8 rows apart) sit in different banks
#define SA_TC (DDPM_H + 4)     // ddpm_sample_tc's activations: wmma needs ldm a multiple of 4 floats and
                               // 32-byte aligned tiles; ≡ 4 (mod 32) puts the 8 rows × 4 columns one load
                               // instruction of an m16n8k8 TF32 A fragment reads in 32 different banks
                               // (at ldm = H, a multiple of 32: 8 lanes per bank)
#define SW_TC (DDPM_H + 8)     // ddpm_sample_tc's hidden weights in shared memory: ≡ 8 (mod 32) does the
                               // same for a B fragment (4 rows × 8 columns); SIMT reads W rows whole, unpadded
                               // (fragment layouts: the PTX ISA's mma.m16n8k8 .tf32, which wmma's loads are
                               // taken to follow; a profiler's bank-conflict count on a GPU is the check)

// ---------------------------------------------------------------------------------------------------
// Pieces shared by the two sampler kernels.

// The tile's x into xs (zeros past N) and, when w_in_smem, the hidden weights into Ws (row stride ldw).
__device__ void sampler_load(const float* __restrict__ theta, const long long* __restrict__ offs, int L, int D,
                             const float* __restrict__ x, int N, long long lo, float* xs, float* Ws, int ldw,
                             int w_in_smem) {
    const int H = DDPM_H;
    for (int i = threadIdx.x; i < TP * D; i += NT) {
        long long p = lo + i / D;
        xs[i] = p < N ? x[p * D + i % D] : 0.0f;
    }
    if (w_in_smem)
        for (int l = 1; l < L - 1; ++l)
            for (int i = threadIdx.x; i < H * H; i += NT)
                Ws[(l - 1) * H * ldw + (i / H) * ldw + i % H] = theta[offs[2 * l] + i];
    __syncthreads();
}

// The read-out share of thread `tid` (h = tid % 2 of the pair for point p): red[tid·D + d] = Σ act[p, j] W_L[j, d]
// over its units j; act_s has row stride S. In each 32-unit chunk lane h takes the units ≡ δ_p + h + 2i
// (mod 32), i = 0..15, with δ_p = p·(2 − S) mod 32, so at step i lane (p, h) reads bank
// p·S + δ_p + h + 2i ≡ 2p + h + 2i: the 32 lanes of a warp (16 points × 2) hit 32 different banks. (Two
// plain halves read p·H + j at H = 128: one bank for the whole warp, a 32-way conflict.) A last chunk of
// 16 units (H ≡ 16 mod 32) is shared by parity.
__device__ void sampler_readout(const float* act_s, int S, const float* __restrict__ WL, int n_out, int D, int p,
                                int tid, float* red) {
    const int H = DDPM_H, h = tid % 2, dp = (p * (2 - S)) & 31;
    const float* a = act_s + p * S;
    for (int d = 0; d < D; ++d) {
        float s = 0.0f;
        for (int c0 = 0; c0 + 32 <= H; c0 += 32)
#pragma unroll 4               // fully unrolled, ptxas spilled ddpm_sample_tc at H = 256 (255 registers)
            for (int i = 0; i < 16; ++i) {
                const int j = c0 + ((dp + h + 2 * i) & 31);
                s += a[j] * WL[j * n_out + d];
            }
        if (H % 32)
            for (int j = (H & ~31) + h; j < H; j += 2) s += a[j] * WL[j * n_out + d];
        red[tid * D + d] = s;
    }
}

// Step k for point p of the tile (run by the even thread `tid` of its pair): ε̂ = b_L + both read-out
// halves, x ← c_x·x − c_eps·ε̂ + σ·z (z from the array, or a counter-based Box–Muller pair per two
// coordinates), and the trajectory row K−1−k.
__device__ void sampler_update(int k, int p, int tid, long long lo, int N, int D, int K, const float* __restrict__ bL,
                               const float* red, const float* __restrict__ c_x, const float* __restrict__ c_eps,
                               const float* __restrict__ sigma, const float* __restrict__ z, unsigned long long seed,
                               float* xs, float* __restrict__ traj) {
    const long long gp = lo + p;
    const int half = (D + 1) / 2;
    double z_odd = 0.0;
    for (int d = 0; d < D; ++d) {
        float e = bL[d] + red[tid * D + d] + red[(tid + 1) * D + d];
        float xn = c_x[k] * xs[p * D + d] - c_eps[k] * e;
        if (sigma[k] > 0.0f) {
            float zz;
            if (z) {
                zz = gp < N ? z[((long long)k * N + gp) * D + d] : 0.0f;
            } else if (d % 2 == 0) {
                double z0;
                ddpm_normal_pair(seed, (uint64_t)k, (uint64_t)(gp * half + d / 2), &z0, &z_odd);
                zz = (float)z0;
            } else {
                zz = (float)z_odd;
            }
            xn += sigma[k] * zz;
        }
        xs[p * D + d] = xn;
        if (traj && gp < N) traj[((long long)(K - 1 - k) * N + gp) * D + d] = xn;
    }
}

// The tile's x back to global memory.
__device__ void sampler_store(const float* xs, int N, int D, long long lo, float* __restrict__ x) {
    for (int i = threadIdx.x; i < TP * D; i += NT) {
        long long p = lo + i / D;
        if (p < N) x[p * D + i % D] = xs[i];
    }
}

// The Fourier columns of γ(x) for points p0..p0+np−1 of the tile (fs: TP × 2KD), by the threads
// i0, i0 + stride, … (the block, or one warp in ddpm_sample_tc).
__device__ void sampler_features(const float* xs, float* fs, int D, int K, int p0, int np, int i0, int stride) {
    const int FD = 2 * K * D;
    for (int i = i0; i < np * FD; i += stride) {
        const int p = p0 + i / FD;
        fs[p * FD + i % FD] = ddpm_fourier(xs + p * D, i % FD, D, K);
    }
}

// ---------------------------------------------------------------------------------------------------
// Sampler: x ← c_x[k]·x − c_eps[k]·ε_θ(x, t_k) + sigma[k]·z_k for k = 0..K−1 (see cpu.sample_kernel).
// table (K × H): emb(t_k) W_0[F:] + b_0; layer 0's point part is γ(x) W_0[:F], γ(x) = [x, its n_freq
// Fourier octaves] (F = D(1 + 2·n_freq)). Activations of the tile stay in shared memory; hidden weights
// too when w_in_smem (else read through L1/L2). Noise: z (K, N, D) when non-null, else counter-based.
// traj (K+1, N, D) receives x after step k at row K−1−k when non-null.
// Dynamic shared memory (floats): TP·SA_SIMT (activations) + TP·D (x) + NT·D (read-out shares)
//                                 + TP·2·n_freq·D (Fourier features) [+ (L−2)·H·H when w_in_smem]
//                                 (gpu.sampler_smem).
extern "C" __global__ void ddpm_sample(const float* __restrict__ theta, const long long* __restrict__ offs,
                                       int L, int D, int n_freq, const float* __restrict__ table,
                                       const float* __restrict__ c_x, const float* __restrict__ c_eps,
                                       const float* __restrict__ sigma, const float* __restrict__ z,
                                       unsigned long long seed, float* __restrict__ x, float* __restrict__ traj,
                                       int N, int K, int act, int w_in_smem) {
    extern __shared__ __align__(128) float smem[];
    const int H = DDPM_H, S = SA_SIMT;
    float* act_s = smem;                       // TP × H, row stride S
    float* xs = act_s + TP * S;                // TP × D
    float* red = xs + TP * D;                  // NT × D
    float* fs = red + NT * D;                  // TP × 2·n_freq·D
    float* Ws = fs + TP * 2 * n_freq * D;      // (L−2) × H × H
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16, FD = 2 * n_freq * D;
    const long long lo = (long long)blockIdx.x * TP;
    const int n_out = (int)(offs[2 * (L - 1) + 1] - offs[2 * (L - 1)]) / H;
    const float* W0 = theta + offs[0];         // rows 0..F−1 of W_0 (the γ(x) part)
    const float* WL = theta + offs[2 * (L - 1)];
    const float* bL = theta + offs[2 * (L - 1) + 1];
    sampler_load(theta, offs, L, D, x, N, lo, xs, Ws, H, w_in_smem);

    float acc[RM][CN];
    for (int k = 0; k < K; ++k) {
        if (FD) {
            sampler_features(xs, fs, D, n_freq, 0, TP, tid, NT);
            __syncthreads();
        }
        // layer 0: act(γ(x) W_0[:F] + table[k])
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            int p = ty * RM + r;
#pragma unroll
            for (int c = 0; c < CN; ++c) {
                int j = tx + 16 * c;
                float s = table[(long long)k * H + j];
                for (int d = 0; d < D; ++d) s += xs[p * D + d] * W0[d * H + j];
                for (int f = 0; f < FD; ++f) s += fs[p * FD + f] * W0[(D + f) * H + j];
                act_s[p * S + j] = ddpm_act(s, act);
            }
        }
        __syncthreads();
        // hidden layers: (TP × H) @ (H × H), 8 × CN outputs per thread in registers
        for (int l = 1; l < L - 1; ++l) {
            const float* W = w_in_smem ? Ws + (l - 1) * H * H : theta + offs[2 * l];
            const float* b = theta + offs[2 * l + 1];
#pragma unroll
            for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int c = 0; c < CN; ++c) acc[r][c] = 0.0f;
            for (int kk = 0; kk < H; ++kk) {
                float a[RM], w[CN];
#pragma unroll
                for (int r = 0; r < RM; ++r) a[r] = act_s[(ty * RM + r) * S + kk];
#pragma unroll
                for (int c = 0; c < CN; ++c) w[c] = W[kk * H + tx + 16 * c];
#pragma unroll
                for (int r = 0; r < RM; ++r)
#pragma unroll
                    for (int c = 0; c < CN; ++c) acc[r][c] += a[r] * w[c];
            }
            __syncthreads();                   // every read of act_s is done
#pragma unroll
            for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int c = 0; c < CN; ++c) {
                    int j = tx + 16 * c;
                    act_s[(ty * RM + r) * S + j] = ddpm_act(acc[r][c] + b[j], act);
                }
            __syncthreads();
        }
        // read-out ε̂ = h W_L + b_L: two threads per point, each summing half of the units
        sampler_readout(act_s, S, WL, n_out, D, tid / 2, tid, red);
        __syncthreads();
        if (tid % 2 == 0) sampler_update(k, tid / 2, tid, lo, N, D, K, bL, red, c_x, c_eps, sigma, z, seed, xs, traj);
        __syncthreads();
    }
    sampler_store(xs, N, D, lo, x);
}

// ---------------------------------------------------------------------------------------------------
// ddpm_sample with the hidden layers as wmma m16n16k8 TF32 products, made float32-accurate by the 3×TF32
// split a = a_hi + a_lo (a_hi = tf32(a), a_lo = tf32(a − a_hi)): a·b ≈ a_lo·b_hi + a_hi·b_lo + a_hi·b_hi,
// the dropped a_lo·b_lo being ~2^-22 relative. Warp w owns points 16w..16w+15 of the tile from start to
// end (layer 0, the products, bias and activation, the read-out and the update), so after the weights
// are loaded only __syncwarp is needed. Same arguments as ddpm_sample; shared memory likewise but with the
// row strides SA_TC (activations) and SW_TC (weights): TP·SA_TC + TP·D + NT·D + TP·2·n_freq·D [+ (L−2)·H·SW_TC].
#ifndef DDPM_NO_TC
namespace wmma = nvcuda::wmma;

__device__ __forceinline__ void ddpm_split_tf32(float v, float* hi, float* lo) {
    *hi = wmma::__float_to_tf32(v);
    *lo = wmma::__float_to_tf32(v - *hi);
}

extern "C" __global__ void ddpm_sample_tc(const float* __restrict__ theta, const long long* __restrict__ offs,
                                          int L, int D, int n_freq, const float* __restrict__ table,
                                          const float* __restrict__ c_x, const float* __restrict__ c_eps,
                                          const float* __restrict__ sigma, const float* __restrict__ z,
                                          unsigned long long seed, float* __restrict__ x, float* __restrict__ traj,
                                          int N, int K, int act, int w_in_smem) {
    extern __shared__ __align__(128) float smem[];   // wmma tiles: 32-byte aligned pointers
    const int H = DDPM_H, S = SA_TC;
    float* act_s = smem;                       // TP × H, row stride S
    float* xs = act_s + TP * S;                // TP × D
    float* red = xs + TP * D;                  // NT × D
    float* fs = red + NT * D;                  // TP × 2·n_freq·D
    float* Ws = fs + TP * 2 * n_freq * D;      // (L−2) × H × H, row stride SW_TC; 32-byte aligned (xs, red,
                                               // fs: 4·384·D + 4·128·2·n_freq·D bytes)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, FD = 2 * n_freq * D;
    const int r0 = warp * 16;                  // this warp's first row (point) in the tile
    const long long lo = (long long)blockIdx.x * TP;
    const int n_out = (int)(offs[2 * (L - 1) + 1] - offs[2 * (L - 1)]) / H;
    const float* W0 = theta + offs[0];
    const float* WL = theta + offs[2 * (L - 1)];
    const float* bL = theta + offs[2 * (L - 1) + 1];
    sampler_load(theta, offs, L, D, x, N, lo, xs, Ws, SW_TC, w_in_smem);
    const int ldw = w_in_smem ? SW_TC : H;    // the hidden weights' row stride where they are read

    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a_hi, a_lo;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b_hi, b_lo;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[H / 16];
    float* rows = act_s + r0 * S;              // this warp's 16 × H activations; 32-byte aligned (64·S bytes a warp)
    for (int k = 0; k < K; ++k) {
        // layer 0 for the warp's points
        if (FD) {
            sampler_features(xs, fs, D, n_freq, r0, 16, lane, 32);
            __syncwarp();
        }
        for (int i = lane; i < 16 * H; i += 32) {
            int q = i / H, j = i % H;
            float s = table[(long long)k * H + j];
            for (int d = 0; d < D; ++d) s += xs[(r0 + q) * D + d] * W0[d * H + j];
            for (int f = 0; f < FD; ++f) s += fs[(r0 + q) * FD + f] * W0[(D + f) * H + j];
            rows[q * S + j] = ddpm_act(s, act);
        }
        __syncwarp();
        for (int l = 1; l < L - 1; ++l) {
            const float* W = w_in_smem ? Ws + (l - 1) * H * SW_TC : theta + offs[2 * l];
            const float* b = theta + offs[2 * l + 1];
#pragma unroll
            for (int c = 0; c < H / 16; ++c) wmma::fill_fragment(acc[c], 0.0f);
            for (int kk = 0; kk < H; kk += 8) {
                wmma::load_matrix_sync(a_hi, rows + kk, S);
                for (int e = 0; e < a_hi.num_elements; ++e) ddpm_split_tf32(a_hi.x[e], &a_hi.x[e], &a_lo.x[e]);
#pragma unroll
                for (int c = 0; c < H / 16; ++c) {
                    wmma::load_matrix_sync(b_hi, W + kk * ldw + 16 * c, ldw);
                    for (int e = 0; e < b_hi.num_elements; ++e) ddpm_split_tf32(b_hi.x[e], &b_hi.x[e], &b_lo.x[e]);
                    wmma::mma_sync(acc[c], a_lo, b_hi, acc[c]);
                    wmma::mma_sync(acc[c], a_hi, b_lo, acc[c]);
                    wmma::mma_sync(acc[c], a_hi, b_hi, acc[c]);
                }
            }
            __syncwarp();                      // every lane is done reading rows
#pragma unroll
            for (int c = 0; c < H / 16; ++c) wmma::store_matrix_sync(rows + 16 * c, acc[c], S, wmma::mem_row_major);
            __syncwarp();
            for (int i = lane; i < 16 * H; i += 32) {
                const int q = i / H, j = i % H;
                rows[q * S + j] = ddpm_act(rows[q * S + j] + b[j], act);
            }
            __syncwarp();
        }
        // read-out: two lanes per point, each summing half of the units
        sampler_readout(act_s, S, WL, n_out, D, r0 + lane / 2, tid, red);
        __syncwarp();
        if (lane % 2 == 0)
            sampler_update(k, r0 + lane / 2, tid, lo, N, D, K, bL, red, c_x, c_eps, sigma, z, seed, xs, traj);
        __syncwarp();
    }
    __syncthreads();
    sampler_store(xs, N, D, lo, x);
}
#endif  // DDPM_NO_TC

// ---------------------------------------------------------------------------------------------------
// Training products. C (M × Nc) = A (M × Kd) · B (Kd × Nc) by the whole block.

#ifndef DDPM_NO_TC
// The (r0, c0) corner of a matrix stored row-major or column-major with leading dimension ld (the layout
// tags of mma.h are incomplete types, so they are passed as null pointers).
__device__ __forceinline__ const float* corner(const float* X, int ld, int r0, int c0, const wmma::row_major*) {
    return X + (long long)r0 * ld + c0;
}
__device__ __forceinline__ const float* corner(const float* X, int ld, int r0, int c0, const wmma::col_major*) {
    return X + r0 + (long long)c0 * ld;
}

// On tensor cores, 3×TF32 as in ddpm_sample_tc: warps take 16 × 16 tiles of C in turn. M, Nc multiples
// of 16, Kd of 8, every corner 32-byte aligned (checked by block_mm).
template <typename LA, typename LB>
__device__ void mm_tc(const float* A, int lda, const float* B, int ldb, float* C, int ldc, int M, int Nc, int Kd,
                      bool accumulate) {
    const int warp = threadIdx.x / 32, n_warps = blockDim.x / 32, nt = Nc / 16;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> a_hi, a_lo;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> b_hi, b_lo;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    for (int tile = warp; tile < (M / 16) * nt; tile += n_warps) {
        const int i0 = (tile / nt) * 16, j0 = (tile % nt) * 16;
        float* c = C + (long long)i0 * ldc + j0;
        if (accumulate) wmma::load_matrix_sync(acc, c, ldc, wmma::mem_row_major);
        else wmma::fill_fragment(acc, 0.0f);
        for (int k = 0; k < Kd; k += 8) {
            wmma::load_matrix_sync(a_hi, corner(A, lda, i0, k, (const LA*)nullptr), lda);
            for (int e = 0; e < a_hi.num_elements; ++e) ddpm_split_tf32(a_hi.x[e], &a_hi.x[e], &a_lo.x[e]);
            wmma::load_matrix_sync(b_hi, corner(B, ldb, k, j0, (const LB*)nullptr), ldb);
            for (int e = 0; e < b_hi.num_elements; ++e) ddpm_split_tf32(b_hi.x[e], &b_hi.x[e], &b_lo.x[e]);
            wmma::mma_sync(acc, a_lo, b_hi, acc);
            wmma::mma_sync(acc, a_hi, b_lo, acc);
            wmma::mma_sync(acc, a_hi, b_hi, acc);
        }
        wmma::store_matrix_sync(c, acc, ldc, wmma::mem_row_major);   // C never aliases A or B here
    }
}

__device__ __forceinline__ bool aligned32(const void* p) { return ((unsigned long long)p & 31ULL) == 0; }
#endif  // DDPM_NO_TC

// A(i, k) = A[i·ar + k·ac] and B(k, j) = B[k·br + j·bc] (strides express the transposes); accumulate:
// C += instead of C =. With tc, products whose shapes and layouts tensor cores take run there (mm_tc);
// the rest, and every product without tc, on the SIMT path: 4 × 4 outputs per thread per pass.
__device__ void block_mm(const float* A, int ar, int ac, const float* B, int br, int bc, float* C, int ldc,
                         int M, int Nc, int Kd, bool accumulate, bool tc) {
#ifdef DDPM_NO_TC
    (void)tc;
#else
    if (tc && M % 16 == 0 && Nc % 16 == 0 && Kd % 8 == 0 && ldc % 4 == 0 && aligned32(A) && aligned32(B) &&
        aligned32(C)) {
        const bool a_row = ac == 1, b_row = bc == 1, a_col = ar == 1, b_col = br == 1;
        const int lda = a_row ? ar : ac, ldb = b_row ? br : bc;
        if (lda % 4 == 0 && ldb % 4 == 0) {
            if (a_row && b_row) { mm_tc<wmma::row_major, wmma::row_major>(A, lda, B, ldb, C, ldc, M, Nc, Kd, accumulate); return; }
            if (a_col && b_row) { mm_tc<wmma::col_major, wmma::row_major>(A, lda, B, ldb, C, ldc, M, Nc, Kd, accumulate); return; }
            if (a_row && b_col) { mm_tc<wmma::row_major, wmma::col_major>(A, lda, B, ldb, C, ldc, M, Nc, Kd, accumulate); return; }
        }
    }
#endif
    int mb = (M + 3) / 4, nb = (Nc + 3) / 4;
    for (int blk = threadIdx.x; blk < mb * nb; blk += blockDim.x) {
        int i0 = (blk / nb) * 4, j0 = (blk % nb) * 4;
        float s[4][4] = {{0}};
        for (int k = 0; k < Kd; ++k) {
            float a[4], b[4];
#pragma unroll
            for (int r = 0; r < 4; ++r) a[r] = i0 + r < M ? A[(i0 + r) * ar + k * ac] : 0.0f;
#pragma unroll
            for (int c = 0; c < 4; ++c) b[c] = j0 + c < Nc ? B[k * br + (j0 + c) * bc] : 0.0f;
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) s[r][c] += a[r] * b[c];
        }
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c)
                if (i0 + r < M && j0 + c < Nc) {
                    float* o = C + (i0 + r) * ldc + j0 + c;
                    *o = accumulate ? *o + s[r][c] : s[r][c];
                }
    }
}

// Forward, L_simple and backward of ddpm_ref.train_step (ε-parametrisation) for tiles of `rows` batch
// rows. thetaT holds each W_l transposed at W_l's offset (kept by ddpm_adam), so dA·W^T reads it row by
// row like the forward pass reads W (coalesced) instead of down its columns.
//
// rows; block b handles tiles b, b + G, b + 2G, … (G = gridDim.x, fixed by the host, never by the
// device), accumulating its partial gradient in part[b·ps ..] (P floats; the stride ps is a multiple of 8
// so every slot is 32-byte aligned for the tensor-core path) and its loss sum in lossp[b]. use_tc: the
// products that fit run on tensor cores in 3×TF32 (block_mm).
// Draws for the step: x_0 = data[idx[i]], t = tt[i], ε = eps[i]; or, when idx is null, drawn in-kernel
// by ddpm_train_draw from (seed, step = base_step[0] + k, row). widths (L+1) are the layer widths.
// Dynamic shared memory (4-byte words): rows · (Σ_l w_l [inputs] + Σ_{l<L−1} w_{l+1} [pre-activations]
//                                        + 2·wmax [two gradient buffers] + D [ε] + 2 [t, data row]) + NT.
extern "C" __global__ void ddpm_train_tiles(const float* __restrict__ theta, const float* __restrict__ thetaT,
                                            const long long* __restrict__ offs,
                                            const int* __restrict__ widths, int L, int D, int n_freq,
                                            const float* __restrict__ data, const long long* __restrict__ idx,
                                            const long long* __restrict__ tt, const float* __restrict__ eps,
                                            const float* __restrict__ emb, const float* __restrict__ sab,
                                            const float* __restrict__ s1m, int B, int rows, int P, int act,
                                            float* __restrict__ part, float* __restrict__ lossp,
                                            unsigned long long seed, int n_data, int T,
                                            const long long* __restrict__ base_step, int k, int ps, int use_tc) {
    extern __shared__ __align__(128) float smem[];   // 128-byte aligned: wmma tiles need 32
    const int tid = threadIdx.x;
    int wmax = 0, hsum = 0, asum = 0;
    for (int l = 0; l <= L; ++l) wmax = max(wmax, widths[l]);
    for (int l = 0; l < L; ++l) hsum += widths[l];
    for (int l = 0; l < L - 1; ++l) asum += widths[l + 1];
    float* hbuf = smem;                        // h_l: rows × w_l, l = 0..L−1, one after the other
    float* abuf = hbuf + rows * hsum;          // a_l: rows × w_{l+1}, l = 0..L−2
    float* g1 = abuf + rows * asum;            // rows × wmax
    float* g2 = g1 + rows * wmax;              // rows × wmax
    float* red = g2 + rows * wmax;             // NT
    float* eps_s = red + NT;                   // rows × D: this tile's ε
    int* t_s = (int*)(eps_s + rows * D);       // rows: t
    int* i_s = t_s + rows;                     // rows: data row of x_0
    const unsigned long long step = idx ? 0ULL : (unsigned long long)(base_step[0] + k);
    float* gpart = part + (long long)blockIdx.x * ps;   // this block's slot (ps ≥ P, a multiple of 8)
    const int n_out = widths[L], F = D * (1 + 2 * n_freq), E = widths[0] - F;
    for (int i = tid; i < P; i += NT) gpart[i] = 0.0f;
    float loss = 0.0f;
    __syncthreads();
    const int n_tiles = (B + rows - 1) / rows;
    for (int tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
        const int lo = tile * rows, n = min(B, lo + rows) - lo;
        // Alg. 1 lines 2–4: x_0, t, ε for each row of the tile
        for (int b = tid; b < n; b += NT) {
            if (idx) {
                i_s[b] = (int)idx[lo + b];
                t_s[b] = (int)tt[lo + b];
                for (int d = 0; d < D; ++d) eps_s[b * D + d] = eps[(long long)(lo + b) * D + d];
            } else {
                ddpm_train_draw(seed, step, (uint64_t)(lo + b), n_data, T, D, &i_s[b], &t_s[b], eps_s + b * D);
            }
        }
        __syncthreads();
        // h_0 = [γ(x_t), emb(t)], x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (Eq. 4): first x_t and emb(t), then
        // γ's Fourier columns from x_t
        for (int i = tid; i < n * widths[0]; i += NT) {
            int b = i / widths[0], c = i % widths[0];
            int t = t_s[b];
            if (c < D) hbuf[i] = sab[t] * data[(long long)i_s[b] * D + c] + s1m[t] * eps_s[b * D + c];
            else if (c >= F) hbuf[i] = emb[(long long)t * E + (c - F)];
        }
        __syncthreads();
        if (F > D) {
            for (int i = tid; i < n * (F - D); i += NT) {
                int b = i / (F - D), c = i % (F - D);
                hbuf[b * widths[0] + D + c] = ddpm_fourier(hbuf + b * widths[0], c, D, n_freq);
            }
            __syncthreads();
        }
        // forward
        float* h = hbuf;
        float* a = abuf;
        for (int l = 0; l < L; ++l) {
            int fi = widths[l], fo = widths[l + 1];
            const float* W = theta + offs[2 * l];
            const float* bias = theta + offs[2 * l + 1];
            float* out = l < L - 1 ? a : g1;          // the last layer's output goes to g1
            block_mm(h, fi, 1, W, fo, 1, out, fo, n, fo, fi, false, use_tc);
            __syncthreads();
            float* hn = h + rows * fi;
            for (int i = tid; i < n * fo; i += NT) {
                float s = out[i] + bias[i % fo];
                out[i] = s;
                if (l < L - 1) hn[i] = ddpm_act(s, act);
            }
            __syncthreads();
            if (l < L - 1) { h = hn; a += rows * fo; }
        }
        // L_simple = mean (ε_θ − ε)²; ∂/∂ε_θ = 2(ε_θ − ε)/(B·n_out)
        for (int i = tid; i < n * n_out; i += NT) {
            int b = i / n_out, c = i % n_out;
            float diff = g1[i] - eps_s[b * D + c];
            loss += diff * diff;
            g1[i] = 2.0f * diff / (float)(B * n_out);
        }
        __syncthreads();
        // backward
        float* src = g1;
        float* dst = g2;
        for (int l = L - 1; l >= 0; --l) {
            int fi = widths[l], fo = widths[l + 1];
            // input of layer l: h_l; pre-activation of layer l−1: a_{l−1}
            int hoff = 0, aoff = 0;
            for (int q = 0; q < l; ++q) hoff += widths[q];
            for (int q = 0; q < l - 1; ++q) aoff += widths[q + 1];
            const float* hl = hbuf + rows * hoff;
            block_mm(hl, 1, fi, src, fo, 1, gpart + offs[2 * l], fo, fi, fo, n, true, use_tc);      // gW += h^T dA
            for (int j = tid; j < fo; j += NT) {                                           // gb += Σ_b dA
                float s = 0.0f;
                for (int b = 0; b < n; ++b) s += src[b * fo + j];
                gpart[offs[2 * l + 1] + j] += s;
            }
            if (l > 0) {
                const float* WT = thetaT + offs[2 * l];                                     // W_l^T (fo × fi)
                block_mm(src, fo, 1, WT, fi, 1, dst, fi, n, fi, fo, false, use_tc);                  // dH = dA W^T
                __syncthreads();
                const float* al = abuf + rows * aoff;
                for (int i = tid; i < n * fi; i += NT) dst[i] *= ddpm_dact(al[i], hl[i], act);
                float* tmp = src; src = dst; dst = tmp;
            }
            __syncthreads();
        }
    }
    // deterministic block sum of the loss
    red[tid] = loss;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    if (tid == 0) lossp[blockIdx.x] = red[0];
}

// grad[i] = Σ_b part[b·ps + i] in block order b = 0..G−1; normp[block] = Σ grad² over the block's entries.
// Dynamic shared memory: NT floats.
extern "C" __global__ void ddpm_reduce(const float* __restrict__ part, int G, int P, int ps, float* __restrict__ grad,
                                       float* __restrict__ normp) {
    extern __shared__ __align__(128) float smem[];   // declared alike in every kernel
    float* red = smem;                         // NT floats
    int i = blockIdx.x * NT + threadIdx.x;
    float g = 0.0f;
    if (i < P) {
        for (int b = 0; b < G; ++b) g += part[(long long)b * ps + i];
        grad[i] = g;
    }
    red[threadIdx.x] = g * g;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) normp[blockIdx.x] = red[0];
}

// Global-norm clipping, Adam and the EMA (ddpm_ref.optim), one thread per parameter; a weight is also
// written to its transposed place tpos[i] in thetaT (−1 for biases). The norm is summed
// from normp in a fixed order by every thread (a few hundred numbers), so no further launch is needed.
// Step k of the chunk: Adam's step count is base_step[0] + k + 1, the learning rate lrs[k]; block 0's
// thread 0 also writes the step's loss, Σ lossp / (B·n_out), to losses[k].
extern "C" __global__ void ddpm_adam(float* __restrict__ theta, float* __restrict__ thetaT,
                                     const int* __restrict__ tpos, float* __restrict__ m, float* __restrict__ s,
                                     float* __restrict__ ema, const float* __restrict__ grad,
                                     const float* __restrict__ normp, int n_norm, const float* __restrict__ lossp,
                                     int G, float* __restrict__ losses, int k, const long long* __restrict__ base_step,
                                     const double* __restrict__ lrs, double beta1, double beta2, double adam_eps,
                                     double grad_clip, double ema_decay, int P, double loss_div) {
    int i = blockIdx.x * NT + threadIdx.x;
    double nrm = 0.0;
    for (int b = 0; b < n_norm; ++b) nrm += normp[b];
    nrm = sqrt(nrm);
    double scale = (grad_clip > 0.0 && nrm > grad_clip) ? grad_clip / (nrm + 1e-12) : 1.0;
    double step = (double)(base_step[0] + k + 1);
    float step_size = (float)(lrs[k] / (1.0 - pow(beta1, step)));
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(beta2, step)));
    if (i == 0) {
        double loss_sum = 0.0;
        for (int b = 0; b < G; ++b) loss_sum += lossp[b];
        losses[k] = (float)(loss_sum / loss_div);
    }
    if (i >= P) return;
    float gi = grad[i] * (float)scale;
    float mi = (float)beta1 * m[i] + (float)(1.0 - beta1) * gi;
    float si = (float)beta2 * s[i] + (float)(1.0 - beta2) * gi * gi;
    m[i] = mi;
    s[i] = si;
    float th = theta[i] - step_size * mi / (sqrtf(si) * inv_sqrt_bc2 + (float)adam_eps);
    theta[i] = th;
    ema[i] = (float)ema_decay * ema[i] + (float)(1.0 - ema_decay) * th;
    if (tpos[i] >= 0) thetaT[tpos[i]] = th;    // the weight's place in W^T
}
