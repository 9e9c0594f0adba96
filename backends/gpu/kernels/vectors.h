// 16-byte loads, and eight 16-bit floats widened by the hardware, for
// kernels that stream weights: one load instruction per lane per 16 bytes.
// Callers pass 16-byte aligned addresses (CUDA and HIP fault otherwise;
// OpenCL's vload needs only element alignment). Widening f16 and bf16 to
// f32 is exact, so these give the same values as `load`.
#pragma once
#include "compat.h"

#if GLMHAL_OPENCL
DEVICE uint4 load_16_bytes(IN p, u64 byte) { return vload4(0, (GLOBAL const uint*)(p + byte)); }
DEVICE void load_f16x8(IN p, u64 byte, float* out) {
    const float8 v = vload_half8(0, (GLOBAL const half*)(p + byte));
    out[0] = v.s0;
    out[1] = v.s1;
    out[2] = v.s2;
    out[3] = v.s3;
    out[4] = v.s4;
    out[5] = v.s5;
    out[6] = v.s6;
    out[7] = v.s7;
}
#else
DEVICE uint4 load_16_bytes(IN p, u64 byte) { return *(const uint4*)(p + byte); }
DEVICE float f16_bits_to_f32(u32 h) {
#if GLMHAL_HIP
    return (float)__builtin_bit_cast(_Float16, (unsigned short)h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"((unsigned short)h));
    return f;
#endif
}
DEVICE void load_f16x8(IN p, u64 byte, float* out) {
    const uint4 q = load_16_bytes(p, byte);
    const u32 w[4] = {q.x, q.y, q.z, q.w};
    for (int i = 0; i < 4; i++) {
        out[2 * i] = f16_bits_to_f32(w[i] & 0xffffu);
        out[2 * i + 1] = f16_bits_to_f32(w[i] >> 16);
    }
}
#endif

DEVICE void load_bf16x8(IN p, u64 byte, float* out) {
    const uint4 q = load_16_bytes(p, byte);
    const u32 w[4] = {q.x, q.y, q.z, q.w};
    for (int i = 0; i < 4; i++) {
        out[2 * i] = bits_to_float(w[i] << 16);
        out[2 * i + 1] = bits_to_float(w[i] & 0xffff0000u);
    }
}

DEVICE void load_f32x4(IN p, u64 byte, float* out) {
    const uint4 q = load_16_bytes(p, byte);
    out[0] = bits_to_float(q.x);
    out[1] = bits_to_float(q.y);
    out[2] = bits_to_float(q.z);
    out[3] = bits_to_float(q.w);
}
