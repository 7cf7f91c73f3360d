//! Speed of the patch formats: create and apply for every format that has
//! both (IPS, IPS32, BSDIFF40, UPS, BPS delta, BPS linear, PPF, RUP, APS,
//! GDIFF) on a 4 MiB and a 64 MiB ROM with 2000 scattered edits of 1-64
//! bytes and a 256 KiB tail.
//!
//! `apply` is parse + apply of the patch bytes (what using a patch costs);
//! for RUP it is parse + `entry.apply_normalized`, which hashes the input
//! and the output with MD5 as the format demands. IPS addresses only the
//! first 16 MiB, so it is benchmarked at 4 MiB only, as is BSDIFF40 (a 64
//! MiB create takes tens of seconds).
//!
//! Before the timings, the bench prints the size of every patch it made and,
//! for BPS, the delta encoding's size against the linear one, on the
//! synthetic pairs and on the three real pairs in `tests/fixtures` (beside
//! the sizes of the patches Floating IPS made for them). Those lines start
//! with `| ` (markdown table rows); `scripts/bench.sh` collects them.
//!
//! Run with `cargo bench --bench patch`; `scripts/bench.sh` runs everything.

// The fixture table the tests use: the pairs the real patches were made from.
#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use ninja_fs::patch::{
    ApplyOptions, Limits, PatchError, aps, bps, bsdiff, gdiff, ips, ips32, ppf, rup, ups,
};

const MIB: usize = 1 << 20;
const EDITS: usize = 2000;
const TAIL: usize = 256 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A source of `size` bytes and its target: `EDITS` runs of 1-64 changed
/// bytes at random places, then `TAIL` new bytes.
fn pair(size: usize) -> (Vec<u8>, Vec<u8>) {
    let source = noise(size, 0x5EED + size as u64);
    let mut target = source.clone();
    let picks = noise(EDITS * 8, 0xED17);
    for pick in picks.chunks_exact(8) {
        let word = u64::from_le_bytes(pick.try_into().unwrap());
        let len = 1 + (word & 63) as usize;
        let at = (word >> 8) as usize % (size - len);
        for byte in &mut target[at..at + len] {
            // Never the same byte again: every edited byte really changes.
            *byte = byte.wrapping_add(1 + (word >> 56) as u8 % 255);
        }
    }
    target.extend_from_slice(&noise(TAIL, 0x7A11));
    (source, target)
}

type Create = fn(&[u8], &[u8]) -> Result<Vec<u8>, PatchError>;
type Apply = fn(&[u8], &[u8]) -> Vec<u8>;

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

fn limits() -> Limits {
    Limits::default()
}

fn rup_create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let entry = rup::CreateEntry {
        name: None,
        system_type: 0,
        source,
        target,
    };
    rup::create(&[entry], &rup::RupInfo::default())
}

/// The formats: name, create, parse + apply.
fn formats() -> Vec<(&'static str, Create, Apply)> {
    vec![
        ("ips", ips::create, |patch, source| {
            ips::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("ips32", ips32::create, |patch, source| {
            ips32::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("bdf", bsdiff::create, |patch, source| {
            bsdiff::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("ups", ups::create, |patch, source| {
            ups::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("bps_delta", bps::create, |patch, source| {
            bps::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("bps_linear", bps::create_linear, |patch, source| {
            bps::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("ppf", ppf::create, |patch, source| {
            ppf::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("rup", rup_create, |patch, source| {
            let parsed = rup::parse(patch, &limits()).unwrap();
            parsed.entries[0]
                .apply_normalized(source, &opts())
                .unwrap()
                .0
        }),
        ("aps", aps::create, |patch, source| {
            aps::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
        ("gdiff", gdiff::create, |patch, source| {
            gdiff::parse(patch, &limits())
                .unwrap()
                .apply(source, &opts())
                .unwrap()
        }),
    ]
}

fn size_label(size: usize) -> String {
    format!("{}MiB", size / MIB)
}

fn bench_size(c: &mut Criterion, size: usize) {
    let (source, target) = pair(size);
    let label = size_label(size);
    println!();
    println!("Patch sizes, {label} source, {EDITS} edits of 1-64 bytes, +{TAIL} byte tail");
    println!();
    println!("| format | size ({label}) | bytes | one create (s) | one apply (s) |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut linear_len = 0;
    let mut delta_len = 0;
    for (name, create, apply) in formats() {
        // A 64 MiB bsdiff takes tens of seconds a create (its suffix sort
        // and search): criterion's ten runs of it would dwarf the rest.
        let slow_bdf = name == "bdf" && target.len() > 16 * MIB;
        if (name == "ips" && target.len() > ips::MAX_TARGET_SIZE) || slow_bdf {
            println!("| {name} | {label} | - | - | - |");
            continue;
        }
        let started = Instant::now();
        let patch = create(&source, &target).unwrap();
        let create_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let output = apply(&patch, &source);
        let apply_secs = started.elapsed().as_secs_f64();
        assert!(
            output == target,
            "{name}: the patch does not make the target"
        );
        println!(
            "| {name} | {label} | {} | {create_secs:.3} | {apply_secs:.3} |",
            patch.len()
        );
        match name {
            "bps_delta" => delta_len = patch.len(),
            "bps_linear" => linear_len = patch.len(),
            _ => {}
        }

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(target.len() as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
        // Slow calls (64 MiB creates) get ten single runs, not the 55 that
        // criterion's linear sampling needs at the least.
        if create_secs > 0.05 || apply_secs > 0.05 {
            group.sampling_mode(SamplingMode::Flat);
        }
        group.bench_with_input(BenchmarkId::new("create", &label), &target, |b, target| {
            b.iter(|| create(black_box(&source), black_box(target)).unwrap().len())
        });
        group.bench_with_input(BenchmarkId::new("apply", &label), &patch, |b, patch| {
            b.iter(|| apply(black_box(patch), black_box(&source)).len())
        });
        group.finish();
    }
    println!();
    println!(
        "BPS at {label}: delta {delta_len} bytes, linear {linear_len} bytes, delta/linear {:.3}",
        delta_len as f64 / linear_len as f64
    );
    println!();
}

/// BPS delta against linear on the three real pairs, beside Floating IPS's
/// patches for the same pairs.
fn fixture_sizes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    println!();
    println!("BPS on the real pairs in tests/fixtures (bytes)");
    println!();
    println!(
        "| pair | source | target | ours delta | ours linear | delta/linear | flips delta | flips linear |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (pair, source, target) in common::PAIRS {
        let source = std::fs::read(root.join(source)).unwrap();
        let target = std::fs::read(root.join(target)).unwrap();
        let delta = bps::create(&source, &target).unwrap();
        let linear = bps::create_linear(&source, &target).unwrap();
        for patch in [&delta, &linear] {
            let made = bps::parse(patch, &limits())
                .unwrap()
                .apply(&source, &opts())
                .unwrap();
            assert!(made == target, "{pair}: our BPS does not make the target");
        }
        let flips = |kind: &str| {
            std::fs::metadata(root.join(format!("patches/{pair}.flips-{kind}.bps")))
                .map(|m| m.len().to_string())
                .unwrap_or_else(|_| "-".into())
        };
        println!(
            "| {pair} | {} | {} | {} | {} | {:.3} | {} | {} |",
            source.len(),
            target.len(),
            delta.len(),
            linear.len(),
            delta.len() as f64 / linear.len() as f64,
            flips("delta"),
            flips("linear"),
        );
    }
    println!();
}

/// BPS delta against linear where the delta encoder earns its keep: bytes
/// inserted and removed, which shift everything after them.
fn shifted_sizes() {
    let size = 4 * MIB;
    let source = noise(size, 0x5141);
    let picks = noise(40 * 8, 0x5142);
    let mut cuts: Vec<(usize, usize, bool)> = picks
        .chunks_exact(8)
        .enumerate()
        .map(|(i, pick)| {
            let word = u64::from_le_bytes(pick.try_into().unwrap());
            let len = 1 + (word & 63) as usize;
            ((word >> 8) as usize % (size - 64), len, i % 2 == 0)
        })
        .collect();
    cuts.sort();
    let mut target = Vec::with_capacity(size + 64 * 40);
    let mut at = 0;
    for (i, &(offset, len, insert)) in cuts.iter().enumerate() {
        if offset < at {
            continue;
        }
        target.extend_from_slice(&source[at..offset]);
        if insert {
            target.extend_from_slice(&noise(len, i as u64 + 1));
            at = offset;
        } else {
            at = offset + len;
        }
    }
    target.extend_from_slice(&source[at..]);
    let started = Instant::now();
    let delta = bps::create(&source, &target).unwrap();
    let delta_secs = started.elapsed().as_secs_f64();
    let linear = bps::create_linear(&source, &target).unwrap();
    let made = bps::parse(&delta, &limits())
        .unwrap()
        .apply(&source, &opts())
        .unwrap();
    assert!(
        made == target,
        "shifted pair: our BPS does not make the target"
    );
    println!();
    println!(
        "BPS with shifts (4MiB source, 20 insertions and 20 deletions of 1-64 bytes): delta {} bytes ({delta_secs:.3} s to create), linear {} bytes, delta/linear {:.4}",
        delta.len(),
        linear.len(),
        delta.len() as f64 / linear.len() as f64
    );
    println!();
}

fn small(c: &mut Criterion) {
    bench_size(c, 4 * MIB);
}

fn large(c: &mut Criterion) {
    bench_size(c, 64 * MIB);
}

criterion_group! {
    name = benches;
    // Plots cost more time than the measurements; the numbers are in
    // target/criterion/*/new/estimates.json and in the output.
    config = Criterion::default().without_plots();
    targets = small, large
}

fn main() {
    fixture_sizes();
    shifted_sizes();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
