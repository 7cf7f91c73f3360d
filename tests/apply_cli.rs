//! `ninja-fs apply` as a user meets it: every real patch on its ROM pair
//! and on the other containers of the source, NINJA 2.0's vectors in their
//! own layouts and in reverse, stacks, refusals with their exact messages.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{fixture, read_fixture};
use ninja_fs::patch::any::{Patch, PatchFormat};
use ninja_fs::patch::{ApplyOptions, Limits, rup};
use ninja_fs::system::{self, SystemType};

fn ninja() -> Command {
    Command::cargo_bin("ninja-fs").unwrap()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

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

/// Runs a command that must fail; returns its stderr.
fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().get_output().clone();
    assert!(out.stdout.is_empty(), "a failed command wrote to stdout");
    String::from_utf8(out.stderr).unwrap()
}

/// The three real ROM pairs of tests/fixtures/patches.
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
