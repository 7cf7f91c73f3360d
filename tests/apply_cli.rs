//! `ninja-fs apply` as a user meets it: every real patch on its ROM pair
//! and on the other containers of the source, NINJA 2.0's vectors in their
//! own layouts and in reverse, stacks, refusals with their exact messages.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{PAIRS, fixture, ninja, read_fixture, stderr_of};
use ninja_fs::patch::any::{Patch, PatchFormat};
use ninja_fs::patch::{ApplyOptions, Limits, rup};
use ninja_fs::system::{self, SystemType};

/// Runs `ninja-fs ARGS -o -` and returns what it wrote to stdout.
fn apply_to_stdout(rom: &Path, patches: &[PathBuf], extra: &[&str]) -> Vec<u8> {
    let out = ninja()
        .arg("apply")
        .arg(rom)
        .args(patches)
        .args(extra)
        .args(["-o", "-"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "{}: {}",
        rom.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every IPS, UPS, BPS, PPF, APS and RUP of `pair` (vcdiff is tested elsewhere).
fn patches_of(pair: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixture("patches"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("{pair}."))
                && p.extension().unwrap() != "vcdiff"
        })
        .collect();
    out.sort();
    out
}

#[test]
fn rompatcherjs_patches_apply_to_copier_headered_snes() {
    // RomPatcher.js's RUP is type 0 (no normalization) and hashes the
    // headerless image; its APS is N64 type 0 (no check at all). Both must
    // apply to the image without the copier header.
    let target = read_fixture("roms/snes/cputest-full.sfc");
    for patch in [
        "patches/snes_cputest_basic2full.rompatcherjs.rup",
        "patches/snes_cputest_basic2full.rompatcherjs.aps",
    ] {
        let out = apply_to_stdout(
            &fixture("roms/snes/cputest-basic.smc"),
            &[fixture(patch)],
            &[],
        );
        assert!(out == target, "{patch}");
    }
    // And back: the RUP applied to the headered target gives the source.
    let dir = tempfile::tempdir().unwrap();
    let headered_target = dir.path().join("full.smc");
    let mut bytes = read_fixture("roms/snes/cputest-basic.smc")[..512].to_vec();
    bytes.extend_from_slice(&target);
    std::fs::write(&headered_target, &bytes).unwrap();
    let out = apply_to_stdout(
        &headered_target,
        &[fixture("patches/snes_cputest_basic2full.rompatcherjs.rup")],
        &[],
    );
    assert!(out == read_fixture("roms/snes/cputest-basic.sfc"));
}

#[test]
fn every_patch_applies_to_exactly_its_target() {
    let mut count = 0;
    for (pair, source, target) in PAIRS {
        let target = read_fixture(target);
        for patch in patches_of(pair) {
            let out = apply_to_stdout(&fixture(source), std::slice::from_ref(&patch), &[]);
            assert_eq!(out.len(), target.len(), "{}", patch.display());
            assert!(out == target, "{}", patch.display());
            count += 1;
        }
    }
    // 9 mbc1, 12 nes15, 9 snes: all of them, vcdiff aside.
    assert_eq!(count, 30);
}

#[test]
fn every_snes_patch_applies_to_every_container_of_the_source() {
    // Copier headers are dropped: the deinterleaved target is headerless.
    let target = read_fixture("roms/snes/cputest-full.sfc");
    let patches = patches_of("snes_cputest_basic2full");
    assert_eq!(patches.len(), 9);
    for container in ["smc", "swc", "fig", "ufo", "gd3_sf2cpu"] {
        let rom = fixture(&format!("roms/snes/cputest-basic.{container}"));
        assert_eq!(std::fs::metadata(&rom).unwrap().len(), 262_656);
        for patch in &patches {
            let out = apply_to_stdout(&rom, std::slice::from_ref(patch), &[]);
            assert!(out == target, "{container}: {}", patch.display());
        }
    }
}

#[test]
fn patches_with_checksums_refuse_other_nes_containers() {
    // nes15's patches were made on the iNES file: the UNIF and FFE images
    // are other bytes, and every patch that can tell refuses them. (The
    // FFE dump's deinterleaved image is that iNES file, so there the patch
    // applies, tests/ffe_ines.rs; NINJA's write-back keeps the FFE form.)
    let bps = fixture("patches/nes15_ntsc2pal.flips-delta.bps");
    let cases = [
        ("roms/nes/nes15-NTSC.unf", "e983c76d", "0b0c4573", None),
        (
            "roms/nes/nes15-NTSC.ffe",
            "c97d4234",
            "35485ad2",
            Some("--keep-header"),
        ),
    ];
    for (rom, raw, normalized, flag) in cases {
        let err = stderr_of(
            ninja()
                .arg("apply")
                .arg(fixture(rom))
                .arg(&bps)
                .args(flag)
                .args(["-o", "-"]),
        );
        // UNIF keeps its chunks and, with --keep-header, the FFE dump its
        // header: the deinterleaved image is the file itself.
        assert_eq!(
            err,
            format!(
                "ninja-fs: {} does not match {}: the patch expects a source with CRC32 7399d1f1; \
                 this file's raw and deinterleaved images have CRC32 {raw}, its normalized image \
                 has CRC32 {normalized}\n",
                fixture(rom).display(),
                bps.display()
            )
        );
    }
}

// ---- NINJA 2.0's vectors through the command line ----

fn vector(name: &str) -> PathBuf {
    fixture(&format!("rup-vectors/{name}"))
}

fn read_vector(name: &str) -> Vec<u8> {
    read_fixture(&format!("rup-vectors/{name}"))
}

/// `bytes` read as `system`: its normalized and deinterleaved images.
fn layouts(bytes: &[u8], system: SystemType) -> (system::Layout, Vec<u8>, Vec<u8>) {
    let layout = system::analyze(bytes, system).unwrap();
    let normalized = system::normalize(bytes, &layout).unwrap().into_owned();
    let deinterleaved = system::restore(&normalized, &layout).unwrap().into_owned();
    (layout, normalized, deinterleaved)
}

/// [`layouts`] with NINJA 2.0's write-back as the deinterleaved image (an
/// FFE dump keeps its FFE header), as `apply --keep-header` writes.
fn ninja_layouts(bytes: &[u8], system: SystemType) -> (system::Layout, Vec<u8>, Vec<u8>) {
    let layout = system::analyze(bytes, system).unwrap().ninja_write_back();
    let normalized = system::normalize(bytes, &layout).unwrap().into_owned();
    let deinterleaved = system::restore(&normalized, &layout).unwrap().into_owned();
    (layout, normalized, deinterleaved)
}

/// The single entry of a .rup vector.
fn rup_entry_digests(name: &str) -> ([u8; 16], [u8; 16], u64) {
    let bytes = read_vector(name);
    let patch = rup::parse(&bytes, &Limits::default()).unwrap();
    let entry = &patch.entries[0];
    (entry.source_md5, entry.target_md5, entry.target_size)
}

#[test]
fn ninja_vectors_apply_to_every_container_in_its_own_layout_and_back() {
    // (input, patch stem, system, target file)
    let cases: [(&str, &str, SystemType, Option<&str>); 10] = [
        (
            "gb.input_headered.gb",
            "gb",
            SystemType::Gb,
            Some("gb.tgt.gb"),
        ),
        (
            "lynx.input_headered.lnx",
            "lynx",
            SystemType::Lynx,
            Some("lynx.tgt.lyx"),
        ),
        ("mega_smd.input.smd", "mega_smd", SystemType::Mega, None),
        ("n64.input.v64", "n64", SystemType::N64, Some("n64.tgt.z64")),
        (
            "nes_ffe_input_for_nes_ines_shrink.nes",
            "nes_ines_shrink",
            SystemType::Nes,
            Some("nes_ines_shrink.tgt.nes"),
        ),
        (
            "nes_unif.input.unf",
            "nes_unif",
            SystemType::Nes,
            Some("nes_unif.tgt.nes"),
        ),
        (
            "pce.input_headered.pce",
            "pce",
            SystemType::Pce,
            Some("pce.tgt.pce"),
        ),
        (
            "snes_hirom20.input_interleaved.sfc",
            "snes_hirom20",
            SystemType::Snes,
            None,
        ),
        (
            "snes_lorom.input_copierhdr.smc",
            "snes_lorom",
            SystemType::Snes,
            Some("snes_lorom.tgt.sfc"),
        ),
        (
            "snes_lorom.input_nsrt.smc",
            "snes_lorom",
            SystemType::Snes,
            Some("snes_lorom.tgt.sfc"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (input_name, stem, system, target_name) in cases {
        let input = read_vector(input_name);
        let rup_name = format!("{stem}.rup");
        let patch = vector(&rup_name);
        // NINJA 2.0 wrote an FFE dump back with its FFE header and a SNES
        // dump with its NSRT header: --keep-header asks for that (without it
        // the FFE dump is the iNES file emulators play, tests/ffe_ines.rs,
        // and the NSRT header is left out). Every other container is written
        // the same either way.
        let ninja_form = matches!(
            input_name,
            "nes_ffe_input_for_nes_ines_shrink.nes" | "snes_lorom.input_nsrt.smc"
        );
        let extra: &[&str] = if ninja_form { &["--keep-header"] } else { &[] };
        let (layout, normalized, deinterleaved) = if ninja_form {
            ninja_layouts(&input, system)
        } else {
            layouts(&input, system)
        };
        let (source_md5, target_md5, target_size) = rup_entry_digests(&rup_name);
        assert_eq!(
            ninja_fs::digest::md5(&normalized),
            source_md5,
            "{input_name}"
        );

        let out = apply_to_stdout(&vector(input_name), std::slice::from_ref(&patch), extra);
        match target_name {
            Some(target_name) => {
                let (_, target, _) = layouts(&read_vector(target_name), system);
                let expected = system::restore(&target, &layout).unwrap();
                assert!(out == *expected, "{input_name}: forward");
            }
            None => {
                let (_, out_normalized, _) = layouts(&out, system);
                assert_eq!(ninja_fs::digest::md5(&out_normalized), target_md5);
                assert_eq!(
                    out.len(),
                    layout.restored_len(target_size as usize),
                    "{input_name}"
                );
            }
        }

        // The layout is the input's own, deinterleaved.
        match input_name {
            "snes_lorom.input_nsrt.smc" => {
                assert_eq!(out.len(), 131_584);
                assert_eq!(out[..512], input[..512], "the NSRT header is kept");
            }
            "snes_lorom.input_copierhdr.smc" => assert_eq!(out.len(), 131_072),
            "nes_unif.input.unf" => {
                assert!(out.starts_with(b"UNIF"));
                assert_eq!(out.len(), input.len());
            }
            "n64.input.v64" => assert_eq!(out[..4], [0x80, 0x37, 0x12, 0x40]),
            "mega_smd.input.smd" => assert_eq!(out.len(), input.len() - 512),
            "lynx.input_headered.lnx" => {
                assert_eq!(out[..64], input[..64], "the LNX header is kept")
            }
            "nes_ffe_input_for_nes_ines_shrink.nes" => {
                assert_eq!(out[..512], input[..512], "the FFE header is kept");
                assert_eq!(out.len(), 512 + 36_864);
            }
            "snes_hirom20.input_interleaved.sfc" => assert_eq!(out.len(), input.len()),
            _ => {}
        }

        // NINJA's reverse direction: the same patch on the output gives the
        // input back, deinterleaved.
        let patched = dir.path().join(input_name);
        std::fs::write(&patched, &out).unwrap();
        let back = apply_to_stdout(&patched, std::slice::from_ref(&patch), extra);
        assert!(back == deinterleaved, "{input_name}: reverse");
    }
}

#[test]
fn a_lone_rup_written_in_pieces_is_the_whole_apply() {
    // `apply` checks a lone NINJA2 patch and writes its result piece by
    // piece when the result is the ROM's own image patched, a header at
    // most put back; elsewhere the whole apply runs. Both give one image.
    use ninja_fs::apply::{self, WriteBack};
    let cases = [
        ("gb.input_headered.gb", "gb", WriteBack::Playable, true),
        ("lynx.input_headered.lnx", "lynx", WriteBack::Playable, true),
        ("pce.input_headered.pce", "pce", WriteBack::Playable, true),
        (
            "snes_lorom.input_copierhdr.smc",
            "snes_lorom",
            WriteBack::Playable,
            true,
        ),
        (
            "snes_lorom.input_nsrt.smc",
            "snes_lorom",
            WriteBack::Ninja,
            true,
        ),
        (
            "nes_ffe_input_for_nes_ines_shrink.nes",
            "nes_ines_shrink",
            WriteBack::Ninja,
            true,
        ),
        // An FFE dump played as iNES, UNIF, interleaved and byte-swapped
        // images are rebuilt, not a slice of the file: the whole apply.
        (
            "nes_ffe_input_for_nes_ines_shrink.nes",
            "nes_ines_shrink",
            WriteBack::Playable,
            false,
        ),
        ("nes_unif.input.unf", "nes_unif", WriteBack::Playable, false),
        (
            "snes_hirom20.input_interleaved.sfc",
            "snes_hirom20",
            WriteBack::Playable,
            false,
        ),
        ("n64.input.v64", "n64", WriteBack::Playable, false),
    ];
    let opts = ApplyOptions::default();
    for (input_name, stem, write_back, in_pieces) in cases {
        let input = read_vector(input_name);
        let patch_bytes = read_vector(&format!("{stem}.rup"));
        let patch = rup::parse(&patch_bytes, &Limits::default()).unwrap();
        let stack = [(format!("{stem}.rup"), Patch::Rup(patch.clone()))];
        let whole =
            apply::apply_stack_with(input_name, &input, None, &stack, &opts, write_back).unwrap();
        let checked = apply::check_rup_in_pieces(
            input_name, &input, None, "p.rup", &patch, &opts, write_back, false,
        )
        .unwrap();
        assert_eq!(checked.is_some(), in_pieces, "{input_name}");
        if let Some(checked) = checked {
            let mut written = Vec::new();
            checked.write_to(&mut written).unwrap();
            assert!(written == whole, "{input_name}: forward");
            // And back: the result is the entry's target, undone in pieces.
            let undone = apply::check_rup_in_pieces(
                input_name, &written, None, "p.rup", &patch, &opts, write_back, true,
            )
            .unwrap()
            .expect("the result undoes in pieces");
            let mut back = Vec::new();
            undone.write_to(&mut back).unwrap();
            let stack_back =
                apply::revert_stack_with(input_name, &written, None, &stack, &opts, write_back)
                    .unwrap();
            assert!(back == stack_back, "{input_name}: reverse");
        }
        // Another ROM is no match: left to the whole apply to explain.
        let mut other = input.clone();
        let last = other.len() - 1;
        other[last] ^= 0x55;
        let other_checked = apply::check_rup_in_pieces(
            input_name, &other, None, "p.rup", &patch, &opts, write_back, false,
        )
        .unwrap();
        assert!(other_checked.is_none(), "{input_name}: another ROM");
    }
}

#[test]
fn without_keep_header_an_nsrt_header_is_left_out() {
    // The image emulators play: NINJA's vector applied, headerless.
    let out = apply_to_stdout(
        &vector("snes_lorom.input_nsrt.smc"),
        &[vector("snes_lorom.rup")],
        &[],
    );
    assert!(out == read_vector("snes_lorom.tgt.sfc"));
}

// ---- stacks ----

#[test]
fn a_ups_or_rup_twice_in_a_stack_gives_the_source_back() {
    let ntsc = fixture("roms/nes/nes15-NTSC.nes");
    for patch in [
        "patches/nes15_ntsc2pal.rompatcherjs.ups",
        "patches/nes15_ntsc2pal.rompatcherjs.rup",
    ] {
        let out = apply_to_stdout(&ntsc, &[fixture(patch), fixture(patch)], &[]);
        assert!(out == read_fixture("roms/nes/nes15-NTSC.nes"), "{patch}");
    }
    // Three times is PAL again.
    let ups = fixture("patches/nes15_ntsc2pal.rompatcherjs.ups");
    let out = apply_to_stdout(&ntsc, &[ups.clone(), ups.clone(), ups], &[]);
    assert!(out == read_fixture("roms/nes/nes15-PAL.nes"));
}

#[test]
fn a_stack_applies_a_patch_made_from_the_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    // A hack of PAL: a few bytes changed, 16 appended.
    let mut hacked = read_fixture("roms/nes/nes15-PAL.nes");
    for at in [0x10, 0x2000, 0x7000] {
        hacked[at] ^= 0x5A;
    }
    hacked.extend_from_slice(&[0xEE; 16]);
    let hacked_path = dir.path().join("hacked.nes");
    std::fs::write(&hacked_path, &hacked).unwrap();
    let step2 = dir.path().join("pal2hack.bps");
    ninja()
        .arg("create")
        .arg(fixture("roms/nes/nes15-PAL.nes"))
        .arg(&hacked_path)
        .arg("-o")
        .arg(&step2)
        .assert()
        .success();
    let out = apply_to_stdout(
        &fixture("roms/nes/nes15-NTSC.nes"),
        &[fixture("patches/nes15_ntsc2pal.flips.ips"), step2],
        &[],
    );
    assert!(out == hacked);

    // The same on a copier-headered SNES: the stack works on the
    // deinterleaved (headerless) image from the first step on.
    let mut full_hacked = read_fixture("roms/snes/cputest-full.sfc");
    full_hacked[0x7FC0] = b'X';
    let full_hacked_path = dir.path().join("full-hacked.sfc");
    std::fs::write(&full_hacked_path, &full_hacked).unwrap();
    let step2 = dir.path().join("full2hack.ups");
    ninja()
        .arg("create")
        .arg(fixture("roms/snes/cputest-full.sfc"))
        .arg(&full_hacked_path)
        .arg("-o")
        .arg(&step2)
        .assert()
        .success();
    let out = apply_to_stdout(
        &fixture("roms/snes/cputest-basic.smc"),
        &[
            fixture("patches/snes_cputest_basic2full.flips.ips"),
            step2.clone(),
        ],
        &[],
    );
    assert!(out == full_hacked);
}

#[test]
fn a_stack_that_fails_at_a_later_step_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.nes");
    let bps = fixture("patches/nes15_ntsc2pal.flips-delta.bps");
    // After the first step the image is PAL, which the BPS does not fit.
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(fixture("roms/nes/nes15-NTSC.nes"))
            .arg(fixture("patches/nes15_ntsc2pal.flips.ips"))
            .arg(&bps)
            .arg("-o")
            .arg(&out),
    );
    let pal = read_fixture("roms/nes/nes15-PAL.nes");
    let pal_headerless = &pal[16..];
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} patched with {} does not match {}: the patch expects a source with \
             CRC32 7399d1f1; this file's raw and deinterleaved images have CRC32 {:08x}, its \
             normalized image has CRC32 {:08x}\n",
            fixture("roms/nes/nes15-NTSC.nes").display(),
            fixture("patches/nes15_ntsc2pal.flips.ips").display(),
            bps.display(),
            crc32fast::hash(&pal),
            crc32fast::hash(pal_headerless)
        )
    );
    assert!(!out.exists());
}

// ---- refusals ----

#[test]
fn a_checksum_mismatch_names_the_patch_the_checksum_and_the_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gb");
    let gb = fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb");
    let bps = fixture("patches/snes_cputest_basic2full.flips-delta.bps");
    let err = stderr_of(ninja().arg("apply").arg(&gb).arg(&bps).arg("-o").arg(&out));
    // The GB image has one layout: raw, normalized and deinterleaved agree.
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source with CRC32 4de40f6b; \
             this file's image (raw, normalized and deinterleaved alike) has CRC32 f3830969\n",
            gb.display(),
            bps.display()
        )
    );
    assert!(!out.exists());
    // Forced onto a ROM it cannot describe, the patch fails on its own terms.
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&gb)
            .arg(&bps)
            .arg("--ignore-checksum")
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: BPS patch cannot be used here: the patch reads 6 bytes at offset \
             101653 but the source has only 65536 bytes\n",
            bps.display()
        )
    );
    assert!(!out.exists());

    // A slightly different dump (one byte changed) of a copier-headered SNES.
    let mut smc = read_fixture("roms/snes/cputest-basic.smc");
    smc[512 + 0x1234] ^= 0x01;
    let rom = dir.path().join("bad dump.smc");
    std::fs::write(&rom, &smc).unwrap();
    let out = dir.path().join("out.sfc");
    let err = stderr_of(ninja().arg("apply").arg(&rom).arg(&bps).arg("-o").arg(&out));
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source with CRC32 4de40f6b; \
             this file's raw image has CRC32 {:08x}, its normalized and deinterleaved images \
             have CRC32 {:08x}\n",
            rom.display(),
            bps.display(),
            crc32fast::hash(&smc),
            crc32fast::hash(&smc[512..])
        )
    );
    assert!(!out.exists());
    // --ignore-checksum forces it onto the deinterleaved image.
    ninja()
        .arg("apply")
        .arg(&rom)
        .arg(&bps)
        .arg("--ignore-checksum")
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let patch_bytes = read_fixture("patches/snes_cputest_basic2full.flips-delta.bps");
    let patch = Patch::parse(PatchFormat::Bps, &patch_bytes, &Limits::default()).unwrap();
    let opts = ApplyOptions {
        ignore_checksums: true,
        ..ApplyOptions::default()
    };
    let expected = patch.apply(&smc[512..], &opts).unwrap();
    assert_eq!(expected.len(), 262_144);
    assert!(std::fs::read(&out).unwrap() == expected);
}

#[test]
fn a_rup_mismatch_lists_both_digests_and_every_layout_tried() {
    let smc = fixture("roms/snes/cputest-basic.smc");
    let rup_path = fixture("patches/nes15_ntsc2pal.rompatcherjs.rup");
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&smc)
            .arg(&rup_path)
            .args(["-o", "-"]),
    );
    let raw = read_fixture("roms/snes/cputest-basic.smc");
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source with MD5 \
             845ddbdbd5e14a97757f3f9f68a74f75 (or a target with MD5 \
             93461e21f2f69deb8c0f1cdd32b41c7d, to undo it); this file's image normalized as raw \
             has MD5 {}, its image normalized as snes has MD5 {}\n",
            smc.display(),
            rup_path.display(),
            common::md5_hex(&raw),
            common::md5_hex(&raw[512..]),
        )
    );

    // A one-byte-different dump: forced, the only entry applies forward to
    // the image normalized with its type, and XOR keeps the difference.
    let dir = tempfile::tempdir().unwrap();
    let mut sfc = read_fixture("roms/snes/cputest-basic.sfc");
    sfc[0x4321] ^= 0x80;
    let rom = dir.path().join("bad dump.sfc");
    std::fs::write(&rom, &sfc).unwrap();
    let rup_path = fixture("patches/snes_cputest_basic2full.rompatcherjs.rup");
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&rom)
            .arg(&rup_path)
            .args(["-o", "-"]),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source with MD5 \
             db3ef23da54121f9a383d52db5fc5853 (or a target with MD5 \
             44aa46f8e008b29abcc507ea83b4cf46, to undo it); this file's image normalized as raw \
             has MD5 {}\n",
            rom.display(),
            rup_path.display(),
            common::md5_hex(&sfc),
        )
    );
    let out = apply_to_stdout(&rom, &[rup_path], &["--ignore-checksum"]);
    let mut expected = read_fixture("roms/snes/cputest-full.sfc");
    expected[0x4321] ^= 0x80;
    assert!(out == expected);
}

#[test]
fn max_size_refuses_a_larger_output_with_the_exact_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gb");
    let gb = fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb");
    let bps = fixture("patches/mbc1_512k_to_1M.rompatcherjs.bps");
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&gb)
            .arg(&bps)
            .args(["--max-size", "131071", "-o"])
            .arg(&out),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: BPS patch would make a 131072-byte image, over the maximum of \
             131071 bytes (raise --max-size if the patch is genuine)\n",
            bps.display()
        )
    );
    assert!(!out.exists());
    // Exactly the output size is allowed.
    ninja()
        .arg("apply")
        .arg(&gb)
        .arg(&bps)
        .args(["--max-size", "128K", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert!(
        std::fs::read(&out).unwrap()
            == read_fixture("roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb")
    );

    // Every format of the pair is bounded.
    for patch in patches_of("mbc1_512k_to_1M") {
        let out = dir.path().join("bounded.gb");
        let err = stderr_of(
            ninja()
                .arg("apply")
                .arg(&gb)
                .arg(&patch)
                .args(["--max-size", "100000", "-o"])
                .arg(&out),
        );
        assert!(
            err.starts_with(&format!("ninja-fs: {}: ", patch.display()))
                && err.ends_with(
                    "-byte image, over the maximum of 100000 bytes (raise --max-size if the patch is genuine)\n"
                ),
            "{err}"
        );
        assert!(!out.exists());
    }

    let err =
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&gb)
                .arg(&bps)
                .args(["--max-size", "lots", "-o", "-"]),
        );
    assert!(
        err.contains("'lots' is not a size: write a number of bytes, or one like 64K, 256M, 1G"),
        "{err}"
    );
}

#[test]
fn a_hostile_ips_cannot_make_a_huge_image() {
    let dir = tempfile::tempdir().unwrap();
    // One RLE record at offset 0xFFFFFF of 0xFFFF bytes: a 16 MiB image.
    let ips = dir.path().join("huge.ips");
    let mut bytes = b"PATCH".to_vec();
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0xAB]);
    bytes.extend_from_slice(b"EOF");
    std::fs::write(&ips, &bytes).unwrap();
    let out = dir.path().join("out.gb");
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb"))
            .arg(&ips)
            .args(["--max-size", "1M", "-o"])
            .arg(&out),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: IPS patch would make a 16842750-byte image, over the maximum of \
             1048576 bytes (raise --max-size if the patch is genuine)\n",
            ips.display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn truncated_patches_fail_cleanly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let mut checked = 0;
    for (pair, source, _) in PAIRS {
        for patch in patches_of(pair) {
            let bytes = std::fs::read(&patch).unwrap();
            let ext = patch.extension().unwrap().to_str().unwrap();
            let cut_path = dir.path().join(format!("cut.{ext}"));
            for len in [0, 1, 5, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
                std::fs::write(&cut_path, &bytes[..len]).unwrap();
                // APS N64 and PPF have no end marker: cut at a record
                // boundary, they are shorter patches, and apply as such.
                let well_formed = PatchFormat::detect(Some("cut.x"), &bytes[..len])
                    .and_then(|f| Patch::parse(f, &bytes[..len], &Limits::default()).ok())
                    .is_some();
                if well_formed {
                    assert!(
                        ["aps", "ppf"].contains(&ext),
                        "{} cut to {len}",
                        patch.display()
                    );
                    ninja()
                        .arg("apply")
                        .arg(fixture(source))
                        .arg(&cut_path)
                        .args(["-o", "-"])
                        .assert()
                        .success();
                    checked += 1;
                    continue;
                }
                let err = stderr_of(
                    ninja()
                        .arg("apply")
                        .arg(fixture(source))
                        .arg(&cut_path)
                        .arg("-o")
                        .arg(&out),
                );
                let context = format!("{} cut to {len}: {err}", patch.display());
                assert!(
                    err.starts_with(&format!("ninja-fs: {}", cut_path.display())),
                    "{context}"
                );
                assert_eq!(err.lines().count(), 1, "{context}");
                assert!(!err.contains("panicked"), "{context}");
                assert!(!out.exists(), "{context}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 30 * 6);

    // Some exact messages.
    let cases = [
        (
            "patches/nes15_ntsc2pal.flips.ips",
            None,
            "IPS patch is truncated: record offset at byte 131 needs 3 bytes, 2 are left",
        ),
        (
            "patches/nes15_ntsc2pal.rompatcherjs.rup",
            None,
            "RUP patch is truncated: the command stream ends without its END command",
        ),
        (
            "patches/nes15_ntsc2pal.rompatcherjs.rup",
            Some(1120),
            "RUP patch is truncated: the header is 1120 bytes, it should be 2048",
        ),
        (
            "patches/nes15_ntsc2pal.rompatcherjs.ppf",
            None,
            "PPF patch is truncated: record data at byte 240 needs 1 byte, none are left",
        ),
    ];
    for (patch, len, message) in cases {
        let bytes = read_fixture(patch);
        let len = len.unwrap_or(bytes.len() - 1);
        let ext = Path::new(patch).extension().unwrap().to_str().unwrap();
        let cut_path = dir.path().join(format!("cut.{ext}"));
        std::fs::write(&cut_path, &bytes[..len]).unwrap();
        let err = stderr_of(
            ninja()
                .arg("apply")
                .arg(fixture("roms/nes/nes15-NTSC.nes"))
                .arg(&cut_path)
                .args(["-o", "-"]),
        );
        assert_eq!(
            err,
            format!("ninja-fs: {}: {message}\n", cut_path.display())
        );
    }
    let empty = dir.path().join("empty.ips");
    std::fs::write(&empty, b"").unwrap();
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(fixture("roms/nes/nes15-NTSC.nes"))
            .arg(&empty)
            .args(["-o", "-"]),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: not a patch this tool knows (IPS, IPS32, EBP, UPS, BPS, PPF, NINJA2 RUP, APS, GDIFF, VCDIFF/xdelta, BSDIFF40 (BDF), PAT, FFP, fc /b, DPS, PMSR (Star Rod .mod), BSP)\n",
            empty.display()
        )
    );
}

// ---- output safety ----

#[test]
fn apply_refuses_an_existing_output_and_never_overwrites_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("game.nes");
    std::fs::copy(fixture("roms/nes/nes15-NTSC.nes"), &rom).unwrap();
    let patch = dir.path().join("game.ips");
    std::fs::copy(fixture("patches/nes15_ntsc2pal.flips.ips"), &patch).unwrap();
    let out = dir.path().join("out.nes");
    std::fs::write(&out, b"keep me").unwrap();

    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&rom)
            .arg(&patch)
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: already exists (use --force to replace it)\n",
            out.display()
        )
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    ninja()
        .arg("apply")
        .arg(&rom)
        .arg(&patch)
        .arg("--force")
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert!(std::fs::read(&out).unwrap() == read_fixture("roms/nes/nes15-PAL.nes"));

    for input in [&rom, &patch] {
        let err = stderr_of(
            ninja()
                .arg("apply")
                .arg(&rom)
                .arg(&patch)
                .arg("--force")
                .arg("-o")
                .arg(input),
        );
        assert_eq!(
            err,
            format!(
                "ninja-fs: {}: is also an input; write the output somewhere else\n",
                input.display()
            )
        );
    }
    assert!(std::fs::read(&rom).unwrap() == read_fixture("roms/nes/nes15-NTSC.nes"));
    assert!(std::fs::read(&patch).unwrap() == read_fixture("patches/nes15_ntsc2pal.flips.ips"));
    // Nothing but the output was ever added to the folder.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["game.ips", "game.nes", "out.nes"]);
}

#[test]
fn xdelta_patches_stream_into_the_output_file_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    for (stem, source, target) in PAIRS {
        for kind in ["xdelta3-default", "xdelta3-plain"] {
            let out = dir.path().join(format!("{stem}.{kind}.out"));
            let patch = fixture(&format!("patches/{stem}.{kind}.vcdiff"));
            Command::cargo_bin("ninja-fs")
                .unwrap()
                .arg("apply")
                .arg(fixture(source))
                .arg(&patch)
                .arg("-o")
                .arg(&out)
                .assert()
                .success();
            assert!(
                std::fs::read(&out).unwrap() == read_fixture(target),
                "{stem} {kind}"
            );
        }
    }
    // A patch damaged in its last window fails after earlier windows were
    // written: the output file must not appear, nor any temporary file.
    let mut damaged = read_fixture("patches/snes_cputest_basic2full.xdelta3-plain.vcdiff");
    let at = damaged.len() - 100;
    damaged[at] ^= 0xFF;
    let patch = dir.path().join("damaged.xdelta");
    std::fs::write(&patch, &damaged).unwrap();
    let out = dir.path().join("damaged.out");
    let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    let output = Command::cargo_bin("ninja-fs")
        .unwrap()
        .arg("apply")
        .arg(fixture("roms/snes/cputest-basic.sfc"))
        .arg(&patch)
        .arg("-o")
        .arg(&out)
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("damaged.xdelta: VCDIFF patch is corrupt"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before.len());
}

#[test]
fn a_forced_raw_rup_applies_to_the_deinterleaved_image() {
    // RomPatcher.js's RUP (type 0) of the NES pair, forced onto a SNES dump
    // with a copier header: the XOR records land on the headerless image.
    let out = apply_to_stdout(
        &fixture("roms/snes/cputest-basic.smc"),
        &[fixture("patches/nes15_ntsc2pal.rompatcherjs.rup")],
        &["--ignore-checksum"],
    );
    let clean = read_fixture("roms/snes/cputest-basic.sfc");
    let patch = read_fixture("patches/nes15_ntsc2pal.rompatcherjs.rup");
    let parsed = rup::parse(&patch, &Limits::default()).unwrap();
    let entry = &parsed.entries[0];
    let forced = ApplyOptions {
        ignore_checksums: true,
        ..ApplyOptions::default()
    };
    let (expected, _) = entry.apply_normalized(&clean, &forced).unwrap();
    assert_eq!(out.len(), 28688);
    assert!(out == expected);
}

#[test]
fn a_patch_failing_its_own_crc_is_named_damaged_not_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let rom = fixture("roms/nes/nes15-NTSC.nes");
    for (fixture_name, name, at) in [
        ("patches/nes15_ntsc2pal.flips-delta.bps", "Hack.bps", 20),
        ("patches/nes15_ntsc2pal.rompatcherjs.ups", "Hack.ups", 12),
    ] {
        let mut bytes = read_fixture(fixture_name);
        let stored = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
        bytes[at] ^= 0x40;
        let actual = crc32fast::hash(&bytes[..bytes.len() - 4]);
        let patch = dir.path().join(name);
        std::fs::write(&patch, &bytes).unwrap();
        let out = dir.path().join("out.nes");
        let err = stderr_of(
            ninja()
                .arg("apply")
                .arg(&rom)
                .arg(&patch)
                .arg("-o")
                .arg(&out),
        );
        let format = &name[5..].to_uppercase();
        assert_eq!(
            err,
            format!(
                "ninja-fs: {}: {format} patch is damaged: its own CRC32 is {stored:08x} but the \
                 file's bytes give {actual:08x} (download it again)\n",
                patch.display()
            )
        );
        assert!(!out.exists());
    }
}

#[test]
fn a_ups_for_another_rom_names_the_rom_both_crcs_and_the_images() {
    let gb = fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb");
    let ups = fixture("patches/nes15_ntsc2pal.rompatcherjs.ups");
    let err = stderr_of(ninja().arg("apply").arg(&gb).arg(&ups).args(["-o", "-"]));
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source with CRC32 7399d1f1 \
             (or a target with CRC32 ae6caf8c, to undo it); this file's image (raw, normalized \
             and deinterleaved alike) has CRC32 f3830969\n",
            gb.display(),
            ups.display()
        )
    );
}
