//! With the ICD loader pointed at an empty vendor directory (what a machine
//! with the loader but no driver looks like), the backend is unavailable
//! with the reason, and opening it is an error, not a panic. Its own test
//! binary: the loader reads `OCL_ICD_VENDORS` once per process.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_hal::{Availability, BackendProvider, UnavailableKind};

#[test]
fn no_platform_is_explained() {
    let empty = std::env::temp_dir().join(format!("glmhal-no-icd-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    std::env::set_var("OCL_ICD_VENDORS", &empty);
    let probe = glmhal_opencl::Provider.probe(&glmhal_hal::BackendOptions::default());
    let Availability::Unavailable { kind, detail } = probe else {
        panic!("an empty vendor directory still gave devices: {probe:?}");
    };
    // Without the loader at all the reason is the missing library instead.
    match kind {
        UnavailableKind::NoDevice => assert!(detail.contains("no platform"), "{detail}"),
        UnavailableKind::LibraryMissing => assert!(detail.contains("libOpenCL"), "{detail}"),
        other => panic!("{other:?}: {detail}"),
    }
    let Err(err) = glmhal_opencl::Provider.open(None, &glmhal_hal::BackendOptions::default())
    else {
        panic!("opened a device without a platform");
    };
    let err = err.to_string();
    assert!(err.contains(&detail), "{err}");
    std::fs::remove_dir_all(&empty).unwrap();
}
