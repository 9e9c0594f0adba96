//! OpenCL kernels and bad input: every file built with every planned entry
//! point, build logs in errors, clear errors for impossible allocations, no
//! panics. (Copies at any offset and out-of-range ids are in the
//! shared suite, `backend_tests!`.)

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::collections::BTreeSet;

use glmhal_gpu::driver::Driver;
use glmhal_gpu::packed::packs;
use glmhal_gpu::plan::{plan_if_supported, reads_packed, Context};
use glmhal_gpu::FILES;
use glmhal_hal::{Availability, BackendProvider, DType, HalError, Op, TensorDesc};
use glmhal_opencl::driver::{OpenClDriver, WARP};
use glmhal_opencl::Provider;

fn driver() -> Option<OpenClDriver> {
    if !glmhal_conformance::testing::should_run(&Provider) {
        return None;
    }
    let found = glmhal_opencl::loader::devices().unwrap();
    Some(OpenClDriver::open(0, found[0].device).unwrap())
}

#[test]
fn every_file_builds_with_every_planned_entry_point() {
    let Some(rt) = driver() else { return };
    let mut built = BTreeSet::new();
    for file in FILES {
        let module = rt.load_module(&rt.compile(file).unwrap()).unwrap();
        built.extend(rt.kernel_names(module).unwrap());
    }
    let mut planned = 0;
    for case in glmhal_conformance::Filter::default().select() {
        let (ins, outs) = case.descs();
        let packed = ins
            .iter()
            .enumerate()
            .filter(|(i, d)| reads_packed(&case.op, *i) && packs(d))
            .fold(0u8, |m, (i, _)| m | 1 << i);
        let as_given = plan_if_supported(&case.op, &ins, &outs, Context::warp(WARP)).unwrap();
        let prepared =
            plan_if_supported(&case.op, &ins, &outs, Context { warp: WARP, packed }).unwrap();
        for launch in as_given.into_iter().chain(prepared).flatten() {
            assert!(
                built.contains(&launch.entry),
                "{}: {} is not in {}",
                case.id,
                launch.entry,
                launch.file
            );
            planned += 1;
        }
    }
    assert!(planned > 500, "only {planned} launches planned");
    // One entry point per dtype combination of every op family, as in the CUDA/HIP tree.
    assert_eq!(built.len(), 399, "{built:?}");
}

#[test]
fn a_kernel_that_does_not_build_reports_the_file_and_the_build_log() {
    let Some(rt) = driver() else { return };
    let broken = glmhal_gpu::KernelFile {
        name: "broken.cu",
        source: "#include \"compat.h\"\nKERNEL(f)(GLOBAL float* x) { x[0] = undeclared; }\n",
    };
    let text = rt.compile(broken).unwrap();
    let err = rt.load_module(&text).unwrap_err().to_string();
    assert!(err.contains("building broken.cu"), "{err}");
    // The log points into the file, not the inlined headers.
    assert!(
        err.contains("broken.cu:2") && err.contains("undeclared"),
        "{err}"
    );
}

#[test]
fn impossible_buffers_are_out_of_memory_and_the_device_goes_on() {
    let Some(b) = glmhal_conformance::testing::open_for_test(&Provider) else {
        return;
    };
    // Past the device's largest allocation (PoCL: a quarter of its memory).
    let max_alloc = glmhal_opencl::loader::devices().unwrap()[0]
        .device
        .max_mem_alloc_size()
        .unwrap();
    let too_big = usize::try_from(max_alloc).unwrap() + 1;
    for bytes in [too_big, usize::MAX / 2, usize::MAX] {
        match b.alloc(bytes) {
            Err(HalError::OutOfMemory {
                backend, requested, ..
            }) => assert!(backend == "opencl:0" && requested == bytes),
            Err(other) => panic!("{bytes} bytes: {other}"),
            Ok(_) => panic!("{bytes} bytes were allocated"),
        }
    }
    // A real kernel still runs after the errors.
    let d = TensorDesc::contiguous(DType::F32, &[4]);
    let x = b
        .upload_new(
            &[1f32, -2.0, 3.5, 0.25]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
    let out = b.alloc(16).unwrap();
    b.execute(
        &Op::Scale { factor: 2.0 },
        &[x.view(d.clone())],
        &[out.view(d)],
    )
    .unwrap();
    let mut bytes = [0u8; 16];
    b.download(&out, 0, &mut bytes).unwrap();
    let values: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [2.0, -4.0, 7.0, 0.5]);
}

#[test]
fn devices_list_platform_type_version_and_extensions() {
    let Availability::Available { devices } =
        Provider.probe(&glmhal_hal::BackendOptions::default())
    else {
        return;
    };
    let d = &devices[0];
    assert!(d.architecture.starts_with("OpenCL "), "{d:?}");
    assert!(
        d.runtime_version.is_some() && d.memory_total.is_some(),
        "{d:?}"
    );
    assert!(d.features.iter().any(|f| f.starts_with("type=")), "{d:?}");
    assert!(d.features.iter().any(|f| f.starts_with("cl_khr_")), "{d:?}");
    let Err(err) = Provider.open(Some(devices.len()), &glmhal_hal::BackendOptions::default())
    else {
        panic!("opened a device past the last one");
    };
    let err = err.to_string();
    assert!(err.contains("device(s) found"), "{err}");
}
