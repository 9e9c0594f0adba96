//! Probing and opening CUDA and HIP devices the same way: load the library,
//! initialize it, count devices, describe each; a library that loads but
//! reports no device is "unavailable: no device", never usable.

use std::sync::Arc;

use glmhal_hal::{
    Availability, Backend, BackendOptions, BackendProvider, DeviceInfo, GpuOptions, HalError,
    Result, UnavailableKind,
};

use super::api::{Init, ModuleApi};
use super::module_driver::ModuleDriver;
use super::table::ApiTable;
use crate::backend::open_device;

/// What a vendor crate adds to its [`ApiTable`] to probe and open devices.
pub struct Vendor {
    /// Symbol names and codes.
    pub api: &'static ApiTable,
    /// How the loaded library names itself in messages (path, versions).
    pub label: fn(&ModuleApi) -> String,
    /// Facts about device `i`.
    pub describe: fn(&ModuleApi, usize, &GpuOptions) -> Result<DeviceInfo>,
    /// Opens device `i` as a driver (its architecture, warp width, compiler).
    pub open: fn(Arc<ModuleApi>, usize, &GpuOptions) -> Result<ModuleDriver>,
}

/// Whether `vendor`'s library is here, with which devices, or why not.
pub fn probe(vendor: &Vendor, options: &GpuOptions) -> Availability {
    let api = match ModuleApi::load(vendor.api) {
        Ok(api) => api,
        Err(e) => return Availability::library_missing(e),
    };
    let unavailable = |kind, detail| Availability::Unavailable { kind, detail };
    let label = (vendor.label)(&api);
    match api.init() {
        Err(e) => return unavailable(UnavailableKind::Other, format!("{label}: {e}")),
        Ok(Init::NoDevice) => {
            return unavailable(
                UnavailableKind::NoDevice,
                format!("{label} reports no device"),
            )
        }
        Ok(Init::DriverTooOld(words)) => {
            return unavailable(
                UnavailableKind::DriverTooOld,
                format!("{label} is too old: {words}"),
            )
        }
        Ok(Init::Ready) => {}
    }
    match api.device_count() {
        Err(e) => unavailable(UnavailableKind::Other, format!("{label}: {e}")),
        Ok(0) => unavailable(
            UnavailableKind::NoDevice,
            format!("{label} loads but reports 0 devices"),
        ),
        Ok(n) => match (0..n)
            .map(|i| (vendor.describe)(&api, i, options))
            .collect()
        {
            Ok(devices) => Availability::Available { devices },
            Err(e) => unavailable(UnavailableKind::Other, e.to_string()),
        },
    }
}

/// Opens device `index` (default 0) of `vendor` as the shared GPU backend.
pub fn open(
    vendor: &Vendor,
    index: Option<usize>,
    options: &GpuOptions,
) -> Result<Box<dyn Backend>> {
    let found = probe(vendor, options);
    open_device(vendor.api.backend, index, found, options.vendor_blas, |i| {
        let api = Arc::new(ModuleApi::load(vendor.api)?);
        if api.init()? != Init::Ready {
            return Err(HalError::Unavailable {
                backend: format!("{}:{i}", vendor.api.backend),
                reason: format!("{} reports no device", (vendor.label)(&api)),
            });
        }
        Ok(Arc::new((vendor.open)(api, i, options)?))
    })
}

/// The registry entry of a module-API vendor: CUDA's and HIP's
/// `BackendProvider` is this over their [`Vendor`].
#[derive(Clone, Copy)]
pub struct ModuleProvider {
    vendor: &'static Vendor,
}

impl ModuleProvider {
    /// The provider for `vendor`.
    pub const fn new(vendor: &'static Vendor) -> Self {
        ModuleProvider { vendor }
    }
}

impl std::fmt::Debug for ModuleProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModuleProvider({})", self.vendor.api.backend)
    }
}

impl BackendProvider for ModuleProvider {
    fn name(&self) -> &'static str {
        self.vendor.api.backend
    }

    fn probe(&self, options: &BackendOptions) -> Availability {
        probe(self.vendor, &options.gpu)
    }

    fn open(&self, index: Option<usize>, options: &BackendOptions) -> Result<Box<dyn Backend>> {
        open(self.vendor, index, &options.gpu)
    }
}
