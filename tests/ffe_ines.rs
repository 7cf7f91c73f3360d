//! Famtasia/FFE dumps as emulators play them: the deinterleaved image is an
//! iNES file made from what the FFE header and the data say, checked
//! against the real iNES dump of the same game; NINJA 2.0's own write-back
//! (the FFE header kept) is there when asked for. Also the other NES form
//! emulators refuse: an iNES magic of `NES\x19`.

mod common;

use std::ffi::OsStr;

use common::{fixture, ninja, read_fixture, stderr_of};
use ninja_fs::patch::Limits;
use ninja_fs::system::{self, Conversion, HeaderKind, SystemType};
use ninja_fs::vfs::{ROOT_INO, VirtualFs};
use ninja_fs::views::NinjaFs;
use proptest::prelude::*;

const FFE: &str = "roms/nes/nes15-NTSC.ffe";
const INES: &str = "roms/nes/nes15-NTSC.nes";

fn stdout_of(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    let out = cmd.assert().success().get_output().clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn deinterleaved(raw: &[u8]) -> Vec<u8> {
    let layout = system::analyze(raw, SystemType::Nes).unwrap();
    let normalized = system::normalize(raw, &layout).unwrap();
    let image = system::restore(&normalized, &layout).unwrap().into_owned();
    assert_eq!(image.len(), layout.restored_len(normalized.len()));
    image
}

#[test]
fn the_ffe_dump_becomes_the_real_ines_dump() {
    // uCON64 made the .ffe from the .nes: header 80 ea (a Magic Card game
    // in NROM mode, vertical mirroring), the 16 KiB PRG padded to 32 KiB
    // with zeros, CHR, and the 4 KiB the .nes carries after its CHR.
    let ffe = read_fixture(FFE);
    let ines = read_fixture(INES);
    assert_eq!(ffe[..2], [0x80, 0xEA]);
    let image = deinterleaved(&ffe);
    assert_eq!(
        image[..16],
        *b"NES\x1a\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        "16 KiB PRG, 8 KiB CHR, mapper 0, vertical mirroring"
    );
    assert_eq!(image[..16], ines[..16], "the real dump's header");
    assert!(image == ines, "the real iNES dump, byte for byte");

    let layout = system::analyze(&ffe, SystemType::Nes).unwrap();
    assert_eq!(layout.header, Some(HeaderKind::Ffe));
    let Some(Conversion::FfeToInes(plan)) = &layout.conversion else {
        panic!("no iNES conversion: {layout:?}");
    };
    assert_eq!((plan.mapper, plan.vertical, plan.trainer), (0, true, false));
    assert_eq!((plan.prg_len, plan.chr_len), (0x4000, 0x2000));
    assert_eq!(plan.skip, Some((0x4000, 0x4000)));
    assert!(!layout.deinterleaved_is_raw());
    // The normalized image stays NINJA's: the FFE data as stored.
    assert_eq!(layout.normalized_len(), ffe.len() - 512);
}

#[test]
fn the_deinterleaved_ines_file_reads_as_the_same_game() {
    let image = deinterleaved(&read_fixture(FFE));
    let again = system::detect(Some("game.nes"), &image);
    assert_eq!(again.header, Some(HeaderKind::Ines));
    assert!(again.conversion.is_none());
    // Deinterleaving the deinterleaved file changes nothing.
    assert_eq!(deinterleaved(&image), image);
}

#[test]
fn ninja_write_back_keeps_the_ffe_header() {
    let ffe = read_fixture(FFE);
    let layout = system::analyze(&ffe, SystemType::Nes)
        .unwrap()
        .ninja_write_back();
    let normalized = system::normalize(&ffe, &layout).unwrap();
    assert_eq!(system::restore(&normalized, &layout).unwrap().as_ref(), ffe);
    assert!(layout.deinterleaved_is_raw());
}

#[test]
fn the_command_line_follows_the_view() {
    let ffe = fixture(FFE);
    let out = stdout_of(ninja().arg("deinterleave").arg(&ffe).args(["-o", "-"]));
    assert!(out == read_fixture(INES), "deinterleave");

    // A patch made on the iNES dump now applies to the FFE dump: IPS (no
    // checksum) to the deinterleaved image, BPS because that image's CRC32
    // is the one it expects.
    let pal = read_fixture("roms/nes/nes15-PAL.nes");
    for patch in [
        "patches/nes15_ntsc2pal.flips.ips",
        "patches/nes15_ntsc2pal.flips-delta.bps",
        "patches/nes15_ntsc2pal.rompatcherjs.ups",
    ] {
        let out = stdout_of(
            ninja()
                .arg("apply")
                .arg(&ffe)
                .arg(fixture(patch))
                .args(["-o", "-"]),
        );
        assert!(out == pal, "{patch}");
    }
}

#[test]
fn keep_header_gives_ninjas_ffe_write_back() {
    // NINJA's form of the FFE dump is the file itself: patches made on the
    // iNES dump find neither its raw nor its normalized image.
    let ffe = fixture(FFE);
    let bps = fixture("patches/nes15_ntsc2pal.flips-delta.bps");
    let err =
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&ffe)
                .arg(&bps)
                .args(["--keep-header", "-o", "-"]),
        );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {} does not match {}: the patch expects a source with CRC32 7399d1f1; \
             this file's raw and deinterleaved images have CRC32 c97d4234, its normalized image \
             has CRC32 35485ad2\n",
            ffe.display(),
            bps.display()
        )
    );
}

#[test]
fn ninjas_rup_vector_on_an_ffe_dump_both_ways() {
    // NINJA 2.0's vector: an FFE file whose header is no Magic Card game
    // header (byte 0 = 0x20) around the 40 KiB source of nes_ines_shrink.
    let input = fixture("rup-vectors/nes_ffe_input_for_nes_ines_shrink.nes");
    let rup = fixture("rup-vectors/nes_ines_shrink.rup");
    let raw = read_fixture("rup-vectors/nes_ffe_input_for_nes_ines_shrink.nes");
    let target = read_fixture("rup-vectors/nes_ines_shrink.tgt.nes");
    let source = read_fixture("rup-vectors/nes_ines_shrink.src.nes");

    // Sizes read from the data, mapper 0: the vector's own iNES source.
    assert!(deinterleaved(&raw) == source);

    // NINJA-exact: the FFE header written back.
    let kept =
        stdout_of(
            ninja()
                .arg("apply")
                .arg(&input)
                .arg(&rup)
                .args(["--keep-header", "-o", "-"]),
        );
    assert_eq!(kept[..512], raw[..512]);
    assert!(kept[512..] == target[16..]);

    // As emulators play it: an iNES header that claims only what the
    // shrunk image holds (32 KiB PRG, no whole CHR bank; the vector's own
    // target header claims an 8 KiB CHR it does not have).
    let playable = stdout_of(ninja().arg("apply").arg(&input).arg(&rup).args(["-o", "-"]));
    assert_eq!(
        playable[..16],
        *b"NES\x1a\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    );
    assert!(playable[16..] == target[16..]);
}

#[test]
fn the_mount_shows_the_ines_file_with_its_exact_size() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nes")).unwrap();
    std::fs::write(dir.path().join("nes/Game.ffe"), read_fixture(FFE)).unwrap();
    let fs = NinjaFs::new(dir.path(), 64 << 20, Limits::default()).unwrap();
    let mut ino = fs.getattr(ROOT_INO).unwrap().ino;
    for part in ["deinterleaved", "nes", "Game.nes"] {
        ino = fs.lookup(ino, OsStr::new(part)).unwrap().ino;
    }
    // Listing sized it from the header regions alone.
    let listed = fs.getattr(ino).unwrap().size;
    let opened = fs.open(ino).unwrap();
    let mut bytes = Vec::new();
    loop {
        let chunk = fs.read(opened.handle, bytes.len() as u64, 1 << 16).unwrap();
        if chunk.is_empty() {
            break;
        }
        bytes.extend(chunk);
    }
    fs.release(opened.handle);
    assert_eq!(listed, bytes.len() as u64);
    assert!(bytes == read_fixture(INES));

    // Its report, sized before it is made, says what became of the header.
    let mut ino = fs.getattr(ROOT_INO).unwrap().ino;
    for part in ["info", "nes", "Game.ffe.txt"] {
        ino = fs.lookup(ino, OsStr::new(part)).unwrap().ino;
    }
    let listed = fs.getattr(ino).unwrap().size;
    let opened = fs.open(ino).unwrap();
    let report = fs.read(opened.handle, 0, 1 << 20).unwrap();
    fs.release(opened.handle);
    assert_eq!(listed, report.len() as u64);
    let report = String::from_utf8(report).unwrap();
    assert!(
        report.contains("Famtasia/FFE, 512 bytes, replaced by an iNES header"),
        "{report}"
    );
}

#[test]
fn an_ines_magic_emulators_refuse_is_written_right() {
    // uCON64 knows dumps whose magic is "NES\x19" or "NES\x1b"; NINJA read
    // only "NES", Nestopia refuses anything but "NES\x1a".
    let ines = read_fixture(INES);
    for wrong in [0x19u8, 0x1B] {
        let mut raw = ines.clone();
        raw[3] = wrong;
        let layout = system::analyze(&raw, SystemType::Nes).unwrap();
        assert!(deinterleaved(&raw) == ines, "{wrong:#x}");
        assert!(!layout.deinterleaved_is_raw());
        assert_eq!(layout.notes.len(), 1, "{:?}", layout.notes);
        let ninja = layout.ninja_write_back();
        let normalized = system::normalize(&raw, &ninja).unwrap();
        assert!(system::restore(&normalized, &ninja).unwrap().as_ref() == raw);
    }
}

/// An FFE file: header bytes 0 and 1 as given, the signature, an optional
/// trainer, `data`.
fn ffe_file(byte0: u8, byte1: u8, trainer: bool, data: &[u8]) -> Vec<u8> {
    let mut raw = vec![0u8; 512];
    raw[0] = byte0 | if trainer { 0x40 } else { 0 };
    raw[1] = byte1;
    raw[8] = 0xAA;
    raw[9] = 0xBB;
    if trainer {
        raw.extend((0..512).map(|i| i as u8));
    }
    raw.extend_from_slice(data);
    raw
}

/// The iNES header's PRG and CHR bytes, after checking the file is a
/// valid iNES file: its magic, and PRG + CHR (+ trainer) within it.
fn ines_sizes(image: &[u8]) -> Result<(usize, usize), TestCaseError> {
    prop_assert!(image.len() >= 16);
    prop_assert_eq!(&image[..4], b"NES\x1a");
    prop_assert_eq!(image[7] & 0x0C, 0, "iNES 1.0");
    prop_assert!(image[8..16].iter().all(|&b| b == 0), "no dirty bytes");
    let prg = usize::from(image[4]) * 0x4000;
    let chr = usize::from(image[5]) * 0x2000;
    let trainer = if image[6] & 0x04 != 0 { 512 } else { 0 };
    prop_assert!(prg > 0);
    prop_assert!(16 + trainer + prg + chr <= image.len());
    Ok((prg, chr))
}

/// The (PRG, CHR) a Magic Card 1M/2M latch mode holds.
const MODE_SIZES: [(usize, usize); 8] = [
    (0x20000, 0),
    (0x40000, 0),
    (0x40000, 0),
    (0x40000, 0),
    (0x20000, 0x8000),
    (0x8000, 0x8000),
    (0x8000, 0x4000),
    (0x8000, 0x2000),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// restore(normalize(x)) of a Magic Card FFE dump is a valid iNES file
    /// with the PRG and CHR its header declares (a blank upper PRG half of
    /// an NROM/CNROM game left out), the same game data, and an iNES file
    /// that reads back as itself.
    #[test]
    fn ffe_dumps_restore_to_valid_ines_files(
        mode in 0u8..8,
        horizontal in any::<bool>(),
        trainer in any::<bool>(),
        blank_half in any::<bool>(),
        tail in 0usize..3000,
        seed in any::<u8>(),
    ) {
        let (prg, chr) = MODE_SIZES[usize::from(mode)];
        let mut data: Vec<u8> = (0..prg + chr + tail)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect();
        let halved = blank_half && prg == 0x8000;
        if halved {
            data[0x4000..0x8000].fill(0);
        }
        let byte1 = mode << 5 | if horizontal { 0x10 } else { 0 };
        let raw = ffe_file(0x80, byte1, trainer, &data);
        let layout = system::analyze(&raw, SystemType::Nes).unwrap();
        let normalized = system::normalize(&raw, &layout).unwrap();
        prop_assert_eq!(normalized.len(), raw.len() - 512);
        let image = system::restore(&normalized, &layout).unwrap();
        prop_assert_eq!(image.len(), layout.restored_len(normalized.len()));

        let (ines_prg, ines_chr) = ines_sizes(&image)?;
        prop_assert_eq!(ines_prg, if halved { 0x4000 } else { prg });
        prop_assert_eq!(ines_chr, chr);
        prop_assert_eq!(image[6] & 0x01 == 0, horizontal, "mirroring");
        prop_assert_eq!(image[6] & 0x04 != 0, trainer, "trainer flag");
        let body = &image[16..];
        let trainer_len = if trainer { 512 } else { 0 };
        prop_assert_eq!(&body[..trainer_len], &raw[512..512 + trainer_len]);
        let game = &body[trainer_len..];
        prop_assert!(game[..ines_prg] == data[..ines_prg], "PRG");
        let chr_at = if halved { 0x8000 } else { prg };
        prop_assert!(game[ines_prg..] == data[chr_at..], "CHR and what follows");

        // The iNES file is a dump of its own, deinterleaved as it is.
        let again = system::analyze(&image, SystemType::Nes).unwrap();
        prop_assert!(again.deinterleaved_is_raw());
    }

    /// An FFE header that says nothing still gives a valid iNES file whose
    /// sizes hold within the data.
    #[test]
    fn unknown_ffe_headers_restore_to_valid_ines_files(
        len in 0x4000usize..0x30000,
        byte0 in 0u8..0x80,
        trainer in any::<bool>(),
    ) {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8 + 1).collect();
        let raw = ffe_file(byte0 & !0x40, 0, trainer, &data);
        let layout = system::analyze(&raw, SystemType::Nes).unwrap();
        let normalized = system::normalize(&raw, &layout).unwrap();
        let image = system::restore(&normalized, &layout).unwrap();
        prop_assert_eq!(image.len(), layout.restored_len(normalized.len()));
        prop_assert_eq!(image.len(), 16 + normalized.len(), "nothing left out");
        let (prg, chr) = ines_sizes(&image)?;
        prop_assert!(prg.is_power_of_two() && (chr == 0 || chr.is_power_of_two()));
        prop_assert!(layout.notes.iter().any(|n| n.contains("a guess")));
    }
}
