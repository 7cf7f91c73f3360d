//! Conformance of the PPF and NINJA 2.0 (.rup) layers against real patches
//! made by other tools and by the original NINJA 2.0 program.

use std::path::PathBuf;

use ninja_fs::patch::{ApplyOptions, Limits, PatchError, ppf};

fn fixture(relative: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", relative]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn options() -> ApplyOptions {
    ApplyOptions::default()
}

/// The ROM pairs the patches in tests/fixtures/patches/ were made from.
fn pair(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let (source, target) = match prefix {
        "nes15_ntsc2pal" => ("roms/nes/nes15-NTSC.nes", "roms/nes/nes15-PAL.nes"),
        "mbc1_512k_to_1M" => (
            "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb",
            "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb",
        ),
        "snes_cputest_basic2full" => ("roms/snes/cputest-basic.sfc", "roms/snes/cputest-full.sfc"),
        other => panic!("no pair for {other}"),
    };
    (fixture(source), fixture(target))
}

fn patches_with_extension(extension: &str) -> Vec<String> {
    let directory: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "patches"]
        .iter()
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .expect("patches directory")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(extension))
        .collect();
    names.sort();
    names
}

#[test]
fn every_ppf_fixture_applies_to_its_target() {
    let names = patches_with_extension(".ppf");
    assert_eq!(names.len(), 4);
    for name in names {
        let patch_bytes = fixture(&format!("patches/{name}"));
        assert!(ppf::matches(&patch_bytes), "{name}");
        let patch = ppf::parse(&patch_bytes, &Limits::default()).expect(&name);
        let prefix = name.split('.').next().unwrap();
        let (source, target) = pair(prefix);
        assert_eq!(
            patch.output_size(source.len() as u64),
            target.len() as u64,
            "{name}"
        );
        let output = patch.apply(&source, &options()).expect(&name);
        assert!(output == target, "{name} does not give its target");
    }
}

#[test]
fn ucon64_ppf2_carries_the_source_size() {
    let patch_bytes = fixture("patches/nes15_ntsc2pal.ucon64.ppf");
    let patch = ppf::parse(&patch_bytes, &Limits::default()).unwrap();
    assert_eq!(patch.version, ppf::PpfVersion::V2);
    let summary = patch.summary();
    assert_eq!(summary.source_size, Some(28688));
    assert_eq!(summary.target_size, Some(28688));
    // The image is shorter than the checked block: the tool stored zeros.
    assert!(patch.block_check.is_some());
    let (_, target) = pair("nes15_ntsc2pal");
    let mut wrong_size = target.clone();
    wrong_size.push(0);
    assert!(matches!(
        patch.apply(&wrong_size, &options()),
        Err(PatchError::ChecksumMismatch {
            what: "file size",
            ..
        })
    ));
}

#[test]
fn rompatcherjs_ppf3_grows_the_mbc1_image() {
    let patch_bytes = fixture("patches/mbc1_512k_to_1M.rompatcherjs.ppf");
    let patch = ppf::parse(&patch_bytes, &Limits::default()).unwrap();
    assert_eq!(patch.version, ppf::PpfVersion::V3);
    assert!(!patch.has_undo);
    assert_eq!(patch.output_size(65536), 131072);
    assert_eq!(patch.description_text(), "Patch description");
    let tight = ApplyOptions {
        limits: Limits {
            max_image_size: 100_000,
        },
        ignore_checksums: false,
    };
    let (source, _) = pair("mbc1_512k_to_1M");
    assert!(matches!(
        patch.apply(&source, &tight),
        Err(PatchError::TooLarge { size: 131072, .. })
    ));
}

#[test]
fn ppf3_created_here_applies_to_the_real_pairs() {
    for prefix in [
        "nes15_ntsc2pal",
        "mbc1_512k_to_1M",
        "snes_cputest_basic2full",
    ] {
        let (source, target) = pair(prefix);
        let patch_bytes = ppf::create(&source, &target).unwrap();
        let patch = ppf::parse(&patch_bytes, &Limits::default()).unwrap();
        assert!(
            patch.apply(&source, &options()).unwrap() == target,
            "{prefix}"
        );
    }
}
