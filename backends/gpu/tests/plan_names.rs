//! Every entry point the planner picks for the conformance cases exists in
//! the compiled kernel tree. Needs NVRTC: required when `GLMHAL_NVRTC` is
//! set (CI sets it), otherwise it says why it did not run.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::collections::BTreeSet;

use glmhal_gpu::packed::packs;
use glmhal_gpu::plan::{plan_if_supported, reads_packed, Context};
use glmhal_gpu::{compile_all, HipCompiler, Target};

#[test]
fn planned_entry_points_exist_for_every_conformance_case() {
    // PTX is enough to list the entry points; assembling them is CI's kernels step.
    std::env::set_var("GLMHAL_PTXAS", "none");
    let target = Target::Cuda { sm: 80 };
    let results = match compile_all(
        &target,
        None,
        HipCompiler::Auto,
        &glmhal_conformance::testing::test_options().gpu,
    ) {
        Ok(r) => r,
        Err(e) => {
            assert!(
                std::env::var("GLMHAL_NVRTC").is_err(),
                "GLMHAL_NVRTC is set but: {e}"
            );
            eprintln!("not run: {e}");
            return;
        }
    };
    let compiled: BTreeSet<String> = results
        .iter()
        .flat_map(|r| r.kernels.iter().map(|k| k.name.clone()))
        .collect();
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    let mut planned = 0;
    for case in glmhal_conformance::Filter::default().select() {
        let (ins, outs) = case.descs();
        // Weights prepare_weight stores packed run through their own entry points.
        let packed = ins
            .iter()
            .enumerate()
            .filter(|(i, d)| reads_packed(&case.op, *i) && packs(d))
            .fold(0u8, |m, (i, _)| m | 1 << i);
        for context in [32, 64]
            .into_iter()
            .flat_map(|warp| [Context::warp(warp), Context { warp, packed }])
        {
            let launches = plan_if_supported(&case.op, &ins, &outs, context).unwrap();
            for launch in launches.unwrap_or_default() {
                assert!(
                    compiled.contains(&launch.entry),
                    "{}: {} is not in {}",
                    case.id,
                    launch.entry,
                    launch.file
                );
                assert!(
                    launch.grid.iter().all(|g| *g >= 1),
                    "{}: {launch:?}",
                    case.id
                );
                planned += 1;
            }
        }
    }
    assert!(planned > 1000, "only {planned} launches planned");
}
