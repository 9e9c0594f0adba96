// glmhal GPU kernels: the compatibility layer between CUDA (NVRTC), HIP
// (hiprtc or clang's HIP mode) and OpenCL C 1.2, and what every kernel
// shares: tensor views, exact dtype conversions, loads and stores per dtype,
// work-group reductions. The kernel files are written once in the common
// subset of C++ and C99 with the macros below (no templates, no
// references; local memory declared by the entry points and passed down),
// so the same code runs on NVIDIA, AMD/Hygon and every OpenCL device.
//
// A barrier under a branch on a kernel argument (uniform, so legal) gave
// PoCL wrong results now and then: such a choice is made a constant of the
// entry point instead (see norm.cu's entry points).
//
// The compiler driver (or the OpenCL build options) defines GLMHAL_WARP
// (32 on NVIDIA, 64 on AMD/Hygon wavefronts, 32 on OpenCL, where lanes sum
// through local memory). Kernels never assume a warp width.
#pragma once

#ifndef GLMHAL_WARP
#error "GLMHAL_WARP must be defined by the compiler driver (32 or 64)"
#endif

#if defined(__OPENCL_VERSION__) || defined(__OPENCL_C_VERSION__)
// ---- OpenCL C 1.2: no extension needed; arithmetic in f32 ----
#define GLMHAL_OPENCL 1
#define GLMHAL_HIP 0
typedef uchar u8;
typedef ushort u16;
typedef uint u32;
typedef int i32;
typedef char i8;
typedef ulong u64;
#define KERNEL(name) __kernel void name
#define DEVICE inline
#define GLOBAL __global
#define LOCAL __local
#define SHARED __local
#define SYNC() barrier(CLK_LOCAL_MEM_FENCE)
#define LOCAL_ID ((u32)get_local_id(0))
#define GROUP_ID(d) ((u32)get_group_id(d))
#define NUM_GROUPS(d) ((u32)get_num_groups(d))
#define GLOBAL_ID ((u64)get_global_id(0))
#define GLOBAL_SIZE ((u64)get_global_size(0))
#define ATOMIC_MAX(p, v) atomic_max((p), (v))
#define bits_to_float(x) as_float(x)
#define float_to_bits(x) as_uint(x)
// CUDA's float function names, for the shared code.
#define expf exp
#define tanhf tanh
#define rsqrtf rsqrt
#define powf pow
#define sinf sin
#define cosf cos
#define fmaxf fmax
#define fabsf fabs
#define roundf round
#define rintf rint
#else
// ---- CUDA and HIP ----
#define GLMHAL_OPENCL 0
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
#define KERNEL(name) extern "C" __global__ void name
#define DEVICE __device__ __forceinline__
#define GLOBAL
#define LOCAL
#define SHARED __shared__
#define SYNC() __syncthreads()
#define LOCAL_ID ((u32)threadIdx.x)
#define GROUP_ID(d) ((u32)((d) == 0 ? blockIdx.x : (d) == 1 ? blockIdx.y : blockIdx.z))
#define NUM_GROUPS(d) ((u32)((d) == 0 ? gridDim.x : (d) == 1 ? gridDim.y : gridDim.z))
#define GLOBAL_ID ((u64)blockIdx.x * blockDim.x + threadIdx.x)
#define GLOBAL_SIZE ((u64)gridDim.x * blockDim.x)
#define ATOMIC_MAX(p, v) atomicMax((p), (v))
#define bits_to_float(x) __uint_as_float(x)
#define float_to_bits(x) __float_as_uint(x)
#endif

#include "dtypes.h"

#define IN GLOBAL const u8*
#define OUT GLOBAL u8*

// Status codes kernels report bad data with (hal's kernel_status codes):
// code in word 0 (the largest wins), the value in word 1.
#define STATUS_ROW_OUT_OF_RANGE 1u
#define STATUS_POSITION_OUT_OF_RANGE 2u
#define STATUS_NON_FINITE 3u
#define STATUS_EXPERT_OUT_OF_RANGE 4u
#define STATUS_ROUTER_NON_FINITE 5u
#define STATUS_WEIGHT_ID_OUT_OF_RANGE 6u

// NaN or infinity, read on the bits so no fast-math flag can fold it away.
DEVICE int not_finite(float v) { return (float_to_bits(v) & 0x7f800000u) == 0x7f800000u; }

// Threads per block of every kernel (a multiple of every warp width).
#define GLMHAL_BLOCK 256

// A view of up to four dims: element e (row-major logical index) lives at
// offset + i0*s0 + i1*s1 + i2*s2 + c*col_stride elements from the buffer
// start; for Q8_0/Q4_0 `offset` counts bytes and the rest elements.
typedef struct {
    u64 offset;
    u32 cols, col_stride, d1, d2;
    u64 s0, s1, s2;
} View;

DEVICE u64 at(View v, u64 e) {
    u64 r = e / v.cols, c = e % v.cols;
    u64 i2 = r % v.d2, i1 = (r / v.d2) % v.d1, i0 = r / ((u64)v.d2 * v.d1);
    return i0 * v.s0 + i1 * v.s1 + i2 * v.s2 + c * v.col_stride;
}

// Exact conversions, round to nearest even, independent of the toolchain's half types.
DEVICE float f16_to_f32(u32 h) {
    u32 s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0) return bits_to_float(s);
        float v = (float)m * 5.9604644775390625e-8f;
        return s ? -v : v;
    }
    if (e == 31) return bits_to_float(s | 0x7f800000u | (m << 13));
    return bits_to_float(s | ((e + 112u) << 23) | (m << 13));
}
DEVICE u32 f32_to_f16(float v) {
    u32 x = float_to_bits(v), s = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return s | 0x7e00u | ((a >> 13) & 0x3ffu);
    if (a >= 0x477ff000u) return s | 0x7c00u;
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return s;
        u32 e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;
        u32 q = m >> shift, rem = m & ((1u << shift) - 1u), half_ulp = 1u << (shift - 1u);
        if (rem > half_ulp || (rem == half_ulp && (q & 1u))) q++;
        return s | q;
    }
    return s | ((a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13);
}
DEVICE float bf16_to_f32(u32 h) { return bits_to_float(h << 16); }
DEVICE u32 f32_to_bf16(float v) {
    u32 x = float_to_bits(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

// The f16 scale at the start of a Q8_0/Q4_0 block.
DEVICE float block_scale(IN b) { return f16_to_f32((u32)b[0] | ((u32)b[1] << 8)); }

// The packed Q8_0/Q4_0 layout (DT_Q8_0R, DT_Q4_0R): each row of k values
// holds its quants (Q8_0: k int8; Q4_0: k/2 bytes, each 32-value block's
// 16 bytes in ggml's nibble order), then its k/32 f16 scales, padded to a
// multiple of 16 bytes, so quants load 16 bytes at a time. Views of it are
// whole tensors (offset 0, rows contiguous).
DEVICE u64 packed_quant_bytes(const int dt, u64 k) { return dt == DT_Q8_0R ? k : k / 2; }
DEVICE u64 packed_row_bytes(const int dt, u64 k) {
    return (packed_quant_bytes(dt, k) + k / 16 + 15) / 16 * 16;
}
DEVICE float packed_scale(IN row, const int dt, u64 k, u64 block) {
    IN s = row + packed_quant_bytes(dt, k) + block * 2;
    return f16_to_f32((u32)s[0] | ((u32)s[1] << 8));
}

// Element e (from `at`) of a tensor of dtype dt, as f32. Kernels pass dt as
// a constant, so the compiler keeps one branch; a bias passes it at run time.
DEVICE float load(const int dt, IN p, View v, u64 e) {
    if (dt == DT_F16) return f16_to_f32(((GLOBAL const u16*)p)[v.offset + e]);
    if (dt == DT_BF16) return bf16_to_f32(((GLOBAL const u16*)p)[v.offset + e]);
    if (dt == DT_I32) return (float)((GLOBAL const i32*)p)[v.offset + e];
    if (dt == DT_Q8_0R || dt == DT_Q4_0R) {
        const u64 r = e / v.cols, c = e % v.cols;
        IN row = p + r * packed_row_bytes(dt, v.cols);
        const float scale = packed_scale(row, dt, v.cols, c / 32);
        if (dt == DT_Q8_0R) return scale * (float)(i8)row[c];
        const u32 b = row[(c / 32) * 16 + c % 16];
        return scale * ((float)((c % 32) < 16 ? (b & 15u) : (b >> 4)) - 8.0f);
    }
    if (dt == DT_Q8_0 || dt == DT_Q4_0) {
        // Q8_0: 34-byte blocks (f16 scale, 32 int8); Q4_0: 18 (f16 scale, 16 bytes of nibbles).
        IN b = p + v.offset + (e / 32) * (dt == DT_Q8_0 ? 34u : 18u);
        const u32 j = (u32)(e % 32);
        if (dt == DT_Q8_0) return block_scale(b) * (float)(i8)b[2 + j];
        const u32 q = j < 16 ? (b[2 + j] & 15u) : (b[2 + j - 16] >> 4);
        return block_scale(b) * ((float)q - 8.0f);
    }
    return ((GLOBAL const float*)p)[v.offset + e];
}

DEVICE i32 load_i32(IN p, View v, u64 e) { return ((GLOBAL const i32*)p)[v.offset + e]; }

// Stores f32 x as element e of a tensor of dtype dt (16-bit stores touch
// only their own two bytes).
DEVICE void store(const int dt, OUT p, View v, u64 e, float x) {
    if (dt == DT_F32) ((GLOBAL float*)p)[v.offset + e] = x;
    if (dt == DT_F16) ((GLOBAL u16*)p)[v.offset + e] = (u16)f32_to_f16(x);
    if (dt == DT_BF16) ((GLOBAL u16*)p)[v.offset + e] = (u16)f32_to_bf16(x);
    if (dt == DT_I32) ((GLOBAL i32*)p)[v.offset + e] = (i32)x;
}

// x rounded to dtype dt (GLM's cast back of the normalized value).
DEVICE float round_to(const int dt, float x) {
    if (dt == DT_F16) return f16_to_f32(f32_to_f16(x));
    if (dt == DT_BF16) return bf16_to_f32(f32_to_bf16(x));
    return x;
}

// A sum (is_max = 0) or max (1) over the whole block; every thread must
// call it and gets the result. `scratch` holds GLMHAL_BLOCK floats.
#if GLMHAL_OPENCL
DEVICE float block_reduce(float v, LOCAL float* scratch, int is_max) {
    const u32 t = LOCAL_ID;
    SYNC();
    scratch[t] = v;
    SYNC();
    for (u32 s = GLMHAL_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) scratch[t] = is_max ? fmaxf(scratch[t], scratch[t + s]) : scratch[t] + scratch[t + s];
        SYNC();
    }
    return scratch[0];
}
#else
DEVICE float warp_reduce(float v, int is_max) {
    for (int m = GLMHAL_WARP / 2; m > 0; m >>= 1) {
        const float o = GLMHAL_SHFL_XOR(v, m);
        v = is_max ? fmaxf(v, o) : v + o;
    }
    return v;
}
DEVICE float block_reduce(float v, LOCAL float* scratch, int is_max) {
    const u32 lane = LOCAL_ID % GLMHAL_WARP, warp = LOCAL_ID / GLMHAL_WARP;
    v = warp_reduce(v, is_max);
    SYNC();
    if (lane == 0) scratch[warp] = v;
    SYNC();
    float r = is_max ? -3.402823466e38f : 0.0f;
    for (int w = 0; w < GLMHAL_BLOCK / GLMHAL_WARP; w++) r = is_max ? fmaxf(r, scratch[w]) : r + scratch[w];
    return r;
}
#endif
DEVICE float block_sum(float v, LOCAL float* scratch) { return block_reduce(v, scratch, 0); }
DEVICE float block_max(float v, LOCAL float* scratch) { return block_reduce(v, scratch, 1); }

// The sum of v over the GLMHAL_WARP lanes of each warp, in lane 0 (the
// others get partial sums). Every thread of the block must call it (OpenCL
// sums through `scratch`, GLMHAL_BLOCK floats, with barriers).
DEVICE float lane_sum(float v, LOCAL float* scratch) {
#if GLMHAL_OPENCL
    const u32 t = LOCAL_ID, lane = t % GLMHAL_WARP;
    SYNC();
    scratch[t] = v;
    SYNC();
    for (u32 s = GLMHAL_WARP / 2; s > 0; s >>= 1) {
        if (lane < s) scratch[t] += scratch[t + s];
        SYNC();
    }
    return scratch[t];
#else
    return warp_reduce(v, 0);
#endif
}

// lane_sum of rows[r] for every r < count (at most `max_rows`), all in one
// call: barriers stay outside any data-dependent branch. On OpenCL
// `scratch` holds GLMHAL_BLOCK × max_rows floats; CUDA and HIP use shuffles.
DEVICE void lane_sums(float* rows, u32 count, const u32 max_rows, LOCAL float* scratch) {
#if GLMHAL_OPENCL
    const u32 t = LOCAL_ID, lane = t % GLMHAL_WARP;
    SYNC();
    for (u32 r = 0; r < max_rows; r++) scratch[r * GLMHAL_BLOCK + t] = r < count ? rows[r] : 0.0f;
    SYNC();
    for (u32 s = GLMHAL_WARP / 2; s > 0; s >>= 1) {
        if (lane < s)
            for (u32 r = 0; r < count; r++) scratch[r * GLMHAL_BLOCK + t] += scratch[r * GLMHAL_BLOCK + t + s];
        SYNC();
    }
    for (u32 r = 0; r < count; r++) rows[r] = scratch[r * GLMHAL_BLOCK + t];
#else
    for (u32 r = 0; r < max_rows; r++)
        if (r < count) rows[r] = warp_reduce(rows[r], 0);
#endif
}

// SiLU, as swiglu and the fused gate/up product compute it.
DEVICE float silu(float x) { return x / (1.0f + expf(-x)); }

// The linear block index of row kernels (rows folded into x and y).
DEVICE u64 group_row(void) { return GROUP_ID(0) + (u64)GROUP_ID(1) * NUM_GROUPS(0); }

// A grid-stride loop over n items.
#define GRID_STRIDE(e, n) for (u64 e = GLOBAL_ID; e < (n); e += GLOBAL_SIZE)
