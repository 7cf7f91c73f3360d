//! Conformance of the PPF and NINJA 2.0 (.rup) layers against real patches
//! made by other tools and by the original NINJA 2.0 program.

use std::path::PathBuf;

use ninja_fs::patch::{ApplyOptions, Checksum, Limits, PatchError, ppf, rup};

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

// ---- NINJA 2.0 (.rup) ----

fn vector(name: &str) -> Vec<u8> {
    fixture(&format!("rup-vectors/{name}"))
}

fn vector_names() -> Vec<String> {
    let directory: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "rup-vectors",
    ]
    .iter()
    .collect();
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .expect("rup-vectors directory")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The file named `stem.role` or `stem.role.<extension>`.
fn vector_with_role(names: &[String], stem: &str, role: &str) -> Option<Vec<u8>> {
    let exact = format!("{stem}.{role}");
    let prefixed = format!("{stem}.{role}.");
    names
        .iter()
        .find(|name| **name == exact || name.starts_with(&prefixed))
        .map(|name| vector(name))
}

fn strip_ines_header(image: &[u8]) -> Vec<u8> {
    assert!(image.starts_with(b"NES\x1a"), "iNES image expected");
    image[16..].to_vec()
}

fn only_entry<'a>(patch: &'a rup::RupPatch<'a>) -> &'a rup::RupEntry<'a> {
    assert_eq!(patch.entries.len(), 1);
    &patch.entries[0]
}

#[test]
fn ninja_vectors_are_recreated_byte_for_byte_and_apply_both_ways() {
    let names = vector_names();
    let mut checked = Vec::new();
    for rup_name in names.iter().filter(|name| name.ends_with(".rup")) {
        let stem = rup_name.trim_end_matches(".rup");
        let (Some(source), Some(target)) = (
            vector_with_role(&names, stem, "src"),
            vector_with_role(&names, stem, "tgt"),
        ) else {
            continue;
        };
        let patch_bytes = vector(rup_name);
        let patch = rup::parse(&patch_bytes, &Limits::default()).expect(rup_name);
        let entry = only_entry(&patch);
        assert_eq!(entry.name, None, "{rup_name}");
        assert_eq!(patch.info, rup::RupInfo::default(), "{rup_name}");

        // The NES vectors keep their iNES header; NINJA's NES normalization
        // drops it (the system layer's job; a stand-in here).
        let (source, target) = if entry.system_type == 1 {
            (strip_ines_header(&source), strip_ines_header(&target))
        } else {
            (source, target)
        };

        let created = rup::create(
            &[rup::CreateEntry {
                name: None,
                system_type: entry.system_type,
                source: &source,
                target: &target,
            }],
            &rup::RupInfo::default(),
        )
        .unwrap();
        assert!(created == patch_bytes, "{rup_name}: created bytes differ");

        let (forward, direction) = entry.apply_normalized(&source, &options()).unwrap();
        assert!(forward == target, "{rup_name}: forward");
        assert_eq!(direction, rup::Direction::Forward);
        let (back, direction) = entry.apply_normalized(&target, &options()).unwrap();
        assert!(back == source, "{rup_name}: reverse");
        assert_eq!(direction, rup::Direction::Reverse);
        checked.push(stem.to_string());
    }
    assert_eq!(
        checked,
        [
            "gb",
            "lynx",
            "n64",
            "nes_ines_grow",
            "nes_ines_shrink",
            "nes_unif",
            "pce",
            "raw_grow_5to10",
            "raw_grow_offset0",
            "snes_lorom"
        ]
    );
}

#[test]
fn ninja_vectors_carry_their_system_types() {
    let expected = [
        ("raw_grow_5to10.rup", 0),
        ("nes_ines_grow.rup", 1),
        ("nes_unif.rup", 1),
        ("snes_lorom.rup", 3),
        ("snes_hirom20.rup", 3),
        ("n64.rup", 4),
        ("gb.rup", 5),
        ("mega_smd.rup", 7),
        ("pce.rup", 8),
        ("lynx.rup", 9),
    ];
    for (name, system_type) in expected {
        let bytes = vector(name);
        let patch = rup::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(only_entry(&patch).system_type, system_type, "{name}");
    }
}

#[test]
fn snes_hirom20_digests_match_its_md5_file() {
    let bytes = vector("snes_hirom20.rup");
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    let summary = patch.summary();
    let listing = String::from_utf8(vector("snes_hirom20.md5")).unwrap();
    let digests: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        summary.source_checksum.map(|checksum| checksum.to_string()),
        Some(format!("MD5 {}", digests[0]))
    );
    assert_eq!(
        summary.target_checksum.map(|checksum| checksum.to_string()),
        Some(format!("MD5 {}", digests[1]))
    );
    assert_eq!(summary.source_size, Some(20 * 131072));
}

fn in16() -> Vec<u8> {
    let input = vector("in16.bin");
    assert_eq!(input, (0u8..16).collect::<Vec<u8>>());
    input
}

fn forced() -> ApplyOptions {
    ApplyOptions {
        ignore_checksums: true,
        ..ApplyOptions::default()
    }
}

#[test]
fn overlapping_records_apply_in_order_both_ways() {
    let bytes = vector("overlap.rup");
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    let entry = only_entry(&patch);
    assert_eq!(entry.records.len(), 2);
    let (output, direction) = entry.apply_normalized(&in16(), &options()).unwrap();
    let mut expected = in16();
    expected[2..5].copy_from_slice(&[0x0D, 0xFC, 0xF4]);
    assert_eq!(output, expected);
    assert_eq!(direction, rup::Direction::Forward);
    let (back, direction) = entry.apply_normalized(&output, &options()).unwrap();
    assert_eq!(back, in16());
    assert_eq!(direction, rup::Direction::Reverse);
}

/// A shrinking entry without an `M` block truncates forward, but cannot
/// restore the cut bytes backward: the source MD5 check refuses.
fn assert_shrink_without_minus_block(name: &str) {
    let bytes = vector(name);
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    let entry = only_entry(&patch);
    assert_eq!((entry.source_size, entry.target_size), (16, 12), "{name}");
    let (output, _) = entry.apply_normalized(&in16(), &options()).unwrap();
    assert_eq!(output, in16()[..12], "{name}");

    match entry.apply_normalized(&output, &options()) {
        Err(PatchError::ChecksumMismatch { what, expected, .. }) => {
            assert_eq!(what, "patched file MD5", "{name}");
            assert_eq!(expected, "MD5 1ac1ef01e96caf1be0d329331a4fc2a8", "{name}");
        }
        other => panic!("{name}: unexpected {other:?}"),
    }
    let (zero_filled, direction) = entry.apply_normalized(&output, &forced()).unwrap();
    let mut expected = in16()[..12].to_vec();
    expected.resize(16, 0);
    assert_eq!(zero_filled, expected, "{name}");
    assert_eq!(direction, rup::Direction::Reverse, "{name}");
}

#[test]
fn missing_overflow_block_is_tolerated() {
    let bytes = vector("noblock.rup");
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    assert_eq!(only_entry(&patch).overflow, None);
    assert_shrink_without_minus_block("noblock.rup");
}

#[test]
fn append_letter_on_a_shrinking_entry_only_truncates() {
    let bytes = vector("wrongletter.rup");
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    let overflow = only_entry(&patch).overflow.unwrap();
    assert_eq!(overflow.kind, rup::OverflowKind::Append);
    assert_eq!(overflow.data, [0xF3, 0xF2, 0xF1, 0xF0]);
    assert_shrink_without_minus_block("wrongletter.rup");
}

#[test]
fn growing_entries_old_web_patcher_style_and_proper() {
    let mut grown = in16();
    grown.extend_from_slice(&[1, 2]);
    for name in ["oldrpjs_grow.rup", "good_grow.rup"] {
        let bytes = vector(name);
        let patch = rup::parse(&bytes, &Limits::default()).unwrap();
        let entry = only_entry(&patch);
        assert_eq!((entry.source_size, entry.target_size), (16, 18), "{name}");
        let (output, direction) = entry.apply_normalized(&in16(), &options()).unwrap();
        assert_eq!(output, grown, "{name}");
        assert_eq!(direction, rup::Direction::Forward, "{name}");
        let (back, direction) = entry.apply_normalized(&grown, &options()).unwrap();
        assert_eq!(back, in16(), "{name}");
        assert_eq!(direction, rup::Direction::Reverse, "{name}");
    }
    let old_style = vector("oldrpjs_grow.rup");
    let patch = rup::parse(&old_style, &Limits::default()).unwrap();
    let entry = only_entry(&patch);
    assert_eq!(entry.overflow.unwrap().data, [0u8; 0]);
    assert_eq!(entry.records[0].offset, 16);
}

#[test]
fn rompatcherjs_offset_zero_gives_the_same_target() {
    let source = vector("raw_grow_offset0.src");
    let target = vector("raw_grow_offset0.tgt");
    for name in ["raw_grow_offset0.rup", "raw_grow_offset0.rpjs.rup"] {
        let bytes = vector(name);
        let patch = rup::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(patch.apply(&source, &options()).unwrap(), target, "{name}");
        assert_eq!(patch.apply(&target, &options()).unwrap(), source, "{name}");
    }
}

#[test]
fn multifile_entries_apply_to_their_named_files() {
    let bytes = vector("multifile_dir.rup");
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    let names: Vec<Option<&str>> = patch
        .entries
        .iter()
        .map(|entry| entry.name.as_deref())
        .collect();
    assert_eq!(names, [Some("a.bin"), Some("b.bin")]);
    assert_eq!(patch.summary(), Default::default());

    let mut sources = Vec::new();
    for entry in &patch.entries {
        let name = entry.name.as_deref().unwrap();
        assert_eq!(entry.system_type, 0);
        let source = vector(&format!("multifile_A/{name}"));
        let target = vector(&format!("multifile_B/{name}"));
        let (output, direction) = entry.apply_normalized(&source, &options()).unwrap();
        assert_eq!(output, target, "{name}");
        assert_eq!(direction, rup::Direction::Forward);
        sources.push((name, source, target));
    }
    // sub/c.bin changed too, but the original program wrote no entry for
    // it (it did not descend into subfolders).
    assert_ne!(
        vector("multifile_A/sub/c.bin"),
        vector("multifile_B/sub/c.bin")
    );
    assert!(matches!(
        patch.apply(&sources[0].1, &options()),
        Err(PatchError::Unsupported { .. })
    ));

    let entries: Vec<rup::CreateEntry<'_>> = sources
        .iter()
        .map(|(name, source, target)| rup::CreateEntry {
            name: Some(name),
            system_type: 0,
            source,
            target,
        })
        .collect();
    let created = rup::create(&entries, &rup::RupInfo::default()).unwrap();
    assert_eq!(created, bytes);
}

#[test]
fn rompatcherjs_rups_apply_to_their_targets() {
    let names = patches_with_extension(".rup");
    assert_eq!(names.len(), 3);
    for name in names {
        let patch_bytes = fixture(&format!("patches/{name}"));
        assert!(rup::matches(&patch_bytes), "{name}");
        let patch = rup::parse(&patch_bytes, &Limits::default()).expect(&name);
        let entry = only_entry(&patch);
        assert_eq!(entry.system_type, 0, "{name}");
        let prefix = name.split('.').next().unwrap();
        let (source, target) = pair(prefix);
        let summary = patch.summary();
        assert_eq!(summary.source_size, Some(source.len() as u64), "{name}");
        assert_eq!(summary.target_size, Some(target.len() as u64), "{name}");
        assert!(matches!(summary.source_checksum, Some(Checksum::Md5(_))));
        let output = patch.apply(&source, &options()).expect(&name);
        assert!(output == target, "{name}: forward");
        let back = patch.apply(&target, &options()).expect(&name);
        assert!(back == source, "{name}: reverse");
    }
}

#[test]
fn rup_output_is_bounded_by_the_limit() {
    let bytes = fixture("patches/mbc1_512k_to_1M.rompatcherjs.rup");
    let tight = Limits {
        max_image_size: 100_000,
    };
    assert!(matches!(
        rup::parse(&bytes, &tight),
        Err(PatchError::TooLarge { size: 131072, .. })
    ));
}
