//! WGSL generated per operand dtype.
//!
//! Kernels compute in f32 and never touch a buffer directly: each operand `x`
//! gets functions `ld_x(e)` / `st_x(e, v)` (f32 values) or `ldi_x` / `sti_x`
//! (i32 values) that take the view's element index `e` (from `at`, without
//! the view's offset) and hide the storage format:
//!
//! - f32 and i32 are 32-bit words;
//! - f16 and bf16 are unpacked from (and packed into) `u32` words, so they
//!   work on every adapter; when the device has `SHADER_F16`, f16 is bound as
//!   `array<f16>` instead and read and written natively;
//! - Q8_0 and Q4_0 are decoded block by block inside the load (the scale and
//!   the quant are read from the packed GGUF bytes), so weights are never
//!   expanded to f32 in memory.
//!
//! Writes of 16-bit values and of quantized bytes go through atomics on the
//! word that holds them, because two threads may own the two halves of one
//! word; bytes of the word outside the tensor are never changed. All
//! float conversions round to nearest even in integer arithmetic, so results
//! do not depend on how a driver converts (a native f16 store converts a
//! value already rounded, which is exact).

use glmhal_hal::DType;

/// Shared helpers: the view struct, its indexing and exact conversions.
pub(crate) const COMMON_WGSL: &str = r#"
struct View { offset: u32, cols: u32, col_stride: u32, d1: u32, d2: u32, s0: u32, s1: u32, s2: u32 }
// Logical row-major element `e` of a view -> element index from the view's start.
fn at(v: View, e: u32) -> u32 {
    let r = e / v.cols;
    let c = e % v.cols;
    let i2 = r % v.d2;
    let i1 = (r / v.d2) % v.d1;
    let i0 = r / (v.d2 * v.d1);
    return i0 * v.s0 + i1 * v.s1 + i2 * v.s2 + c * v.col_stride;
}
// The flat index of a 1-D grid of 64-thread workgroups folded into x and y.
fn flat(g: vec3<u32>, n: vec3<u32>) -> u32 { return g.y * n.x * 64u + g.x; }
// The index of a workgroup in a grid folded into x and y.
fn group_index(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.y * n.x + w.x; }

fn f16_bits_to_f32(h: u32) -> f32 {
    let s = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        if (m == 0u) { return bitcast<f32>(s); }
        let v = f32(m) * 5.9604644775390625e-8;
        return select(v, -v, s != 0u);
    }
    if (e == 31u) { return bitcast<f32>(s | 0x7f800000u | (m << 13u)); }
    return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}
fn f32_to_f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let s = (x >> 16u) & 0x8000u;
    let a = x & 0x7fffffffu;
    if (a > 0x7f800000u) { return s | 0x7e00u | ((a >> 13u) & 0x3ffu); }
    if (a >= 0x477ff000u) { return s | 0x7c00u; }
    if (a < 0x38800000u) {
        if (a < 0x33000000u) { return s; }
        let e = a >> 23u;
        let m = (a & 0x7fffffu) | 0x800000u;
        let shift = 126u - e;
        let q = m >> shift;
        let rem = m & ((1u << shift) - 1u);
        let half = 1u << (shift - 1u);
        var r = q;
        if (rem > half || (rem == half && (q & 1u) == 1u)) { r = q + 1u; }
        return s | r;
    }
    return s | ((a + 0xfffu + ((a >> 13u) & 1u) - 0x38000000u) >> 13u);
}
fn bf16_bits_to_f32(h: u32) -> f32 { return bitcast<f32>(h << 16u); }
fn f32_to_bf16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) { return (x >> 16u) | 0x40u; }
    return (x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u;
}
fn round_f16(v: f32) -> f32 { return f16_bits_to_f32(f32_to_f16_bits(v)); }
fn round_bf16(v: f32) -> f32 { return bf16_bits_to_f32(f32_to_bf16_bits(v)); }
"#;

/// Workgroup-wide sums and maxima for 64-thread workgroups: every thread
/// passes its partial value and gets the combined one. Call from uniform
/// control flow.
pub(crate) const REDUCE_WGSL: &str = r#"
var<workgroup> red: array<f32, 64>;
fn sum_all(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
fn max_all(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
"#;

/// Errors a kernel finds in its data (an index outside a table), reported
/// through a small status buffer the backend reads at the next wait.
pub(crate) const STATUS_WGSL: &str = r#"
fn report(code: u32, value: u32) {
    atomicMax(&status[0], code);
    atomicStore(&status[1], value);
}
"#;

/// Status codes `report` writes, shared by every backend.
pub(crate) use glmhal_hal::kernel_status as status;

/// Whether a kernel reads or writes an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Loaded only.
    Read,
    /// Stored only.
    Write,
}

/// One tensor a kernel binds: its name in the shader, dtype and access.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub name: &'static str,
    pub dtype: DType,
    pub access: Access,
}

impl Operand {
    pub fn read(name: &'static str, dtype: DType) -> Self {
        Operand {
            name,
            dtype,
            access: Access::Read,
        }
    }

    pub fn write(name: &'static str, dtype: DType) -> Self {
        Operand {
            name,
            dtype,
            access: Access::Write,
        }
    }
}

/// Whether f16 is bound natively (`SHADER_F16`) or unpacked from words.
fn native(dtype: DType, native_f16: bool) -> bool {
    dtype == DType::F16 && native_f16
}

/// The binding and accessors of `op` at `binding`. The uniform `p` must hold
/// a `View` field named like the operand.
pub(crate) fn operand(op: &Operand, binding: u32, native_f16: bool) -> String {
    let n = op.name;
    let write = op.access == Access::Write;
    let elem = if native(op.dtype, native_f16) {
        "f16"
    } else if write && (op.dtype.bytes_for(1) < 4 || op.dtype.is_quantized()) {
        "atomic<u32>"
    } else {
        "u32"
    };
    let mut s =
        format!("@group(0) @binding({binding}) var<storage, read_write> {n}_buf: array<{elem}>;\n");
    let round = match op.dtype {
        DType::F16 => "round_f16(v)",
        DType::Bf16 => "round_bf16(v)",
        _ => "v",
    };
    s += &format!("fn rnd_{n}(v: f32) -> f32 {{ return {round}; }}\n");
    let body = match (op.dtype, write) {
        (DType::F32, false) => {
            format!(
                "fn ld_{n}(e: u32) -> f32 {{ return bitcast<f32>({n}_buf[p.{n}.offset + e]); }}"
            )
        }
        (DType::F32, true) => {
            format!("fn st_{n}(e: u32, v: f32) {{ {n}_buf[p.{n}.offset + e] = bitcast<u32>(v); }}")
        }
        (DType::I32, false) => {
            format!(
                "fn ldi_{n}(e: u32) -> i32 {{ return bitcast<i32>({n}_buf[p.{n}.offset + e]); }}"
            )
        }
        (DType::I32, true) => {
            format!("fn sti_{n}(e: u32, v: i32) {{ {n}_buf[p.{n}.offset + e] = bitcast<u32>(v); }}")
        }
        (DType::F16, false) if native_f16 => {
            format!("fn ld_{n}(e: u32) -> f32 {{ return f32({n}_buf[p.{n}.offset + e]); }}")
        }
        (DType::F16, true) if native_f16 => format!(
            "fn st_{n}(e: u32, v: f32) {{ {n}_buf[p.{n}.offset + e] = f16(round_f16(v)); }}"
        ),
        (DType::F16 | DType::Bf16, false) => {
            let decode = if op.dtype == DType::F16 {
                "f16"
            } else {
                "bf16"
            };
            format!(
                "fn ld_{n}(e: u32) -> f32 {{ let i = p.{n}.offset + e; \
                 return {decode}_bits_to_f32(({n}_buf[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }}"
            )
        }
        (DType::F16 | DType::Bf16, true) => {
            let encode = if op.dtype == DType::F16 {
                "f16"
            } else {
                "bf16"
            };
            format!(
                "fn st_{n}(e: u32, v: f32) {{ let i = p.{n}.offset + e; let sh = (i & 1u) * 16u; \
                 atomicAnd(&{n}_buf[i >> 1u], ~(0xffffu << sh)); \
                 atomicOr(&{n}_buf[i >> 1u], f32_to_{encode}_bits(v) << sh); }}"
            )
        }
        (DType::Q8_0 | DType::Q4_0, false) => {
            let (bytes, quant) = if op.dtype == DType::Q8_0 {
                (
                    34,
                    format!("f32(bitcast<i32>(byte_{n}(base + 2u + j) << 24u) >> 24u)"),
                )
            } else {
                (
                    18,
                    format!(
                        "f32(select(byte_{n}(base + 2u + j % 16u) & 15u, byte_{n}(base + 2u + j % 16u) >> 4u, j >= 16u)) - 8.0"
                    ),
                )
            };
            format!(
                "fn byte_{n}(b: u32) -> u32 {{ return ({n}_buf[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu; }}\n\
                 fn ld_{n}(e: u32) -> f32 {{\n\
                 \x20   let base = p.{n}.offset + (e / 32u) * {bytes}u;\n\
                 \x20   let j = e % 32u;\n\
                 \x20   let d = f16_bits_to_f32(byte_{n}(base) | (byte_{n}(base + 1u) << 8u));\n\
                 \x20   return d * ({quant});\n\
                 }}"
            )
        }
        (DType::Q8_0 | DType::Q4_0, true) => format!(
            "fn stb_{n}(b: u32, v: u32) {{ let sh = (b & 3u) * 8u; \
             atomicAnd(&{n}_buf[b >> 2u], ~(0xffu << sh)); \
             atomicOr(&{n}_buf[b >> 2u], (v & 0xffu) << sh); }}"
        ),
    };
    s += &body;
    s.push('\n');
    // The other value type, so one body serves every dtype combination.
    let bridge = match (op.dtype, write) {
        (DType::I32, false) => format!("fn ld_{n}(e: u32) -> f32 {{ return f32(ldi_{n}(e)); }}"),
        (DType::I32, true) => format!("fn st_{n}(e: u32, v: f32) {{ sti_{n}(e, i32(v)); }}"),
        (DType::Q8_0 | DType::Q4_0, true) => String::new(),
        (_, false) => format!("fn ldi_{n}(e: u32) -> i32 {{ return i32(ld_{n}(e)); }}"),
        (_, true) => format!("fn sti_{n}(e: u32, v: i32) {{ st_{n}(e, f32(v)); }}"),
    };
    s += &bridge;
    s.push('\n');
    s
}

/// A whole module: `enable f16` when needed, the helpers, the operands at
/// bindings 1, 2, ... (binding 0 is the uniform `p`) and the kernel body.
pub(crate) fn module(operands: &[Operand], body: &str, native_f16: bool) -> String {
    let mut s = String::new();
    if operands.iter().any(|o| native(o.dtype, native_f16)) {
        s += "enable f16;\n";
    }
    s += COMMON_WGSL;
    for (i, op) in operands.iter().enumerate() {
        s += &operand(op, i as u32 + 1, native_f16);
    }
    s += body;
    s
}

/// The pipeline cache key of a kernel for these operand dtypes.
pub(crate) fn key(kernel: &str, operands: &[Operand], native_f16: bool) -> String {
    let mut k = kernel.to_string();
    for op in operands {
        k.push('/');
        k += op.dtype.name();
    }
    if native_f16 && operands.iter().any(|o| o.dtype == DType::F16) {
        k += "/native";
    }
    k
}
