//! Speed of the system engine: detect, analyze, normalize and restore for
//! every container scheme, on 4 MiB and 64 MiB synthetic images (the SNES
//! chart schemes at their fixed sizes). Throughput is bytes of input.
//!
//! Each scheme's group has five functions:
//! - `detect`: `system::detect` with a file name, as the command line does;
//! - `analyze`: `system::analyze` with the system known;
//! - `normalize`: `system::normalize` (borrowed slice or a new image);
//! - `restore`: `system::restore` of the normalized image;
//! - `pipeline`: detect + normalize + restore, what serving one file costs.
//!
//! Run with `cargo bench --bench system`; `scripts/bench.sh` runs everything.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use ninja_fs::system::{self, ByteOrder, HeaderKind, Interleave, SystemType, convert};

const MIB: usize = 1 << 20;
const SNES_BLOCK: usize = 0x8000;

/// Deterministic pseudo-random bytes (xorshift64*), fast enough that making
/// a 64 MiB image costs little next to the benchmarks.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
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

/// Writes a SNES internal header at `base` whose checksum pair adds up, with
/// map byte `map`, and spoils the pair at each of `spoiled`.
fn snes_header(data: &mut [u8], base: usize, map: u8, spoiled: &[usize]) {
    for &other in spoiled {
        if other + 0x20 <= data.len() {
            // inverse 0 + checksum 0: the pair does not add up to 0xFFFF.
            data[other + 0x1C..other + 0x20].fill(0);
        }
    }
    let checksum = u16::from_le_bytes([data[base + 0x1E], data[base + 0x1F]]);
    data[base + 0x1C..base + 0x1E].copy_from_slice(&(!checksum).to_le_bytes());
    data[base + 0x15] = map;
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// One container scheme, built at one size.
struct Case {
    /// Scheme name, the benchmark group.
    scheme: &'static str,
    /// File name given to `detect` (its extension is what a user's file has).
    file_name: &'static str,
    system: SystemType,
    raw: Vec<u8>,
    /// What `analyze` must find, checked before timing.
    header: Option<HeaderKind>,
    interleave: Interleave,
    byte_order: ByteOrder,
}

/// Every scheme at `size` bytes of game data (the chart schemes ignore it).
fn cases(size: usize) -> Vec<Box<dyn Fn() -> Case>> {
    let mut out: Vec<Box<dyn Fn() -> Case>> = vec![
        Box::new(move || Case {
            scheme: "raw",
            file_name: "image.bin",
            system: SystemType::Raw,
            raw: noise(size, 1),
            header: None,
            interleave: Interleave::None,
            byte_order: ByteOrder::Big,
        }),
        Box::new(move || {
            let mut header = b"NES\x1a\x40\x00\x10\x00".to_vec();
            header.resize(16, 0);
            Case {
                scheme: "nes_ines",
                file_name: "game.nes",
                system: SystemType::Nes,
                raw: concat(&[&header, &noise(size, 2)]),
                header: Some(HeaderKind::Ines),
                interleave: Interleave::None,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || {
            let mut header = vec![0u8; 0x200];
            header[8] = 0xAA;
            header[9] = 0xBB;
            Case {
                scheme: "nes_ffe",
                file_name: "game.ffe",
                system: SystemType::Nes,
                raw: concat(&[&header, &noise(size, 3)]),
                header: Some(HeaderKind::Ffe),
                interleave: Interleave::None,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || {
            // PRG0, a board chunk, CHR0, a mirroring chunk: two ROM chunks
            // that normalize must join.
            let chunk =
                |id: &[u8], data: &[u8]| concat(&[id, &(data.len() as u32).to_le_bytes(), data]);
            let mut header = b"UNIF".to_vec();
            header.extend_from_slice(&7u32.to_le_bytes());
            header.resize(0x20, 0);
            let data = noise(size, 4);
            let (prg, chr) = data.split_at(size / 2);
            let raw = concat(&[
                &header,
                &chunk(b"MAPR", b"NES-TLROM\0"),
                &chunk(b"PRG0", prg),
                &chunk(b"NAME", b"benchmark\0"),
                &chunk(b"CHR0", chr),
                &chunk(b"MIRR", &[1]),
            ]);
            Case {
                scheme: "nes_unif",
                file_name: "game.unf",
                system: SystemType::Nes,
                raw,
                header: Some(HeaderKind::Unif),
                interleave: Interleave::None,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || {
            let mut data = noise(size, 5);
            snes_header(&mut data, 0x7FC0, 0x20, &[0xFFC0]);
            let mut header = vec![0u8; 0x200];
            header[8..11].copy_from_slice(&[0xAA, 0xBB, 0x04]);
            Case {
                scheme: "snes_lorom_copier",
                file_name: "game.smc",
                system: SystemType::Snes,
                raw: concat(&[&header, &data]),
                header: Some(HeaderKind::SnesCopier(system::Copier::SuperWildCard)),
                interleave: Interleave::None,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || {
            let mut clean = noise(size, 6);
            snes_header(&mut clean, 0xFFC0, 0x21, &[0x7FC0]);
            // The stored image's LoROM place must not hold a valid pair of
            // its own: it holds clean block 1's, which is the HiROM header.
            Case {
                scheme: "snes_hirom_generic",
                file_name: "game.sfc",
                system: SystemType::Snes,
                raw: convert::snes_interleave(&clean, Interleave::SnesGeneric),
                header: None,
                interleave: Interleave::SnesGeneric,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || {
            let mut clean = noise(size, 7);
            clean[..4].copy_from_slice(&[0x80, 0x37, 0x12, 0x40]);
            Case {
                scheme: "n64_v64",
                file_name: "game.v64",
                system: SystemType::N64,
                raw: convert::from_big_endian(&clean, ByteOrder::Swapped16),
                header: None,
                interleave: Interleave::None,
                byte_order: ByteOrder::Swapped16,
            }
        }),
        Box::new(move || {
            let mut clean = noise(size, 8);
            clean[..4].copy_from_slice(&[0x80, 0x37, 0x12, 0x40]);
            Case {
                scheme: "n64_n64",
                file_name: "game.n64",
                system: SystemType::N64,
                raw: convert::from_big_endian(&clean, ByteOrder::Little32),
                header: None,
                interleave: Interleave::None,
                byte_order: ByteOrder::Little32,
            }
        }),
        Box::new(move || {
            let mut data = noise(size, 9);
            data[0x104..0x108].copy_from_slice(&[0xCE, 0xED, 0x66, 0x66]);
            Case {
                scheme: "gb_smartcard",
                file_name: "game.gb",
                system: SystemType::Gb,
                raw: concat(&[&noise(0x200, 90), &data]),
                header: Some(HeaderKind::SmartCard),
                interleave: Interleave::None,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || {
            let mut clean = noise(size, 10);
            clean[0x100..0x104].copy_from_slice(b"SEGA");
            let mut header = vec![0u8; 0x200];
            header[8] = 0xAA;
            header[9] = 0xBB;
            Case {
                scheme: "mega_smd",
                file_name: "game.smd",
                system: SystemType::Mega,
                raw: concat(&[&header, &convert::smd_interleave(&clean)]),
                header: Some(HeaderKind::Smd),
                interleave: Interleave::Smd,
                byte_order: ByteOrder::Big,
            }
        }),
        Box::new(move || Case {
            scheme: "pce_msg",
            file_name: "game.pce",
            system: SystemType::Pce,
            raw: concat(&[&vec![0u8; 0x200], &noise(size, 11)]),
            header: Some(HeaderKind::MagicGriffin),
            interleave: Interleave::None,
            byte_order: ByteOrder::Big,
        }),
        Box::new(move || {
            let mut header = b"LYNX".to_vec();
            header.extend_from_slice(&[0, 1, 0, 0, 0, 1]);
            header.resize(0x40, 0);
            Case {
                scheme: "lynx_lnx",
                file_name: "game.lnx",
                system: SystemType::Lynx,
                raw: concat(&[&header, &noise(size, 12)]),
                header: Some(HeaderKind::Lnx),
                interleave: Interleave::None,
                byte_order: ByteOrder::Big,
            }
        }),
    ];
    if size == 4 * MIB {
        // The chart schemes exist at one size each; run them once.
        for (scheme, chart_len, interleave, header_at, map) in [
            (
                "snes_chart20",
                80 * SNES_BLOCK,
                Interleave::SnesChart20,
                0xFFC0,
                0x21,
            ),
            (
                "snes_chart24",
                96 * SNES_BLOCK,
                Interleave::SnesChart24,
                0xFFC0,
                0x21,
            ),
            (
                "snes_chart48",
                192 * SNES_BLOCK,
                Interleave::SnesChart48,
                0x40_FFC0,
                0x25,
            ),
        ] {
            out.push(Box::new(move || {
                let mut clean = noise(chart_len, 13);
                snes_header(&mut clean, header_at, map, &[0x7FC0, 0xFFC0, 0x40_7FC0]);
                Case {
                    scheme,
                    file_name: "game.sfc",
                    system: SystemType::Snes,
                    raw: convert::snes_interleave(&clean, interleave),
                    header: None,
                    interleave,
                    byte_order: ByteOrder::Big,
                }
            }));
        }
    }
    out
}

/// "4MiB", "64MiB", "2.5MiB": the size rounded to half a MiB (a header of
/// a few bytes does not change the label).
fn size_label(len: usize) -> String {
    let mib = (len as f64 / MIB as f64 * 2.0).round() / 2.0;
    format!("{mib}MiB")
}

/// Few samples and short times: the run must fit in a few minutes, and the
/// slow (64 MiB) calls get ten single runs each (flat sampling) rather than
/// the 55 that linear sampling needs at the least.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, len: usize) {
    group.throughput(Throughput::Bytes(len as u64));
    if len > 16 * MIB {
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
    } else {
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(200));
        group.measurement_time(Duration::from_millis(600));
    }
}

/// What any scheme that must build a new image costs at the least: a fresh
/// allocation filled by one copy (`to_vec`), and the copy alone into a
/// buffer allocated once (memory bandwidth, no page faults).
fn reference(c: &mut Criterion, size: usize) {
    let raw = noise(size, 99);
    let mut group = c.benchmark_group("reference");
    configure(&mut group, size);
    let label = size_label(size);
    group.bench_with_input(BenchmarkId::new("to_vec", &label), &raw, |b, raw| {
        b.iter(|| black_box(raw).to_vec())
    });
    let mut reused = vec![0u8; size];
    group.bench_with_input(BenchmarkId::new("copy_reused", &label), &raw, |b, raw| {
        b.iter(|| {
            reused.copy_from_slice(black_box(raw));
            black_box(&reused);
        })
    });
    group.finish();
}

fn bench_size(c: &mut Criterion, size: usize) {
    reference(c, size);
    for make in cases(size) {
        let case = make();
        let raw = case.raw.as_slice();

        // The image must be read as the scheme it was built for, or the
        // figures would measure something else.
        let layout = system::analyze(raw, case.system).unwrap();
        assert_eq!(layout.header, case.header, "{}", case.scheme);
        assert_eq!(layout.interleave, case.interleave, "{}", case.scheme);
        assert_eq!(layout.byte_order, case.byte_order, "{}", case.scheme);
        let detected = system::detect(Some(case.file_name), raw);
        assert_eq!(detected, layout, "{}: detect", case.scheme);
        let normalized = system::normalize(raw, &layout).unwrap().into_owned();

        let mut group = c.benchmark_group(case.scheme);
        configure(&mut group, raw.len());
        let label = size_label(raw.len());
        group.bench_with_input(BenchmarkId::new("detect", &label), raw, |b, raw| {
            b.iter(|| system::detect(Some(case.file_name), black_box(raw)))
        });
        group.bench_with_input(BenchmarkId::new("analyze", &label), raw, |b, raw| {
            b.iter(|| system::analyze(black_box(raw), case.system).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("normalize", &label), raw, |b, raw| {
            b.iter(|| system::normalize(black_box(raw), &layout).unwrap().len())
        });
        group.bench_with_input(
            BenchmarkId::new("restore", &label),
            normalized.as_slice(),
            |b, normalized| {
                b.iter(|| {
                    system::restore(black_box(normalized), &layout)
                        .unwrap()
                        .len()
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("pipeline", &label), raw, |b, raw| {
            b.iter(|| {
                let layout = system::detect(Some(case.file_name), black_box(raw));
                let normalized = system::normalize(raw, &layout).unwrap();
                system::restore(&normalized, &layout).unwrap().len()
            })
        });
        group.finish();
    }
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
criterion_main!(benches);
