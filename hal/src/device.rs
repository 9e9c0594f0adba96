//! What a backend knows about its device, for users and for rooflines.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::HalError;

/// Peak arithmetic rates of a device, in FLOP/s (or OP/s for int8), where known.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeakFlops {
    /// f32 FLOP/s.
    pub f32: Option<f64>,
    /// f16 FLOP/s (tensor or matrix units where the device has them).
    pub f16: Option<f64>,
    /// bf16 FLOP/s.
    pub bf16: Option<f64>,
    /// int8 OP/s.
    pub int8: Option<f64>,
}

/// Facts about one device of one backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Backend name (`cpu`, `wgpu`, `cuda`, ...).
    pub backend: String,
    /// Device index within the backend.
    pub index: usize,
    /// Vendor (`AuthenticAMD`, `NVIDIA`, `Huawei`, ...).
    pub vendor: String,
    /// Device name as the vendor reports it.
    pub name: String,
    /// Architecture string (`x86_64+avx2+avx512f`, `sm_90`, `gfx90a`, `Ascend910B`).
    pub architecture: String,
    /// Total device memory in bytes, where known.
    pub memory_total: Option<u64>,
    /// Free device memory in bytes at the time of the probe, where known.
    pub memory_free: Option<u64>,
    /// Cores, SMs, CUs or AI cores.
    pub compute_units: Option<u32>,
    /// Driver version, where there is one.
    pub driver_version: Option<String>,
    /// Runtime or toolkit version, where there is one.
    pub runtime_version: Option<String>,
    /// Peak arithmetic rates, where known.
    pub peak_flops: PeakFlops,
    /// Peak memory bandwidth in bytes/s, where known.
    pub peak_bandwidth: Option<f64>,
    /// Capabilities worth knowing (`avx2`, `shader_f16`, `cl_khr_fp16`, ...).
    pub features: Vec<String>,
}

impl DeviceInfo {
    /// A minimal record for a device of `backend`; callers fill in the rest.
    pub fn new(backend: &str, index: usize, vendor: &str, name: &str, architecture: &str) -> Self {
        DeviceInfo {
            backend: backend.into(),
            index,
            vendor: vendor.into(),
            name: name.into(),
            architecture: architecture.into(),
            memory_total: None,
            memory_free: None,
            compute_units: None,
            driver_version: None,
            runtime_version: None,
            peak_flops: PeakFlops::default(),
            peak_bandwidth: None,
            features: Vec::new(),
        }
    }

    /// The selector a user types to pick this device (`cuda:1`).
    pub fn selector(&self) -> DeviceSelector {
        DeviceSelector {
            backend: self.backend.clone(),
            index: Some(self.index),
        }
    }
}

/// What a user types to pick a device: `NAME` or `NAME:INDEX`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceSelector {
    /// Backend name.
    pub backend: String,
    /// Device index; `None` lets the backend pick its best device.
    pub index: Option<usize>,
}

impl FromStr for DeviceSelector {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            HalError::invalid(
                "device",
                format!("`{s}`: {why}; write NAME or NAME:INDEX, e.g. cpu or cuda:1"),
            )
        };
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => {
                let idx = i
                    .parse::<usize>()
                    .map_err(|_| bad("the index is not a number"))?;
                (n, Some(idx))
            }
            None => (s, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("not a backend name"));
        }
        Ok(DeviceSelector {
            backend: name.to_ascii_lowercase(),
            index,
        })
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.backend),
            None => f.write_str(&self.backend),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        let s: DeviceSelector = "cuda:1".parse().unwrap();
        assert_eq!(s.backend, "cuda");
        assert_eq!(s.index, Some(1));
        assert_eq!(s.to_string(), "cuda:1");
        let c: DeviceSelector = "CPU".parse().unwrap();
        assert_eq!(c.to_string(), "cpu");
        for bad in ["", "cuda:", "cuda:x", ":0", "cu da"] {
            assert!(bad.parse::<DeviceSelector>().is_err(), "{bad}");
        }
    }
}
