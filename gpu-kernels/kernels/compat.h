// glmhal GPU kernels: the compatibility layer between CUDA (NVRTC) and HIP
// (hiprtc or clang's HIP mode), and what every kernel shares: tensor views,
// exact dtype conversions, loads and stores per dtype, warp and block sums.
//
// The compiler driver defines GLMHAL_WARP (32 on NVIDIA, 64 on AMD/Hygon
// wavefronts). Kernels never assume a warp width.
#pragma once

#ifndef GLMHAL_WARP
#error "GLMHAL_WARP must be defined by the compiler driver (32 or 64)"
#endif

#if defined(__HIPCC__) || defined(__HIP_DEVICE_COMPILE__) || defined(__HIP__)
#define GLMHAL_HIP 1
#if !defined(__HIPCC_RTC__)
#include <hip/hip_runtime.h>
#endif
#define GLMHAL_SHFL_XOR(v, m) __shfl_xor((v), (m), GLMHAL_WARP)
#else
#define GLMHAL_HIP 0
#define GLMHAL_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), GLMHAL_WARP)
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef signed char i8;
typedef unsigned long long u64;

// Threads per block of the row kernels (a multiple of every warp width).
#define GLMHAL_BLOCK 256

// dtype codes, as the host passes them in kernel names.
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_I32 3
#define DT_Q8_0 4
#define DT_Q4_0 5

// A view of up to four dims: element e (row-major logical index) lives at
// offset + i0*s0 + i1*s1 + i2*s2 + c*col_stride elements from the buffer
// start; for Q8_0/Q4_0 `offset` counts bytes and the rest elements.
struct View {
    u64 offset;
    u32 cols, col_stride, d1, d2;
    u64 s0, s1, s2;
};

__device__ __forceinline__ u64 at(const View& v, u64 e) {
    u64 r = e / v.cols, c = e % v.cols;
    u64 i2 = r % v.d2, i1 = (r / v.d2) % v.d1, i0 = r / ((u64)v.d2 * v.d1);
    return i0 * v.s0 + i1 * v.s1 + i2 * v.s2 + c * v.col_stride;
}

// Exact conversions, round to nearest even, independent of the toolchain's half types.
__device__ __forceinline__ float f16_to_f32(u32 h) {
    u32 s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0) return __uint_as_float(s);
        float v = (float)m * 5.9604644775390625e-8f;
        return s ? -v : v;
    }
    if (e == 31) return __uint_as_float(s | 0x7f800000u | (m << 13));
    return __uint_as_float(s | ((e + 112u) << 23) | (m << 13));
}
__device__ __forceinline__ u32 f32_to_f16(float v) {
    u32 x = __float_as_uint(v), s = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return s | 0x7e00u | ((a >> 13) & 0x3ffu);
    if (a >= 0x477ff000u) return s | 0x7c00u;
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return s;
        u32 e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;
        u32 q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return s | q;
    }
    return s | ((a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13);
}
__device__ __forceinline__ float bf16_to_f32(u32 h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ u32 f32_to_bf16(float v) {
    u32 x = __float_as_uint(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

// Element e (from `at`) of a tensor of dtype DT, as f32.
template <int DT>
__device__ __forceinline__ float load(const void* base, const View& v, u64 e) {
    const u8* p = (const u8*)base;
    if (DT == DT_F32) return ((const float*)p)[v.offset + e];
    if (DT == DT_F16) return f16_to_f32(((const u16*)p)[v.offset + e]);
    if (DT == DT_BF16) return bf16_to_f32(((const u16*)p)[v.offset + e]);
    if (DT == DT_I32) return (float)((const i32*)p)[v.offset + e];
    // Q8_0: 34-byte blocks (f16 scale, 32 int8); Q4_0: 18 (f16 scale, 16 bytes of nibbles).
    const u32 bytes = DT == DT_Q8_0 ? 34u : 18u;
    const u8* b = p + v.offset + (e / 32) * bytes;
    const float d = f16_to_f32((u32)b[0] | ((u32)b[1] << 8));
    const u32 j = (u32)(e % 32);
    if (DT == DT_Q8_0) return d * (float)(i8)b[2 + j];
    const u32 q = j < 16 ? (b[2 + j] & 15u) : (b[2 + j - 16] >> 4);
    return d * ((float)q - 8.0f);
}

// The same with the dtype chosen at run time (operands read once per output,
// such as a bias, so kernels need not be instantiated for their dtypes).
__device__ __forceinline__ float load_any(const void* base, const View& v, u64 e, int dt) {
    switch (dt) {
    case DT_F16: return load<DT_F16>(base, v, e);
    case DT_BF16: return load<DT_BF16>(base, v, e);
    case DT_I32: return load<DT_I32>(base, v, e);
    default: return load<DT_F32>(base, v, e);
    }
}

__device__ __forceinline__ i32 load_i32(const void* base, const View& v, u64 e) {
    return ((const i32*)base)[v.offset + e];
}

// Stores f32 `x` as element e of a tensor of float dtype DT (16-bit stores
// touch only their own two bytes).
template <int DT>
__device__ __forceinline__ void store(void* base, const View& v, u64 e, float x) {
    if (DT == DT_F32) ((float*)base)[v.offset + e] = x;
    if (DT == DT_F16) ((u16*)base)[v.offset + e] = (u16)f32_to_f16(x);
    if (DT == DT_BF16) ((u16*)base)[v.offset + e] = (u16)f32_to_bf16(x);
    if (DT == DT_I32) ((i32*)base)[v.offset + e] = (i32)x;
}

// x rounded to dtype DT (GLM's cast back of the normalized value).
template <int DT>
__device__ __forceinline__ float round_to(float x) {
    if (DT == DT_F16) return f16_to_f32(f32_to_f16(x));
    if (DT == DT_BF16) return bf16_to_f32(f32_to_bf16(x));
    return x;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int m = GLMHAL_WARP / 2; m > 0; m >>= 1) v += GLMHAL_SHFL_XOR(v, m);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int m = GLMHAL_WARP / 2; m > 0; m >>= 1) v = fmaxf(v, GLMHAL_SHFL_XOR(v, m));
    return v;
}

// Sum (or max) over a block of GLMHAL_BLOCK threads; `scratch` holds one
// float per warp. Every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % GLMHAL_WARP, warp = threadIdx.x / GLMHAL_WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = 0.0f;
    for (int w = 0; w < GLMHAL_BLOCK / GLMHAL_WARP; w++) r += scratch[w];
    return r;
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % GLMHAL_WARP, warp = threadIdx.x / GLMHAL_WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = -3.402823466e38f;
    for (int w = 0; w < GLMHAL_BLOCK / GLMHAL_WARP; w++) r = fmaxf(r, scratch[w]);
    return r;
}

// Four int8 products summed into c (dp4a on NVIDIA; plain code elsewhere,
// which AMD's compiler turns into its dot instructions where it has them).
__device__ __forceinline__ i32 dot4(i32 a, i32 b, i32 c) {
#if !GLMHAL_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 610
    return __dp4a(a, b, c);
#else
    const i8* x = (const i8*)&a;
    const i8* y = (const i8*)&b;
    return c + x[0] * y[0] + x[1] * y[1] + x[2] * y[2] + x[3] * y[3];
#endif
}

// Instantiation helpers: one extern "C" entry point per dtype combination.
#define GLMHAL_CAT3(a, b, c) a##_##b##_##c
#define GLMHAL_CAT4(a, b, c, d) a##_##b##_##c##_##d
