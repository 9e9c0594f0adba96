//! Compile targets: `cuda:sm_80`, `hip:gfx906`, ...

use std::fmt;
use std::str::FromStr;

use glmhal_hal::HalError;

/// A GPU architecture to compile for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// NVIDIA, by compute capability (`sm_80` is 80).
    Cuda {
        /// Compute capability × 10 + minor.
        sm: u32,
    },
    /// AMD or Hygon, by `gcnArchName` without feature suffixes (`gfx906`).
    Hip {
        /// The architecture.
        arch: String,
    },
}

impl Target {
    /// The runtime compiler's options for this architecture (NVRTC or
    /// hiprtc), without the defines: the same for `glmhal kernels compile`
    /// and for a device compiling at first use.
    pub fn rtc_options(&self) -> Vec<String> {
        match self {
            Target::Cuda { sm } => vec![
                format!("--gpu-architecture=compute_{sm}"),
                "--std=c++17".to_string(),
            ],
            Target::Hip { arch } => vec![format!("--gpu-architecture={arch}"), "-O3".to_string()],
        }
    }

    /// Threads that execute in lockstep: 32 on NVIDIA and on RDNA (gfx10+)
    /// in HIP's default mode, 64 on GCN/CDNA wavefronts (gfx9, Hygon DCU).
    pub fn warp_size(&self) -> u32 {
        match self {
            Target::Cuda { .. } => 32,
            Target::Hip { arch } => {
                let generation: u32 = arch
                    .trim_start_matches("gfx")
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
                    .parse()
                    .unwrap_or(900);
                if generation >= 1000 {
                    32
                } else {
                    64
                }
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cuda { sm } => write!(f, "cuda:sm_{sm}"),
            Target::Hip { arch } => write!(f, "hip:{arch}"),
        }
    }
}

impl FromStr for Target {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self, HalError> {
        let bad = || {
            HalError::invalid(
                "--target",
                format!(
                    "expected cuda:sm_NN or hip:gfxNNN (e.g. cuda:sm_90, hip:gfx90a), got `{s}`"
                ),
            )
        };
        let (api, arch) = s.split_once(':').ok_or_else(bad)?;
        match api {
            "cuda" => {
                let sm = arch.strip_prefix("sm_").ok_or_else(bad)?;
                let sm: u32 = sm.trim_end_matches('a').parse().map_err(|_| bad())?;
                (sm >= 50).then_some(Target::Cuda { sm }).ok_or_else(bad)
            }
            "hip" => {
                let arch = arch.split(':').next().unwrap_or(arch);
                (arch.starts_with("gfx")
                    && arch.len() > 3
                    && arch[3..].chars().all(|c| c.is_ascii_alphanumeric()))
                .then(|| Target::Hip {
                    arch: arch.to_string(),
                })
                .ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_and_knows_warp_widths() {
        let t: Target = "cuda:sm_90".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.clone(), t.warp_size()), (Target::Cuda { sm: 90 }, 32));
        let h: Target = "hip:gfx906".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.warp_size(), 64);
        assert_eq!(
            "hip:gfx1100".parse::<Target>().map(|t| t.warp_size()).ok(),
            Some(32)
        );
        assert_eq!(h.to_string(), "hip:gfx906");
        for bad in ["cuda:80", "hip:906", "metal:m1", "cuda:sm_x"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
