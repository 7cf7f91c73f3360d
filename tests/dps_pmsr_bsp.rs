//! DPS, PMSR (Star Rod's .mod) and BSP through the command line: the
//! hand-made fixtures in tests/fixtures/patches/handmade/ (see the README
//! there) turn real ROMs into their targets byte for byte, `info` shows
//! what each patch says, and hostile patches stop with a clear message.

mod common;

use std::path::Path;

use common::{fixture, ninja, read_fixture, stderr_of};

const NTSC: &str = "roms/nes/nes15-NTSC.nes";
const PAL: &str = "roms/nes/nes15-PAL.nes";
const MBC1_512K: &str = "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb";
const MBC1_1M: &str = "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb";

fn handmade(name: &str) -> std::path::PathBuf {
    fixture(&format!("patches/handmade/{name}"))
}

/// `apply ROM PATCH -o -` plus `extra` flags: the image written.
fn apply(rom: &Path, patch: &Path, extra: &[&str]) -> Vec<u8> {
    let out = ninja()
        .arg("apply")
        .arg(rom)
        .arg(patch)
        .args(["-o", "-"])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .clone();
    out.stdout
}

/// `info PATCH`'s table, after its first line (the path, checked).
fn info(path: &Path) -> String {
    let out = ninja()
        .arg("info")
        .arg(path)
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first, path.display().to_string());
    rest.to_string()
}

#[test]
fn handmade_patches_make_their_targets() {
    for (rom, patch, target, extra) in [
        (NTSC, "nes15_ntsc2pal.handmade.dps", PAL, &[][..]),
        (MBC1_512K, "mbc1_512k_to_1M.handmade.dps", MBC1_1M, &[]),
        (NTSC, "nes15_ntsc2pal.handmade.bsp", PAL, &[]),
        // PMSR patches are for Paper Mario (USA) only: told to ignore that.
        (
            NTSC,
            "nes15_ntsc2pal.handmade.mod",
            PAL,
            &["--ignore-checksum"],
        ),
        (
            NTSC,
            "nes15_ntsc2pal.handmade-yay0.mod",
            PAL,
            &["--ignore-checksum"],
        ),
    ] {
        let out = apply(&fixture(rom), &handmade(patch), extra);
        let expected = read_fixture(target);
        assert_eq!(out.len(), expected.len(), "{patch}");
        assert!(out == expected, "{patch}");
    }
}

#[test]
fn patches_refuse_the_wrong_rom() {
    let dps = stderr_of(
        ninja()
            .arg("apply")
            .arg(fixture(MBC1_512K))
            .arg(handmade("nes15_ntsc2pal.handmade.dps"))
            .args(["-o", "-"]),
    );
    assert!(
        dps.contains("the patch expects a file size of 28688 bytes"),
        "{dps}"
    );
    let pmsr = stderr_of(
        ninja()
            .arg("apply")
            .arg(fixture(NTSC))
            .arg(handmade("nes15_ntsc2pal.handmade.mod"))
            .args(["-o", "-"]),
    );
    assert!(
        pmsr.contains("the patch expects a source with CRC32 a7f5cd7e"),
        "{pmsr}"
    );
    let bsp = stderr_of(
        ninja()
            .arg("apply")
            .arg(fixture(PAL))
            .arg(handmade("nes15_ntsc2pal.handmade.bsp"))
            .args(["-o", "-"]),
    );
    let ntsc_sha1 = ninja_fs::digest::hex(&sha1_of(&read_fixture(NTSC)));
    assert!(
        bsp.contains(&format!(
            "the patch expects a source with SHA-1 {ntsc_sha1}"
        )),
        "{bsp}"
    );
}

fn sha1_of(bytes: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(bytes).into()
}

#[test]
fn info_shows_what_each_patch_says() {
    let dps = info(&handmade("nes15_ntsc2pal.handmade.dps"));
    assert_eq!(
        dps,
        "\x20 format         DPS\n\
         \x20 name           nes15 NTSC to PAL\n\
         \x20 author         ninja-fs tests\n\
         \x20 version        1.0\n\
         \x20 original size  28688 bytes\n\
         \x20 records        15\n\
         \x20 output size    28688 bytes\n"
    );
    let pmsr = info(&handmade("nes15_ntsc2pal.handmade-yay0.mod"));
    assert_eq!(
        pmsr,
        "\x20 format           PMSR\n\
         \x20 base ROM         Paper Mario (USA) 1.0, big-endian (.z64)\n\
         \x20 records          4\n\
         \x20 compression      Yay0\n\
         \x20 source size      41943040 bytes (40 MiB)\n\
         \x20 target size      41943040 bytes (40 MiB)\n\
         \x20 source checksum  CRC32 a7f5cd7e\n"
    );
    let bsp = info(&handmade("nes15_ntsc2pal.handmade.bsp"));
    let ntsc_sha1 = ninja_fs::digest::hex(&sha1_of(&read_fixture(NTSC)));
    let pal_sha1 = ninja_fs::digest::hex(&sha1_of(&read_fixture(PAL)));
    assert_eq!(
        bsp,
        format!(
            "\x20 format        BSP\n\
             \x20 script size   402 bytes\n\
             \x20 source SHA-1  {ntsc_sha1}\n\
             \x20 result SHA-1  {pal_sha1}\n\
             \x20 message       nes15 NTSC to PAL, a hand-made BSP\n\
             \x20 message       This patch is for nes15 (NTSC).\n\
             \x20 message       Patched; the IPS part ended at\n\
             \x20 message       The result is not what it should be.\n\
             \x20 output size   known only by running the script\n"
        )
    );
}

#[test]
fn create_refuses_these_formats() {
    for format in ["dps", "bsp", "mod"] {
        let err = stderr_of(
            ninja()
                .arg("create")
                .arg(fixture(NTSC))
                .arg(fixture(PAL))
                .args(["--format", format, "-o", "-"]),
        );
        let name = match format {
            "mod" => "PMSR",
            other => &other.to_ascii_uppercase(),
        };
        assert!(
            err.contains(&format!(
                "ninja-fs reads {name} patches but does not make them"
            )),
            "{err}"
        );
    }
}

#[test]
fn hostile_patches_stop_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let rom = fixture(NTSC);
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let refuse = |patch: &Path, extra: &[&str]| {
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&rom)
                .arg(patch)
                .args(["-o", "-"])
                .args(extra),
        )
    };
    // A BSP that calls itself forever.
    let recursion = write("recursion.bsp", &[0x04, 0, 0, 0, 0]);
    assert_eq!(
        refuse(&recursion, &[]),
        format!(
            "ninja-fs: {}: BSP patch cannot be used here: the script's stack grew past 1048576 words; a runaway recursion?\n",
            recursion.display()
        )
    );
    // A BSP that grows the image past --max-size.
    let grow = write("grow.bsp", &[0x1e, 0x00, 0x00, 0x10, 0x00]);
    let err = refuse(&grow, &["--max-size", "64K"]);
    assert!(
        err.contains("BSP patch would make a 1048576-byte image, over the maximum of 65536 bytes"),
        "{err}"
    );
    // A DPS record past 4 GiB, and a PMSR that claims more records than it holds.
    let mut dps = read_fixture("patches/handmade/nes15_ntsc2pal.handmade.dps")[..198].to_vec();
    dps.push(1);
    dps.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    dps.extend_from_slice(&2u32.to_le_bytes());
    dps.extend_from_slice(b"xy");
    let dps = write("far.dps", &dps);
    assert_eq!(
        refuse(&dps, &[]),
        format!(
            "ninja-fs: {}: DPS patch is corrupt: the record at byte 198 writes up to byte 0x100000001, past the 4 GiB a DPS offset can reach\n",
            dps.display()
        )
    );
    let pmsr = write("many.mod", b"PMSR\xff\xff\xff\xff");
    assert_eq!(
        refuse(&pmsr, &[]),
        format!(
            "ninja-fs: {}: PMSR patch is truncated: it claims 4294967295 records, but 0 bytes are left for them\n",
            pmsr.display()
        )
    );
}

mod mount_core {
    //! The filesystem core without FUSE: these patches pair and read as
    //! the other formats do.

    use ninja_fs::patch::Limits;
    use ninja_fs::views::NinjaFs;

    use super::{NTSC, PAL, handmade, read_fixture};
    use crate::common::{names, read_all};

    #[test]
    fn sidecars_and_named_crcs_pair_and_read_as_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let put = |rel: &str, bytes: &[u8]| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        let ntsc = read_fixture(NTSC);
        for stem in ["A", "B"] {
            put(&format!("nes/{stem}.nes"), &ntsc);
        }
        put(
            "nes/A.dps",
            &std::fs::read(handmade("nes15_ntsc2pal.handmade.dps")).unwrap(),
        );
        put(
            "nes/B.bsp",
            &std::fs::read(handmade("nes15_ntsc2pal.handmade.bsp")).unwrap(),
        );
        // A script anywhere whose name carries the source's CRC32 (igir's
        // convention) pairs with both.
        let crc = crc32fast::hash(&ntsc);
        put(
            &format!("patches/Hack [{crc:08X}].bsp"),
            &std::fs::read(handmade("nes15_ntsc2pal.handmade.bsp")).unwrap(),
        );
        let fs = NinjaFs::new(root, 64 << 20, Limits::default()).unwrap();
        let hack = format!("Hack [{crc:08X}]");
        assert_eq!(
            names(&fs, "patched/nes"),
            [
                "A [A].nes".to_string(),
                format!("A [{hack}].nes"),
                "B [B].nes".to_string(),
                format!("B [{hack}].nes"),
            ]
        );
        let pal = read_fixture(PAL);
        for name in names(&fs, "patched/nes") {
            assert!(
                read_all(&fs, &format!("patched/nes/{name}")) == pal,
                "{name}"
            );
        }
    }
}
