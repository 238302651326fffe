// Shared by the CUDA kernels (kernels.cu) and, compiled as plain C++, by the host-side checks.
// Same formulas as ddpm_fast/cpu.py, so float32 results and in-kernel noise match the Numba backend.
#pragma once
#ifdef __CUDACC_RTC__            // NVRTC (CuPy's RawModule): no C headers; math functions are built in
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#include <math.h>
#endif

#ifndef __CUDACC__
#define __host__
#define __device__
#define __forceinline__ inline
#endif

#define DDPM_HD __host__ __device__ __forceinline__

// tanh for float: Eigen's rational minimax approximation, |error| < 3e-7 (cpu._tanh_fast).
DDPM_HD float ddpm_tanh(float x) {
    x = fminf(fmaxf(x, -7.90531110763549805f), 7.90531110763549805f);
    float x2 = x * x;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x * (x2 * p + 4.89352455891786e-03f);
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    return p / q;
}

#define DDPM_GELU_C 0.7978845608028654f   // sqrt(2/pi)

// act(a) for the codes of cpu.ACT_CODES: 0 relu, 1 silu, 2 gelu (tanh form), 3 tanh.
DDPM_HD float ddpm_act(float a, int code) {
    if (code == 0) return fmaxf(a, 0.0f);
    if (code == 1) return a * (0.5f + 0.5f * ddpm_tanh(0.5f * a));
    if (code == 2) return 0.5f * a * (1.0f + ddpm_tanh(DDPM_GELU_C * (a + 0.044715f * a * a * a)));
    return ddpm_tanh(a);
}

// act'(a), given a and h = act(a).
DDPM_HD float ddpm_dact(float a, float h, int code) {
    if (code == 0) return a > 0.0f ? 1.0f : 0.0f;
    if (code == 1) {
        float s = 0.5f + 0.5f * ddpm_tanh(0.5f * a);
        return s * (1.0f + a * (1.0f - s));
    }
    if (code == 2) {
        float th = ddpm_tanh(DDPM_GELU_C * (a + 0.044715f * a * a * a));
        return 0.5f * (1.0f + th) + 0.5f * a * (1.0f - th * th) * DDPM_GELU_C * (1.0f + 3.0f * 0.044715f * a * a);
    }
    return 1.0f - h * h;
}

// Column c (0 ≤ c < 2KD) of the Fourier part of γ(x) (ddpm_ref.mlp.input_features, after its D columns of
// x itself) for a point with coordinates x[0..D−1]: sin(2^k x_d) for c < KD, else cos(2^k x_d), where
// k = (c mod KD) / D and d = c mod D. 2^k x is exact (ldexpf), as cpu._fourier_row's doubling.
DDPM_HD float ddpm_fourier(const float* x, int c, int D, int K) {
    const int KD = K * D, r = c % KD;
    const float arg = ldexpf(x[r % D], r / D);
    return c < KD ? sinf(arg) : cosf(arg);
}

// Counter-based normals (cpu.counter_normal_pair): SplitMix64 of the key (seed, step, index), two
// uniforms, Box–Muller in double. A pure function of the key: no state, no thread-count dependence.
DDPM_HD uint64_t ddpm_splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

DDPM_HD void ddpm_normal_pair(uint64_t seed, uint64_t step, uint64_t index, double* z0, double* z1) {
    uint64_t key = ddpm_splitmix64(seed ^ ddpm_splitmix64(step * 0x100000001B3ULL + index));
    uint64_t k2 = ddpm_splitmix64(key);
    double u1 = (double)((key >> 11) + 1ULL) * (1.0 / 9007199254740993.0);   // (0, 1]
    double u2 = (double)(k2 >> 11) * (1.0 / 9007199254740992.0);             // [0, 1)
    double r = sqrt(-2.0 * log(u1));
    double phi = 2.0 * 3.141592653589793 * u2;
    *z0 = r * cos(phi);
    *z1 = r * sin(phi);
}

// In-kernel draws of one training row (Alg. 1 lines 2–4) from (seed, step, row): the data row
// (uniform over n_data), t (uniform over 1..T) and ε (D normals, Box–Muller pairs). Mirrored in NumPy
// by ddpm_fast.gpu.counter_draws, which the tests compare against.
DDPM_HD void ddpm_train_draw(uint64_t seed, uint64_t step, uint64_t row, int n_data, int T, int D,
                             int* data_row, int* t, float* eps) {
    uint64_t base = step * 0x100000001B3ULL;
    *data_row = (int)(ddpm_splitmix64(seed ^ ddpm_splitmix64(base + 2 * row)) % (uint64_t)n_data);
    *t = 1 + (int)(ddpm_splitmix64(seed ^ ddpm_splitmix64(base + 2 * row + 1)) % (uint64_t)T);
    uint64_t eseed = ddpm_splitmix64(seed + 0xD1B54A32D192ED03ULL);
    int half = (D + 1) / 2;
    for (int d = 0; d < D; d += 2) {
        double z0, z1;
        ddpm_normal_pair(eseed, step, row * half + d / 2, &z0, &z1);
        eps[d] = (float)z0;
        if (d + 1 < D) eps[d + 1] = (float)z1;
    }
}
