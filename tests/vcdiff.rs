//! Conformance tests for VCDIFF against real xdelta3 patches: the committed
//! fixtures always, and freshly made patches when `xdelta3` is on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use ninja_fs::patch::vcdiff::{self, SecondaryCompressor};
use ninja_fs::patch::{ApplyOptions, Limits, PatchError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(relative: &str) -> Vec<u8> {
    let path = fixtures().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn apply(patch: &[u8], source: &[u8]) -> Result<Vec<u8>, PatchError> {
    vcdiff::parse(patch, &Limits::default())?.apply(source, &ApplyOptions::default())
}

const PAIRS: [(&str, &str, &str); 3] = [
    (
        "nes15_ntsc2pal",
        "roms/nes/nes15-NTSC.nes",
        "roms/nes/nes15-PAL.nes",
    ),
    (
        "mbc1_512k_to_1M",
        "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb",
        "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb",
    ),
    (
        "snes_cputest_basic2full",
        "roms/snes/cputest-basic.sfc",
        "roms/snes/cputest-full.sfc",
    ),
];

#[test]
fn committed_xdelta3_patches_make_their_targets() {
    for (pair, source, target) in PAIRS {
        let source = read(source);
        let target = read(target);
        for flavour in ["xdelta3-default", "xdelta3-plain"] {
            let patch = read(&format!("patches/{pair}.{flavour}.vcdiff"));
            assert!(vcdiff::matches(&patch));
            let parsed = vcdiff::parse(&patch, &Limits::default()).unwrap();
            assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
            assert_eq!(parsed.summary().target_size, Some(target.len() as u64));
            let expected_secondary =
                (flavour == "xdelta3-default").then_some(SecondaryCompressor::Lzma);
            assert_eq!(parsed.secondary, expected_secondary, "{pair} {flavour}");
            // `-A` alone turns the application header off.
            let has_names = parsed.app_header_names().is_some();
            assert_eq!(has_names, flavour == "xdelta3-default", "{pair} {flavour}");
            let made = parsed.apply(&source, &ApplyOptions::default()).unwrap();
            assert!(made == target, "{pair} {flavour} made the wrong bytes");
        }
    }
}

#[test]
fn app_header_gives_the_file_names() {
    let patch = read("patches/nes15_ntsc2pal.xdelta3-default.vcdiff");
    let parsed = vcdiff::parse(&patch, &Limits::default()).unwrap();
    assert_eq!(
        parsed.app_header,
        Some(&b"nes15-PAL.nes//nes15-NTSC.nes/"[..])
    );
    let names = parsed.app_header_names().unwrap();
    assert_eq!(names.target_name, b"nes15-PAL.nes");
    assert_eq!(names.source_name, b"nes15-NTSC.nes");
}
