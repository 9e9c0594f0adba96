//! Every mutant of the catalogue, planted in the CPU backend, must be killed
//! by the small cases: a survivor is a fault the suite would let through.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_conformance::mutants::{all, hunt, select};
use glmhal_conformance::{Filter, DEFAULT_SEED};
use glmhal_cpu::CpuBackend;
use glmhal_hal::OpKind;

#[test]
fn every_mutant_is_killed_on_the_cpu() {
    let backend = CpuBackend::new(2).unwrap();
    let cases = Filter {
        skip_large: true,
        ..Filter::default()
    }
    .select();
    let mutants = all();
    let verdicts = hunt(&backend, &mutants, &cases, DEFAULT_SEED, &mut |_| {});
    let survivors: Vec<String> = verdicts
        .iter()
        .filter(|v| v.killed_by.is_none())
        .map(|v| {
            format!(
                "{} ({}): {} — {} case(s) ran",
                v.mutant, v.op, v.bug, v.cases_run
            )
        })
        .collect();
    for v in &verdicts {
        eprintln!(
            "{:<44} {}",
            v.mutant,
            v.killed_by.as_deref().unwrap_or("SURVIVED")
        );
    }
    assert!(
        survivors.is_empty(),
        "mutants survived:\n{}",
        survivors.join("\n")
    );
}

#[test]
fn the_catalogue_is_large_covers_every_op_and_is_documented() {
    let mutants = all();
    assert!(mutants.len() >= 40, "{} mutants", mutants.len());
    let docs = include_str!("../../docs/CONFORMANCE.md");
    for kind in OpKind::ALL {
        assert!(mutants.iter().any(|m| m.op == kind), "no mutant for {kind}");
    }
    for m in &mutants {
        assert!(
            docs.contains(&format!("`{}`", m.name)),
            "{} is not in docs/CONFORMANCE.md",
            m.name
        );
        let same = mutants.iter().filter(|n| n.name == m.name).count();
        assert_eq!(same, 1, "{} named twice", m.name);
    }
    assert!(select(&["no-such-mutant".into()]).is_err());
    assert_eq!(select(&["rope-theta-as-f16".into()]).unwrap().len(), 1);
}

#[test]
fn planted_router_ties_alone_catch_a_bf16_router_and_the_wrong_tie_rule() {
    let backend = CpuBackend::new(2).unwrap();
    let planted: Vec<_> = Filter {
        ops: vec![OpKind::MoeSelect],
        ..Filter::default()
    }
    .select()
    .into_iter()
    .filter(|c| c.id.contains("planted"))
    .collect();
    assert_eq!(planted.len(), 2);
    let names = [
        "moe-select-bf16-scores",
        "moe-select-last-on-ties",
        "moe-select-groups-ignored",
    ];
    let mutants = select(&names.map(String::from)).unwrap();
    for v in hunt(&backend, &mutants, &planted, DEFAULT_SEED, &mut |_| {}) {
        assert!(
            v.killed_by
                .as_deref()
                .is_some_and(|c| c.contains("planted")),
            "{} survived the planted router cases",
            v.mutant
        );
    }
}
