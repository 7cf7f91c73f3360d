//! IPS32 and BSDIFF40 (BDF) as a user meets them: the committed patches
//! (Debian bsdiff's, and IPS32 from an independent writer) through the
//! library, the command line (`apply`, `create`, `info`) and the mount's
//! views; and, when Debian's `bsdiff` and `bspatch` are on PATH, patches
//! made by each side applied by the other.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{PAIRS, fixture, names, ninja, read_all, read_fixture, stderr_of};
use ninja_fs::patch::any::{Patch, PatchFormat};
use ninja_fs::patch::{ApplyOptions, Limits, bsdiff, ips32};
use ninja_fs::views::NinjaFs;

/// The committed IPS32 and BDF of each pair, with their formats.
const KINDS: [(&str, PatchFormat); 2] = [
    ("handmade.ips32", PatchFormat::Ips32),
    ("bsdiff.bdf", PatchFormat::Bsdiff),
];

fn committed(pair: &str, kind: &str) -> PathBuf {
    fixture(&format!("ips32_bdf/{pair}.{kind}"))
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    let out = cmd.assert().success().get_output().clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn apply_cli(rom: &Path, patch: &Path) -> Vec<u8> {
    stdout_of(ninja().arg("apply").arg(rom).arg(patch).args(["-o", "-"]))
}

#[test]
fn committed_patches_make_their_targets() {
    for (pair, source, target) in PAIRS {
        let (source, target) = (read_fixture(source), read_fixture(target));
        for (kind, format) in KINDS {
            let bytes = std::fs::read(committed(pair, kind)).unwrap();
            // Found by content, whatever the name says.
            for name in [Some("Hack.ips"), Some("Hack.bin"), None] {
                assert_eq!(PatchFormat::detect(name, &bytes), Some(format), "{kind}");
            }
            let patch = Patch::parse(format, &bytes, &Limits::default()).unwrap();
            assert_eq!(patch.format(), format);
            assert!(!patch.verifies_source());
            assert_eq!(
                patch.output_size(source.len() as u64),
                target.len() as u64,
                "{pair} {kind}"
            );
            let made = patch.apply(&source, &ApplyOptions::default()).unwrap();
            assert!(made == target, "{pair} {kind} made the wrong bytes");
        }
    }
}

#[test]
fn apply_reads_them_under_every_name() {
    let dir = tempfile::tempdir().unwrap();
    for (pair, source, target) in PAIRS {
        let target = read_fixture(target);
        for (kind, names) in [
            ("handmade.ips32", ["Hack.ips", "Hack.ips32", "Hack.IPS32"]),
            ("bsdiff.bdf", ["Hack.bdf", "Hack.bsdiff", "Hack.BDF"]),
        ] {
            for name in names {
                let patch = dir.path().join(name);
                std::fs::copy(committed(pair, kind), &patch).unwrap();
                let out = apply_cli(&fixture(source), &patch);
                assert!(out == target, "{pair} {kind} as {name}");
                std::fs::remove_file(&patch).unwrap();
            }
        }
    }
}

#[test]
fn they_apply_to_every_container_of_the_snes_source() {
    // Made on the headerless image: copier headers are dropped first.
    let target = read_fixture("roms/snes/cputest-full.sfc");
    for container in ["smc", "swc", "fig", "ufo", "gd3_sf2cpu"] {
        let rom = fixture(&format!("roms/snes/cputest-basic.{container}"));
        for (kind, _) in KINDS {
            let out = apply_cli(&rom, &committed("snes_cputest_basic2full", kind));
            assert!(out == target, "{container}: {kind}");
        }
    }
}

/// `create` writes what the library makes; its BSDIFF40 patches apply with
/// Debian's `bspatch` too, where it is installed.
#[test]
fn create_writes_them_and_they_apply() {
    let dir = tempfile::tempdir().unwrap();
    let bspatch = debian_bsdiff_available();
    for (pair, source, target) in PAIRS {
        let (source_bytes, target_bytes) = (read_fixture(source), read_fixture(target));
        for (output, format_flag, format) in [
            ("made.ips32", None, PatchFormat::Ips32),
            ("made.bdf", None, PatchFormat::Bsdiff),
            ("made.patch", Some("bdf"), PatchFormat::Bsdiff),
            ("made-too.patch", Some("ips32"), PatchFormat::Ips32),
            ("made.bsdiff", None, PatchFormat::Bsdiff),
        ] {
            let out = dir.path().join(format!("{pair}.{output}"));
            let mut command = ninja();
            command
                .arg("create")
                .arg(fixture(source))
                .arg(fixture(target))
                .arg("-o")
                .arg(&out);
            if let Some(flag) = format_flag {
                command.args(["--format", flag]);
            }
            command.assert().success();
            let bytes = std::fs::read(&out).unwrap();
            assert_eq!(PatchFormat::detect(None, &bytes), Some(format), "{output}");
            if format == PatchFormat::Ips32 {
                // The same bytes as the library makes.
                let made = ips32::create(&source_bytes, &target_bytes).unwrap();
                assert!(bytes == made, "{pair} {output}");
            }
            let applied = apply_cli(&fixture(source), &out);
            assert!(applied == target_bytes, "{pair} {output}");
            if format == PatchFormat::Bsdiff && bspatch {
                let made = dir.path().join(format!("{pair}.{output}.bspatch"));
                let status = Command::new("bspatch")
                    .arg(fixture(source))
                    .arg(&made)
                    .arg(&out)
                    .status()
                    .unwrap();
                assert!(status.success(), "bspatch {pair} {output}");
                assert!(
                    std::fs::read(&made).unwrap() == target_bytes,
                    "{pair} {output}"
                );
            }
        }
    }
    // IPS32 cannot shorten a file: said, and nothing written.
    let out = dir.path().join("shrink.ips32");
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg(fixture("roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb"))
            .arg(fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb"))
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(
        err,
        "ninja-fs: cannot create the IPS32 patch: the target (65536 bytes) is shorter than \
         the source (131072 bytes) and IPS32 cannot shorten a file; use BPS or UPS\n"
    );
    assert!(!out.exists());
}

#[test]
fn info_shows_what_each_holds() {
    let dir = tempfile::tempdir().unwrap();
    // An IPS32 named .ips is still IPS32.
    let ips = dir.path().join("Hack.ips");
    std::fs::copy(committed("nes15_ntsc2pal", "handmade.ips32"), &ips).unwrap();
    let text = String::from_utf8(stdout_of(ninja().arg("info").arg(&ips))).unwrap();
    assert_eq!(
        text,
        format!("{}\n  format   IPS32\n  records  10\n", ips.display())
    );
    let bdf = committed("mbc1_512k_to_1M", "bsdiff.bdf");
    let text = String::from_utf8(stdout_of(ninja().arg("info").arg(&bdf))).unwrap();
    assert_eq!(
        text,
        format!(
            "{}\n  format         BSDIFF40\n  control block  74 bytes, bzip2\n  \
             diff block     87 bytes, bzip2\n  extra block    14 bytes, bzip2\n  \
             target size    131072 bytes (128 KiB)\n",
            bdf.display()
        )
    );
    let json: serde_json::Value =
        serde_json::from_slice(&stdout_of(ninja().arg("info").arg("--json").arg(&bdf))).unwrap();
    let patch = &json[0]["patch"];
    assert_eq!(patch["format"], "BSDIFF40");
    assert_eq!(patch["target_size"], 131072);
    assert_eq!(patch["source_size"], serde_json::Value::Null);
}

#[test]
fn hostile_and_damaged_patches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gb");
    let gb = fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb");
    // Both grow the image to 128 KiB, over a 100000-byte --max-size: the
    // BDF says so of its new size, the IPS32 of its first record past it.
    for (kind, format, size) in [
        ("handmade.ips32", "IPS32", 114688),
        ("bsdiff.bdf", "BSDIFF40", 131072),
    ] {
        let patch = committed("mbc1_512k_to_1M", kind);
        let err = stderr_of(
            ninja()
                .arg("apply")
                .arg(&gb)
                .arg(&patch)
                .args(["--max-size", "100000", "-o"])
                .arg(&out),
        );
        assert_eq!(
            err,
            format!(
                "ninja-fs: {}: {format} patch would make a {size}-byte image, over the maximum \
                 of 100000 bytes (raise --max-size if the patch is genuine)\n",
                patch.display(),
            )
        );
        assert!(!out.exists());
    }
    // A BDF cut short, and one whose new size is negative.
    let bdf = std::fs::read(committed("mbc1_512k_to_1M", "bsdiff.bdf")).unwrap();
    let cut = dir.path().join("cut.bdf");
    std::fs::write(&cut, &bdf[..bdf.len() - 20]).unwrap();
    // (Its 14-byte extra block, an empty bzip2 stream, goes, and part of
    // the diff block.)
    assert_eq!(
        stderr_of(ninja().arg("apply").arg(&gb).arg(&cut).arg("-o").arg(&out)),
        format!(
            "ninja-fs: {}: BSDIFF40 patch is truncated: the diff block at byte 106 needs 87 \
             bytes, 81 are left\n",
            cut.display()
        )
    );
    assert!(!out.exists());
    let mut negative = bdf.clone();
    negative[31] |= 0x80;
    let negative_path = dir.path().join("negative.bdf");
    std::fs::write(&negative_path, &negative).unwrap();
    assert_eq!(
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&gb)
                .arg(&negative_path)
                .arg("-o")
                .arg(&out)
        ),
        format!(
            "ninja-fs: {}: BSDIFF40 patch is corrupt: the new file size is negative (-131072)\n",
            negative_path.display()
        )
    );
    // An IPS32 whose RLE record ends past the limit, refused as it is read.
    let rle = dir.path().join("rle.ips");
    std::fs::write(&rle, b"IPS32\x00\x01\x80\x00\x00\x00\xff\xff\x00EEOF").unwrap();
    assert_eq!(
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&gb)
                .arg(&rle)
                .args(["--max-size", "100000", "-o"])
                .arg(&out)
        ),
        format!(
            "ninja-fs: {}: IPS32 patch would make a 163839-byte image, over the maximum of \
             100000 bytes (raise --max-size if the patch is genuine)\n",
            rle.display()
        )
    );
    // A BDF made for a longer source reads past this one's end.
    let (rom, patch) = (
        fixture("roms/nes/nes15-NTSC.nes"),
        committed("snes_cputest_basic2full", "bsdiff.bdf"),
    );
    assert_eq!(
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&rom)
                .arg(&patch)
                .arg("-o")
                .arg(&out)
        ),
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source of at least 37037 \
             bytes, this file has 28688 bytes\n",
            rom.display(),
            patch.display()
        )
    );
    assert!(!out.exists());
}

// ---- the mount's views (no FUSE) ----

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_mount_pairs_them_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "snes/Game.smc",
        &read_fixture("roms/snes/cputest-basic.smc"),
    );
    // An IPS32 under the IPS name, and a BDF in a folder named after the ROM.
    write(
        root,
        "snes/Game.ips",
        &read_fixture("ips32_bdf/snes_cputest_basic2full.handmade.ips32"),
    );
    write(
        root,
        "snes/Game/Translation.bdf",
        &read_fixture("ips32_bdf/snes_cputest_basic2full.bsdiff.bdf"),
    );
    write(root, "gb/Test.gb", &read_fixture(PAIRS[1].1));
    // `.ips32` is IPS32's own extension, not step 32 of a RetroArch stack.
    write(
        root,
        "gb/Test.ips32",
        &read_fixture("ips32_bdf/mbc1_512k_to_1M.handmade.ips32"),
    );
    write(
        root,
        "gb/Test.bsdiff",
        &read_fixture("ips32_bdf/mbc1_512k_to_1M.bsdiff.bdf"),
    );
    let fs = NinjaFs::new(root, 64 << 20, Limits::default()).unwrap();
    assert_eq!(
        names(&fs, "patched/snes"),
        ["Game [Game].sfc", "Game [Translation].sfc"]
    );
    let full = read_fixture("roms/snes/cputest-full.sfc");
    for name in ["Game [Game].sfc", "Game [Translation].sfc"] {
        assert!(
            read_all(&fs, &format!("patched/snes/{name}")) == full,
            "{name}"
        );
    }
    assert_eq!(
        names(&fs, "patched/gb"),
        ["Test [Test.bsdiff].gb", "Test [Test.ips32].gb"]
    );
    let big = read_fixture(PAIRS[1].2);
    for name in ["Test [Test.bsdiff].gb", "Test [Test.ips32].gb"] {
        assert!(
            read_all(&fs, &format!("patched/gb/{name}")) == big,
            "{name}"
        );
    }
}

// ---- Debian's bsdiff and bspatch ----

fn debian_bsdiff_available() -> bool {
    for tool in ["bsdiff", "bspatch"] {
        // Both print their usage and exit non-zero without arguments.
        if let Err(e) = Command::new(tool).output() {
            eprintln!(
                "skipped: {tool} is not on PATH ({e}); install Debian's bsdiff to run this test"
            );
            return false;
        }
    }
    true
}

/// Pairs both ways (growing and shrinking), and images with nothing in common.
fn interop_pairs() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    for (pair, source, target) in PAIRS {
        let (source, target) = (read_fixture(source), read_fixture(target));
        pairs.push((format!("{pair} forward"), source.clone(), target.clone()));
        pairs.push((format!("{pair} backward"), target, source));
    }
    pairs.push((
        "unrelated".into(),
        read_fixture("roms/nes/cc65_hello.nes"),
        read_fixture("roms/pce/cc65_hello.pce"),
    ));
    pairs
}

#[test]
fn debian_bsdiff_patches_apply_here() {
    if !debian_bsdiff_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (old, new, patch) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("patch.bdf"),
    );
    for (name, source, target) in interop_pairs() {
        std::fs::write(&old, &source).unwrap();
        std::fs::write(&new, &target).unwrap();
        let status = Command::new("bsdiff")
            .arg(&old)
            .arg(&new)
            .arg(&patch)
            .status()
            .unwrap();
        assert!(status.success(), "bsdiff {name}");
        let bytes = std::fs::read(&patch).unwrap();
        let parsed = bsdiff::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(parsed.target_size, target.len() as u64);
        let made = parsed.apply(&source, &ApplyOptions::default()).unwrap();
        assert!(made == target, "{name}: wrong bytes");
    }
}

#[test]
fn ninja_fs_patches_apply_with_debian_bspatch() {
    if !debian_bsdiff_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (old, new, patch) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("patch.bdf"),
    );
    for (name, source, target) in interop_pairs() {
        std::fs::write(&old, &source).unwrap();
        std::fs::write(&patch, bsdiff::create(&source, &target).unwrap()).unwrap();
        let output = Command::new("bspatch")
            .arg(&old)
            .arg(&new)
            .arg(&patch)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "bspatch {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            std::fs::read(&new).unwrap() == target,
            "{name}: wrong bytes"
        );
    }
}
