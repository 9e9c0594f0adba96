// quantize_<x>_<q>: f32/f16/bf16 rows into Q8_0 or Q4_0 blocks with ggml's
// rounding (round half away from zero for Q8_0; Q4_0 maps the value of
// largest magnitude to -8), one thread per 32-value block. (cast is
// unary kind 4 in elementwise.cu.)
// dequantize_rows_<w>_f16: rows [first, first + rows) of a quantized weight
// (ggml blocks or packed) into a contiguous f16 panel, for the vendor GEMM
// of a prefill; one thread per value.
#include "compat.h"

DEVICE void quantize_impl(const int X, const int QT, IN x, View vx, OUT o, View vo, u64 blocks) {
    GRID_STRIDE(blk, blocks) {
        const u64 first = blk * 32;
        float vals[32];
        float amax = 0.0f, mx = 0.0f;
        for (int j = 0; j < 32; j++) {
            vals[j] = load(X, x, vx, at(vx, first + j));
            if (fabsf(vals[j]) > amax) {
                amax = fabsf(vals[j]);
                mx = vals[j];
            }
        }
        const u32 bytes = QT == DT_Q8_0 ? 34u : 18u;
        const float d = QT == DT_Q8_0 ? amax / 127.0f : mx / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        OUT b = o + vo.offset + at(vo, first) / 32 * bytes;
        const u32 dh = f32_to_f16(d);
        b[0] = (u8)dh;
        b[1] = (u8)(dh >> 8);
        if (QT == DT_Q8_0) {
            for (int j = 0; j < 32; j++) b[2 + j] = (u8)(i8)roundf(vals[j] * id);
        } else {
            for (int j = 0; j < 16; j++) {
                const u32 lo = min(15u, (u32)fmaxf(vals[j] * id + 8.5f, 0.0f));
                const u32 hi = min(15u, (u32)fmaxf(vals[j + 16] * id + 8.5f, 0.0f));
                b[2 + j] = (u8)(lo | (hi << 4));
            }
        }
    }
}

#define QUANTIZE(QT, X)                                                                            \
    KERNEL(quantize_##X##_##QT)(IN x, View vx, OUT o, View vo, u64 blocks) {                       \
        quantize_impl(DT_##X, DT_##QT, x, vx, o, vo, blocks);                                      \
    }
#define QUANTIZE_X(X, _) QUANTIZE(q8_0, X) QUANTIZE(q4_0, X)
FLOATS_1(QUANTIZE_X, _)

DEVICE void dequantize_rows_impl(const int W, IN w, View vw, OUT o, u32 first, u32 rows, u32 k) {
    GRID_STRIDE(e, (u64)rows * k) {
        const u64 r = first + e / k, c = e % k;
        ((GLOBAL u16*)o)[e] = (u16)f32_to_f16(load(W, w, vw, at(vw, r * k + c)));
    }
}

#define DEQUANTIZE_ROWS(W)                                                                         \
    KERNEL(dequantize_rows_##W##_f16)(IN w, View vw, OUT o, u32 first, u32 rows, u32 k) {          \
        dequantize_rows_impl(DT_##W, w, vw, o, first, rows, k);                                    \
    }
DEQUANTIZE_ROWS(q8_0)
DEQUANTIZE_ROWS(q4_0)
DEQUANTIZE_ROWS(q8_0r)
DEQUANTIZE_ROWS(q4_0r)
