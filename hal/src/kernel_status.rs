//! Bad data a kernel meets while it runs (an id outside a table, a
//! non-finite value where an answer needs finite ones) cannot return an
//! error from the device: GPU kernels record a code and a value in a few
//! status words that the backend reads at its next wait. The codes, and the
//! errors they become, are the same on every backend.

use crate::error::{HalError, Result};

/// get_rows met an id outside its table (value: the id).
pub const ROW_OUT_OF_RANGE: u32 = 1;
/// kv_write met a position outside its cache (value: the position).
pub const POSITION_OUT_OF_RANGE: u32 = 2;
/// argmax met a NaN or an infinity (value: the row).
pub const NON_FINITE: u32 = 3;
/// mat_mul_id met an expert id outside its experts (value: the id).
pub const EXPERT_OUT_OF_RANGE: u32 = 4;
/// moe_select met a NaN score (value: the row).
pub const ROUTER_NON_FINITE: u32 = 5;
/// moe_weights met an expert id outside its logits' experts (value: the id).
pub const WEIGHT_ID_OUT_OF_RANGE: u32 = 6;

/// The error status words `code`, `value` stand for on `backend` (its
/// selector), or `Ok` when no kernel reported anything (code 0).
pub fn check(backend: &str, code: u32, value: u32) -> Result<()> {
    let signed = value as i32;
    match code {
        0 => Ok(()),
        ROW_OUT_OF_RANGE => Err(HalError::invalid(
            format!("{backend} get_rows"),
            format!("id {signed} is outside the table; its output row was filled with zeros"),
        )),
        POSITION_OUT_OF_RANGE => Err(HalError::invalid(
            format!("{backend} kv_write"),
            format!("position {signed} is outside the cache; that row was not written"),
        )),
        NON_FINITE => Err(HalError::NonFinite {
            backend: backend.to_string(),
            op: "argmax".to_string(),
            row: value as usize,
        }),
        EXPERT_OUT_OF_RANGE => Err(HalError::invalid(
            format!("{backend} mat_mul_id"),
            format!(
                "expert id {signed} is outside the experts; its output rows were filled with zeros"
            ),
        )),
        WEIGHT_ID_OUT_OF_RANGE => Err(HalError::invalid(
            format!("{backend} moe_weights"),
            format!("expert id {signed} is outside the experts; its weight was set to 0"),
        )),
        ROUTER_NON_FINITE => Err(HalError::NonFinite {
            backend: backend.to_string(),
            op: "moe_select".to_string(),
            row: value as usize,
        }),
        other => Err(HalError::backend(
            backend,
            "kernel",
            format!("unknown status code {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_names_its_op_and_value() {
        assert!(check("x:0", 0, 7).is_ok());
        let text = |code, value| check("x:0", code, value).unwrap_err().to_string();
        assert!(text(ROW_OUT_OF_RANGE, 999).contains("get_rows"));
        assert!(text(ROW_OUT_OF_RANGE, 999).contains("999"));
        assert!(text(POSITION_OUT_OF_RANGE, (-5i32) as u32).contains("-5"));
        assert!(text(NON_FINITE, 4).contains("row 4"));
        assert!(matches!(
            check("x:0", NON_FINITE, 4),
            Err(HalError::NonFinite { row: 4, .. })
        ));
        assert!(text(EXPERT_OUT_OF_RANGE, 9).contains("mat_mul_id"));
        assert!(text(EXPERT_OUT_OF_RANGE, 9).contains("expert id 9"));
        assert!(text(WEIGHT_ID_OUT_OF_RANGE, 7).contains("moe_weights"));
        assert!(matches!(
            check("x:0", ROUTER_NON_FINITE, 2),
            Err(HalError::NonFinite { row: 2, ref op, .. }) if op == "moe_select"
        ));
        assert!(text(42, 0).contains("unknown status code 42"));
    }
}
