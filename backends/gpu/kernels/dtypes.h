// dtype codes (as the host passes them for a bias), lower-case tokens for
// entry point names (unary_f16_f32 and so on) and lists of dtypes to
// instantiate kernels over. The preprocessor does not re-expand a macro
// inside its own expansion, so each nesting level has its own list macro
// (1 outermost).
#pragma once
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_I32 3
#define DT_Q8_0 4
#define DT_Q4_0 5
// Q8_0 and Q4_0 packed as prepare_weight stores them (see compat.h's `load`).
#define DT_Q8_0R 6
#define DT_Q4_0R 7

#define DT_f32 DT_F32
#define DT_f16 DT_F16
#define DT_bf16 DT_BF16
#define DT_i32 DT_I32
#define DT_q8_0 DT_Q8_0
#define DT_q4_0 DT_Q4_0
#define DT_q8_0r DT_Q8_0R
#define DT_q4_0r DT_Q4_0R

#define FLOATS_1(M, ...) M(f32, __VA_ARGS__) M(f16, __VA_ARGS__) M(bf16, __VA_ARGS__)
#define FLOATS_2(M, ...) M(f32, __VA_ARGS__) M(f16, __VA_ARGS__) M(bf16, __VA_ARGS__)
#define FLOATS_3(M, ...) M(f32, __VA_ARGS__) M(f16, __VA_ARGS__) M(bf16, __VA_ARGS__)
#define WEIGHTS_2(M, ...) FLOATS_2(M, __VA_ARGS__) M(q8_0, __VA_ARGS__) M(q4_0, __VA_ARGS__)
#define WEIGHTS_3(M, ...) FLOATS_3(M, __VA_ARGS__) M(q8_0, __VA_ARGS__) M(q4_0, __VA_ARGS__)
// Weights as prepare_weight may hold them: the above and the packed layouts
// (what mat_mul and get_rows read).
#define PREPARED_1(M, ...)                                                                         \
    FLOATS_1(M, __VA_ARGS__) M(q8_0, __VA_ARGS__) M(q4_0, __VA_ARGS__) M(q8_0r, __VA_ARGS__)       \
        M(q4_0r, __VA_ARGS__)
#define PREPARED_2(M, ...) WEIGHTS_2(M, __VA_ARGS__) M(q8_0r, __VA_ARGS__) M(q4_0r, __VA_ARGS__)
#define PREPARED_3(M, ...) WEIGHTS_3(M, __VA_ARGS__) M(q8_0r, __VA_ARGS__) M(q4_0r, __VA_ARGS__)
