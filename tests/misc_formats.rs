//! Conformance of the formats NINJA 2.0 could apply besides RUP, IPS and
//! PPF, against real files from other tools (see tests/fixtures/README.md).

mod common;

use common::PAIRS;

use std::path::PathBuf;

use ninja_fs::patch::{ApplyOptions, Limits, PatchError, aps, fc, ffp, gdiff, pat};

fn fixture(relative: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn rompatcherjs_aps_fixtures_apply_exactly() {
    for (stem, source_path, target_path) in PAIRS {
        let patch_bytes = fixture(&format!("patches/{stem}.rompatcherjs.aps"));
        let source = fixture(source_path);
        let target = fixture(target_path);
        assert!(aps::matches(&patch_bytes), "{stem}");
        let patch = aps::parse(&patch_bytes, &Limits::default()).unwrap();
        let aps::ApsPatch::N64(n64) = &patch else {
            panic!("{stem}: read as APS GBA");
        };
        assert_eq!(n64.description_text(), "no description", "{stem}");
        assert_eq!(
            n64.cartridge, None,
            "{stem}: RomPatcher.js writes type 0 for non-N64 ROMs"
        );
        assert_eq!(
            patch.summary().target_size,
            Some(target.len() as u64),
            "{stem}"
        );
        assert_eq!(patch.output_size(source.len() as u64), target.len() as u64);
        let output = patch.apply(&source, &ApplyOptions::default()).unwrap();
        assert!(
            output == target,
            "{stem}: APS output differs from the target"
        );
    }
}

#[test]
fn aps_create_equals_rompatcherjs_output() {
    for (stem, source_path, target_path) in PAIRS {
        let ours = aps::create(&fixture(source_path), &fixture(target_path)).unwrap();
        let theirs = fixture(&format!("patches/{stem}.rompatcherjs.aps"));
        assert!(ours == theirs, "{stem}: APS differs from RomPatcher.js's");
    }
}

#[test]
fn aps_fixture_with_smaller_limit_is_refused() {
    let patch_bytes = fixture("patches/mbc1_512k_to_1M.rompatcherjs.aps");
    let limits = Limits {
        max_image_size: 65536,
    };
    assert_eq!(
        aps::parse(&patch_bytes, &limits),
        Err(PatchError::TooLarge {
            format: "APS",
            size: 131072,
            max: 65536
        })
    );
}

#[test]
fn our_formats_round_trip_on_real_rom_pairs() {
    for (stem, source_path, target_path) in PAIRS {
        let source = fixture(source_path);
        let target = fixture(target_path);
        let opts = ApplyOptions::default();

        let n64 = aps::create(&source, &target).unwrap();
        let applied = aps::parse(&n64, &Limits::default())
            .unwrap()
            .apply(&source, &opts);
        assert!(applied.unwrap() == target, "{stem}: APS N64");

        let gba = aps::create_gba(&source, &target).unwrap();
        let applied = aps::parse(&gba, &Limits::default())
            .unwrap()
            .apply(&source, &opts);
        assert!(applied.unwrap() == target, "{stem}: APS GBA");

        let diff = gdiff::create(&source, &target).unwrap();
        let applied = gdiff::parse(&diff, &Limits::default())
            .unwrap()
            .apply(&source, &opts);
        assert!(applied.unwrap() == target, "{stem}: GDIFF");
        // Copies make a GDIFF far smaller than the target itself.
        assert!(
            diff.len() < target.len() / 2,
            "{stem}: GDIFF of {} bytes",
            diff.len()
        );
    }
}

#[test]
fn text_listings_round_trip_on_same_length_pair() {
    // The nes15 pair has the same length, as text patches need.
    let source = fixture("roms/nes/nes15-NTSC.nes");
    let target = fixture("roms/nes/nes15-PAL.nes");
    assert_eq!(source.len(), target.len());
    let opts = ApplyOptions::default();
    let listing = fc::create(&source, &target).unwrap();
    let pat_text = pat::create(&source, &target).unwrap();
    let ffp_text = ffp::create(&source, &target).unwrap();
    assert!(fc::matches(&listing) && pat::matches(&pat_text) && ffp::matches(&ffp_text));
    let patches = [
        fc::parse(&listing, &Limits::default()).unwrap(),
        pat::parse(&pat_text, &Limits::default()).unwrap(),
        ffp::parse(&ffp_text, &Limits::default()).unwrap(),
    ];
    for patch in patches {
        let applied = patch.apply(&source, &opts).unwrap();
        assert!(applied == target, "{}", patch.format());
        assert!(patch.revert(&applied, &opts).unwrap() == source);
        // Applying to the already patched file is caught.
        assert!(matches!(
            patch.apply(&target, &opts),
            Err(PatchError::ChecksumMismatch { what: "byte", .. })
        ));
    }
}

#[test]
fn listing_changes_match_the_rom_differences() {
    let source = fixture("roms/nes/nes15-NTSC.nes");
    let target = fixture("roms/nes/nes15-PAL.nes");
    let listing = fc::create(&source, &target).unwrap();
    let patch = fc::parse(&listing, &Limits::default()).unwrap();
    let differing = source.iter().zip(&target).filter(|(a, b)| a != b).count();
    assert_eq!(patch.sections.len(), 1);
    assert_eq!(patch.sections[0].changes.len(), differing);
    assert_eq!(patch.output_size(source.len() as u64), source.len() as u64);
}
