//! Run-time discovery of the backends compiled into a binary.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::device::{DeviceInfo, DeviceSelector};
use crate::error::{HalError, Result};
use crate::options::BackendOptions;

/// Every backend name glmhal knows, compiled in or not.
pub const KNOWN_BACKENDS: [&str; 6] = ["cpu", "wgpu", "opencl", "cuda", "hip", "cann"];

/// Why a backend cannot be used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableKind {
    /// The vendor runtime library could not be loaded.
    LibraryMissing,
    /// The runtime loaded but reports no device.
    NoDevice,
    /// The driver or runtime is older than the backend needs.
    DriverTooOld,
    /// The backend is not part of this build.
    NotCompiled,
    /// Anything else (the detail says what).
    Other,
}

/// Result of probing a backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Availability {
    /// Usable, with these devices.
    Available {
        /// The devices found.
        devices: Vec<DeviceInfo>,
    },
    /// Not usable, and why.
    Unavailable {
        /// The kind of reason.
        kind: UnavailableKind,
        /// Words a user can act on (which library, which path, which version).
        detail: String,
    },
}

impl Availability {
    /// "Library missing" with the loader's reason: the words of an
    /// `Unavailable` error as they are, any other error in full.
    pub fn library_missing(error: HalError) -> Self {
        Availability::Unavailable {
            kind: UnavailableKind::LibraryMissing,
            detail: match error {
                HalError::Unavailable { reason, .. } => reason,
                other => other.to_string(),
            },
        }
    }
}

/// One backend's entry point, as a binary compiles it in.
pub trait BackendProvider: Send + Sync {
    /// Backend name, one of [`KNOWN_BACKENDS`].
    fn name(&self) -> &'static str;
    /// Looks for the runtime and devices, as `options` would open them. Must
    /// not panic (the registry guards it anyway) and must be cheap enough to
    /// run at start-up.
    fn probe(&self, options: &BackendOptions) -> Availability;
    /// Opens device `index`, or the best device when `None`, with `options`.
    fn open(&self, index: Option<usize>, options: &BackendOptions) -> Result<Box<dyn Backend>>;
    /// Releases the vendor runtime for the rest of the process (CANN's
    /// `aclFinalize`), once every backend it opened has been dropped: a
    /// program calls it on its way out. The default does nothing.
    fn shutdown(&self) {}
}

/// A backend's name with its probe result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// Backend name.
    pub backend: String,
    /// What the probe found.
    #[serde(flatten)]
    pub availability: Availability,
}

/// What a registry does to each backend it opens before handing it out
/// (a test tool's wrapper, say), given the device's selector.
pub type OpenHook =
    Box<dyn Fn(&DeviceSelector, Box<dyn Backend>) -> Box<dyn Backend> + Send + Sync>;

/// The set of compiled-in backends, with the options they open with.
pub struct Registry {
    providers: Vec<Box<dyn BackendProvider>>,
    options: BackendOptions,
    on_open: Option<OpenHook>,
}

impl Registry {
    /// [`BackendProvider::shutdown`] for every provider: call it last,
    /// after every backend the registry opened has been dropped.
    pub fn shutdown(&self) {
        for p in &self.providers {
            p.shutdown();
        }
    }

    /// A registry over these providers, in preference order, with default options.
    pub fn new(providers: Vec<Box<dyn BackendProvider>>) -> Self {
        Registry {
            providers,
            options: BackendOptions::default(),
            on_open: None,
        }
    }

    /// The same registry probing and opening with `options`.
    pub fn with_options(mut self, options: BackendOptions) -> Self {
        self.options = options;
        self
    }

    /// The same registry passing every backend it opens through `hook`.
    pub fn with_open_hook(mut self, hook: OpenHook) -> Self {
        self.on_open = Some(hook);
        self
    }

    /// The options backends open with.
    pub fn options(&self) -> &BackendOptions {
        &self.options
    }

    /// Names of the compiled-in backends.
    pub fn names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.name()).collect()
    }

    /// Probes every backend; a panicking probe is reported as unavailable.
    /// Known backends that are not compiled in are listed as such.
    pub fn discover(&self) -> Vec<BackendStatus> {
        let mut out: Vec<BackendStatus> = self
            .providers
            .iter()
            .map(|p| BackendStatus {
                backend: p.name().to_string(),
                availability: guarded_probe(p.as_ref(), &self.options),
            })
            .collect();
        for name in KNOWN_BACKENDS {
            if !out.iter().any(|s| s.backend == name) {
                out.push(BackendStatus {
                    backend: name.to_string(),
                    availability: Availability::Unavailable {
                        kind: UnavailableKind::NotCompiled,
                        detail: "not compiled into this build of glmhal".into(),
                    },
                });
            }
        }
        out
    }

    /// Opens the device a selector names. Fails with the probe's reason when
    /// the backend is unavailable; never substitutes another backend.
    pub fn open(&self, selector: &DeviceSelector) -> Result<Box<dyn Backend>> {
        let provider = self
            .providers
            .iter()
            .find(|p| p.name() == selector.backend)
            .ok_or_else(|| {
                let why = if KNOWN_BACKENDS.contains(&selector.backend.as_str()) {
                    "not compiled into this build of glmhal".to_string()
                } else {
                    format!("unknown backend; known: {}", KNOWN_BACKENDS.join(", "))
                };
                HalError::Unavailable {
                    backend: selector.backend.clone(),
                    reason: why,
                }
            })?;
        match guarded_probe(provider.as_ref(), &self.options) {
            Availability::Unavailable { detail, .. } => Err(HalError::Unavailable {
                backend: selector.to_string(),
                reason: detail,
            }),
            Availability::Available { devices } => {
                if let Some(i) = selector.index {
                    if i >= devices.len() {
                        return Err(HalError::Unavailable {
                            backend: selector.to_string(),
                            reason: format!(
                                "no device {i}: {} has {} device(s)",
                                selector.backend,
                                devices.len()
                            ),
                        });
                    }
                }
                let backend = catch_unwind(AssertUnwindSafe(|| {
                    provider.open(selector.index, &self.options)
                }))
                .unwrap_or_else(|panic| {
                    Err(HalError::backend(
                        selector.to_string(),
                        "opening the device",
                        panic_text(&panic),
                    ))
                })?;
                Ok(match &self.on_open {
                    Some(hook) => hook(selector, backend),
                    None => backend,
                })
            }
        }
    }

    /// Opens every available backend's default device, with the reason for
    /// each one that could not be opened.
    pub fn open_all(&self) -> Vec<(String, Result<Box<dyn Backend>>)> {
        self.providers
            .iter()
            .map(|p| {
                let sel = DeviceSelector {
                    backend: p.name().into(),
                    index: None,
                };
                (p.name().to_string(), self.open(&sel))
            })
            .collect()
    }
}

fn guarded_probe(p: &dyn BackendProvider, options: &BackendOptions) -> Availability {
    catch_unwind(AssertUnwindSafe(|| p.probe(options))).unwrap_or_else(|panic| {
        Availability::Unavailable {
            kind: UnavailableKind::Other,
            detail: format!("probe failed: {}", panic_text(&panic)),
        }
    })
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicky;
    impl BackendProvider for Panicky {
        fn name(&self) -> &'static str {
            "cuda"
        }
        fn probe(&self, _: &BackendOptions) -> Availability {
            panic!("libcuda.so not found")
        }
        fn open(&self, _: Option<usize>, _: &BackendOptions) -> Result<Box<dyn Backend>> {
            panic!("never")
        }
    }

    struct Missing;
    impl BackendProvider for Missing {
        fn name(&self) -> &'static str {
            "hip"
        }
        fn probe(&self, _: &BackendOptions) -> Availability {
            Availability::Unavailable {
                kind: UnavailableKind::NoDevice,
                detail: "libamdhip64 loaded; 0 devices".into(),
            }
        }
        fn open(&self, _: Option<usize>, _: &BackendOptions) -> Result<Box<dyn Backend>> {
            unreachable!()
        }
    }

    #[test]
    fn discovery_never_panics_and_lists_every_known_backend() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let reg = Registry::new(vec![Box::new(Panicky), Box::new(Missing)]);
        let found = reg.discover();
        std::panic::set_hook(prev);
        assert_eq!(found.len(), KNOWN_BACKENDS.len());
        match &found[0].availability {
            Availability::Unavailable { detail, .. } => assert!(detail.contains("libcuda")),
            other => panic!("{other:?}"),
        }
        let cpu = found.iter().find(|s| s.backend == "cpu").unwrap();
        assert!(matches!(
            cpu.availability,
            Availability::Unavailable {
                kind: UnavailableKind::NotCompiled,
                ..
            }
        ));
    }

    #[test]
    fn opening_an_unavailable_backend_says_why() {
        let reg = Registry::new(vec![Box::new(Missing)]);
        let err = reg.open(&"hip".parse().unwrap()).err().unwrap().to_string();
        assert!(err.contains("0 devices"), "{err}");
        let err = reg
            .open(&"cann".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not compiled"), "{err}");
        let err = reg.open(&"tpu".parse().unwrap()).err().unwrap().to_string();
        assert!(err.contains("unknown backend"), "{err}");
    }
}
