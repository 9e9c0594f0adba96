//! Opening the OpenCL ICD loader and finding every device of every
//! platform. The loader (`libOpenCL.so.1`, `OpenCL.dll`, the macOS
//! framework; `OPENCL_DYLIB_PATH` may name others, `;`-separated) is opened
//! with dlopen at first use, so a machine without OpenCL gets an
//! explanation, not a link error or a panic.

use std::sync::Mutex;

use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
use opencl3::error_codes::ClError;
use opencl3::platform::{get_platforms, Platform};

use glmhal_hal::UnavailableKind;

/// `CL_PLATFORM_NOT_FOUND_KHR`: the ICD loader found no driver.
const PLATFORM_NOT_FOUND: i32 = -1001;

/// One device and the platform it belongs to.
pub struct Found {
    /// Its platform (driver).
    pub platform: Platform,
    /// The device.
    pub device: Device,
}

/// Why no device could be listed.
#[derive(Clone, Debug)]
pub struct NotFound {
    /// What kind of absence.
    pub kind: UnavailableKind,
    /// For the user.
    pub detail: String,
}

/// The loader's error text for an OpenCL status code.
pub fn describe_code(code: i32) -> String {
    format!("{} ({code})", ClError(code))
}

fn no_platform() -> NotFound {
    NotFound {
        kind: UnavailableKind::NoDevice,
        detail: "the OpenCL ICD loader found no platform: no driver is registered in \
                 /etc/OpenCL/vendors (or in the directory OCL_ICD_VENDORS names); install one \
                 (a GPU vendor's, or pocl-opencl-icd to run on CPUs)"
            .into(),
    }
}

/// Serializes discovery and device queries: drivers may set devices up
/// lazily on the first query, and PoCL 3.1 crashes when two threads do it
/// at once.
static DISCOVERY: Mutex<()> = Mutex::new(());

/// Runs `f` while no other thread queries the driver through this module.
pub fn serialized<T>(f: impl FnOnce() -> T) -> T {
    let _guard = DISCOVERY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f()
}

/// Every device of every platform, in platform order, any device type
/// (PoCL reports CPUs, phones report GPUs, some accelerators ACCELERATOR).
pub fn devices() -> Result<Vec<Found>, NotFound> {
    serialized(find_devices)
}

fn find_devices() -> Result<Vec<Found>, NotFound> {
    if !cl3::is_opencl_runtime_available() {
        return Err(NotFound {
            kind: UnavailableKind::LibraryMissing,
            detail: "the OpenCL ICD loader (libOpenCL.so.1) could not be opened; install it \
                     (Debian: ocl-icd-libopencl1) with a driver, or name it in OPENCL_DYLIB_PATH"
                .into(),
        });
    }
    let platforms = match get_platforms() {
        Ok(p) if p.is_empty() => return Err(no_platform()),
        Ok(p) => p,
        Err(e) if e.0 == PLATFORM_NOT_FOUND => return Err(no_platform()),
        Err(e) => {
            return Err(NotFound {
                kind: UnavailableKind::Other,
                detail: format!("clGetPlatformIDs failed: {}", describe_code(e.0)),
            })
        }
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for platform in platforms {
        match platform.get_devices(CL_DEVICE_TYPE_ALL) {
            Ok(ids) => found.extend(ids.into_iter().map(|id| Found {
                platform,
                device: Device::new(id),
            })),
            Err(e) => errors.push(format!(
                "{}: clGetDeviceIDs failed: {}",
                platform.name().unwrap_or_else(|_| "a platform".into()),
                describe_code(e.0)
            )),
        }
    }
    if found.is_empty() {
        return Err(NotFound {
            kind: UnavailableKind::NoDevice,
            detail: if errors.is_empty() {
                "every OpenCL platform reports 0 devices".into()
            } else {
                errors.join("; ")
            },
        });
    }
    Ok(found)
}
