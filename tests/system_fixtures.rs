//! The system engine against real dumps and NINJA 2.0's own vectors.

mod common;

use common::{md5_hex, read_fixture};
use ninja_fs::system::{self, ByteOrder, Copier, HeaderKind, Interleave, SystemError, SystemType};

fn normalized(rel: &str, system: SystemType) -> Vec<u8> {
    let raw = read_fixture(rel);
    let layout = system::analyze(&raw, system).unwrap_or_else(|e| panic!("{rel}: {e}"));
    system::normalize(&raw, &layout).unwrap().into_owned()
}

fn detected(rel: &str) -> system::Layout {
    let raw = read_fixture(rel);
    system::detect(Some(rel), &raw)
}

#[test]
fn every_snes_copier_variant_normalizes_to_the_clean_rom() {
    let clean = read_fixture("roms/snes/cputest-basic.sfc");
    let cases = [
        (
            "cputest-basic.fig",
            HeaderKind::SnesCopier(Copier::ProFighter),
        ),
        (
            "cputest-basic.gd3_sf2cpu",
            HeaderKind::SnesCopier(Copier::GameDoctor),
        ),
        (
            "cputest-basic.smc",
            HeaderKind::SnesCopier(Copier::SuperWildCard),
        ),
        (
            "cputest-basic.swc",
            HeaderKind::SnesCopier(Copier::SuperWildCard),
        ),
        (
            "cputest-basic.ufo",
            HeaderKind::SnesCopier(Copier::SuperUfo),
        ),
    ];
    for (name, header) in cases {
        let rel = format!("roms/snes/{name}");
        // The .gd3_sf2cpu extension says nothing: content detection finds it.
        let layout = detected(&rel);
        assert_eq!(layout.system, SystemType::Snes, "{name}");
        assert_eq!(layout.header, Some(header), "{name}");
        assert_eq!(layout.interleave, Interleave::None, "{name}");
        assert_eq!(layout.normalized_len(), clean.len(), "{name}");
        let raw = read_fixture(&rel);
        let norm = system::normalize(&raw, &layout).unwrap();
        assert!(
            norm == clean.as_slice(),
            "{name} differs from the clean ROM"
        );
        // The copier header is dropped in the deinterleaved image too.
        let restored = system::restore(&norm, &layout).unwrap();
        assert!(restored == clean.as_slice(), "{name}: deinterleaved");
    }
}

#[test]
fn every_n64_byte_order_normalizes_to_the_z64() {
    let z64 = read_fixture("roms/n64/bigbass1997_minimal.z64");
    for (ext, order) in [
        ("z64", ByteOrder::Big),
        ("v64", ByteOrder::Swapped16),
        ("n64", ByteOrder::Little32),
    ] {
        let rel = format!("roms/n64/bigbass1997_minimal.{ext}");
        let layout = detected(&rel);
        assert_eq!((layout.system, layout.byte_order), (SystemType::N64, order));
        assert!(normalized(&rel, SystemType::N64) == z64, "{ext}");
    }
}

#[test]
fn lynx_header_is_dropped_then_put_back() {
    let lnx = read_fixture("roms/lynx/cc65_tgi_hello.lnx");
    let lyx = read_fixture("roms/lynx/cc65_tgi_hello.lyx");
    let layout = system::analyze(&lnx, SystemType::Lynx).unwrap();
    assert_eq!(layout.header, Some(HeaderKind::Lnx));
    let norm = system::normalize(&lnx, &layout).unwrap();
    assert_eq!(norm.as_ref(), lyx.as_slice());
    assert_eq!(
        system::restore(&norm, &layout).unwrap().as_ref(),
        lnx.as_slice()
    );
    assert_eq!(layout.restored_len(norm.len()), lnx.len());
}

#[test]
fn nes_containers_hold_the_same_prg_and_chr() {
    // The iNES file declares 16 KiB PRG + 8 KiB CHR and carries 4 KiB of
    // zeros after them; UNIF holds exactly PRG + CHR; uCON64's FFE pads PRG
    // to 32 KiB. NINJA's rules keep each container's bytes as they are.
    let ines = normalized("roms/nes/nes15-NTSC.nes", SystemType::Nes);
    assert_eq!(ines.len(), 28672);
    assert!(ines[24576..].iter().all(|&b| b == 0));
    let (prg, chr) = (&ines[..16384], &ines[16384..24576]);

    let unif = normalized("roms/nes/nes15-NTSC.unf", SystemType::Nes);
    assert_eq!(unif.len(), 24576);
    assert_eq!(&unif[..16384], prg);
    assert_eq!(&unif[16384..], chr);

    let ffe = normalized("roms/nes/nes15-NTSC.ffe", SystemType::Nes);
    assert_eq!(ffe.len(), 45056);
    assert_eq!(&ffe[..16384], prg);
    assert_eq!(&ffe[32768..40960], chr);
}

#[test]
fn deinterleaved_nes_keeps_its_container() {
    // NINJA 2.0's write-back keeps every NES container, FFE included; the
    // deinterleaved image emulators get is the same but for FFE, which is
    // made an iNES file (tests/ffe_ines.rs).
    for name in [
        "nes15-NTSC.nes",
        "nes15-NTSC.ffe",
        "nes15-NTSC.unf",
        "cc65_hello.nes",
    ] {
        let rel = format!("roms/nes/{name}");
        let raw = read_fixture(&rel);
        let playable = detected(&rel);
        let layout = playable.ninja_write_back();
        let norm = system::normalize(&raw, &layout).unwrap();
        let restored = system::restore(&norm, &layout).unwrap();
        assert_eq!(restored.as_ref(), raw.as_slice(), "{name}");
        assert_eq!(layout.restored_len(norm.len()), raw.len(), "{name}");
        if name.ends_with(".ffe") {
            assert!(playable.conversion.is_some(), "{name}");
        } else {
            assert_eq!(playable, layout, "{name}");
        }
    }
}

#[test]
fn plain_dumps_of_other_systems_are_unchanged() {
    let cases = [
        ("roms/gb/sdcc_makebin.gbc", SystemType::Gb),
        (
            "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb",
            SystemType::Gb,
        ),
        ("roms/sms_gg/sdcc_makebin_export.sms", SystemType::Sms),
        ("roms/sms_gg/sdcc_makebin_intl.gg", SystemType::Sms),
        ("roms/pce/cc65_hello.pce", SystemType::Pce),
        ("roms/snes/cputest-full.sfc", SystemType::Snes),
    ];
    for (rel, system) in cases {
        let raw = read_fixture(rel);
        let layout = detected(rel);
        assert_eq!(layout.system, system, "{rel}");
        assert_eq!(layout.header, None, "{rel}");
        assert!(system::normalize(&raw, &layout).unwrap() == raw.as_slice());
    }
}

/// Which views are the dump itself, byte for byte: the mount lets the kernel
/// read those straight from the backing file.
#[test]
fn views_that_are_the_file_itself() {
    // (fixture, normalized is the file, deinterleaved is the file)
    let cases = [
        ("roms/snes/cputest-full.sfc", true, true),
        ("roms/snes/cputest-basic.smc", false, false),
        ("roms/n64/bigbass1997_minimal.z64", true, true),
        ("roms/n64/bigbass1997_minimal.v64", false, false),
        ("roms/nes/nes15-NTSC.nes", false, true),
        ("roms/nes/nes15-NTSC.unf", false, false),
        // Made an iNES file: never the FFE file itself.
        ("roms/nes/nes15-NTSC.ffe", false, false),
        ("roms/lynx/cc65_tgi_hello.lnx", false, true),
        ("roms/lynx/cc65_tgi_hello.lyx", true, true),
        ("roms/gb/sdcc_makebin.gbc", true, true),
        ("roms/pce/cc65_hello.pce", true, true),
    ];
    for (rel, normalized_is_raw, deinterleaved_is_raw) in cases {
        let raw = read_fixture(rel);
        let layout = detected(rel);
        assert_eq!(
            (layout.normalized_is_raw(), layout.deinterleaved_is_raw()),
            (normalized_is_raw, deinterleaved_is_raw),
            "{rel}"
        );
        // A claim is never wrong; UNIF is rebuilt from its chunks, so it is
        // never claimed even where the result matches.
        let norm = system::normalize(&raw, &layout).unwrap();
        assert!(
            !normalized_is_raw || norm.as_ref() == raw.as_slice(),
            "{rel}"
        );
        let restored = system::restore(&norm, &layout).unwrap();
        assert!(
            !deinterleaved_is_raw || restored.as_ref() == raw.as_slice(),
            "{rel}"
        );
    }
}

/// The source MD5 of a single-entry NINJA2 patch (the MD5 of the
/// normalized input), and its system type.
fn rup_source(rel: &str) -> (SystemType, String) {
    let rup = read_fixture(rel);
    let mut at = 0x800;
    assert_eq!(rup[at], 0x01, "{rel}: OPEN");
    at += 1;
    let vlv = |at: &mut usize| -> u64 {
        let n = usize::from(rup[*at]);
        let value = rup[*at + 1..*at + 1 + n]
            .iter()
            .rev()
            .fold(0u64, |v, &b| v << 8 | u64::from(b));
        *at += 1 + n;
        value
    };
    let name_len = vlv(&mut at) as usize;
    at += name_len;
    let system = SystemType::from_code(rup[at]).unwrap();
    at += 1;
    vlv(&mut at);
    vlv(&mut at);
    (system, ninja_fs::digest::hex(&rup[at..at + 16]))
}

#[test]
fn ninja_vectors_inputs_normalize_to_the_patch_source_md5() {
    let cases = [
        ("snes_lorom.input_copierhdr.smc", "snes_lorom.rup"),
        ("snes_lorom.input_nsrt.smc", "snes_lorom.rup"),
        ("snes_lorom.src.sfc", "snes_lorom.rup"),
        ("n64.input.v64", "n64.rup"),
        ("gb.input_headered.gb", "gb.rup"),
        ("pce.input_headered.pce", "pce.rup"),
        ("lynx.input_headered.lnx", "lynx.rup"),
        ("mega_smd.input.smd", "mega_smd.rup"),
        ("nes_unif.input.unf", "nes_unif.rup"),
        ("nes_unif.src.nes", "nes_unif.rup"),
        ("nes_ines_grow.src.nes", "nes_ines_grow.rup"),
        ("nes_ines_shrink.src.nes", "nes_ines_shrink.rup"),
        (
            "nes_ffe_input_for_nes_ines_shrink.nes",
            "nes_ines_shrink.rup",
        ),
    ];
    for (input, rup) in cases {
        let (system, expected) = rup_source(&format!("rup-vectors/{rup}"));
        let rel = format!("rup-vectors/{input}");
        assert_eq!(md5_hex(&normalized(&rel, system)), expected, "{input}");
        // Detection without being told finds the same system.
        assert_eq!(detected(&rel).system, system, "{input}: detected");
    }
}

#[test]
fn nsrt_header_is_kept_and_other_copier_headers_are_not() {
    // NINJA 2.0's write-back keeps an NSRT header; the image emulators get
    // leaves it out (bsnes-mercury runs a headered image as garbage).
    let nsrt = read_fixture("rup-vectors/snes_lorom.input_nsrt.smc");
    let playable = system::analyze(&nsrt, SystemType::Snes).unwrap();
    let layout = playable.ninja_write_back();
    assert_eq!(layout.header, Some(HeaderKind::Nsrt));
    let norm = system::normalize(&nsrt, &layout).unwrap();
    assert_eq!(
        system::restore(&norm, &layout).unwrap().as_ref(),
        nsrt.as_slice()
    );
    assert_eq!(
        system::restore(&norm, &playable).unwrap().as_ref(),
        &nsrt[0x200..]
    );
    assert_eq!(playable.restored_len(norm.len()), nsrt.len() - 0x200);
    assert!(!playable.deinterleaved_is_raw());

    let plain = read_fixture("rup-vectors/snes_lorom.input_copierhdr.smc");
    let layout = system::analyze(&plain, SystemType::Snes).unwrap();
    assert!(matches!(layout.header, Some(HeaderKind::SnesCopier(_))));
    let norm = system::normalize(&plain, &layout).unwrap();
    assert_eq!(
        system::restore(&norm, &layout).unwrap().len(),
        plain.len() - 0x200
    );
}

#[test]
fn interleaved_20mbit_hirom_uses_the_chart() {
    let raw = read_fixture("rup-vectors/snes_hirom20.input_interleaved.sfc");
    let layout = system::analyze(&raw, SystemType::Snes).unwrap();
    assert_eq!(layout.interleave, Interleave::SnesChart20);
    let norm = system::normalize(&raw, &layout).unwrap();
    let md5s = String::from_utf8(read_fixture("rup-vectors/snes_hirom20.md5")).unwrap();
    let clean_md5 = md5s.split_whitespace().next().unwrap();
    assert_eq!(md5_hex(&norm), clean_md5);
    let (_, rup_md5) = rup_source("rup-vectors/snes_hirom20.rup");
    assert_eq!(md5_hex(&norm), rup_md5);
    // The header lands at 0xFFC0 once deinterleaved: a plain HiROM.
    let again = system::analyze(&norm, SystemType::Snes).unwrap();
    assert_eq!(again.interleave, Interleave::None);
    assert!(again.notes.is_empty());
}

#[test]
fn snes_beta_cart_is_served_as_is_with_a_note() {
    let raw = read_fixture("rup-vectors/snes_lorom.badchecksum.sfc");
    let layout = system::analyze(&raw, SystemType::Snes).unwrap();
    assert_eq!(layout.interleave, Interleave::None);
    assert_eq!(layout.notes.len(), 1);
    assert!(layout.notes[0].contains("beta cart"));
    assert!(system::normalize(&raw, &layout).unwrap() == raw.as_slice());
}

#[test]
fn bad_input_gives_clear_errors() {
    assert_eq!(
        system::analyze(b"", SystemType::Snes),
        Err(SystemError::Empty)
    );
    assert_eq!(
        system::analyze(b"abc", SystemType::Snes),
        Err(SystemError::TooSmall {
            system: "SNES",
            len: 3,
            need: 0x8000
        })
    );
    assert_eq!(
        system::analyze(b"NES\x1a\x01", SystemType::Nes),
        Err(SystemError::TooSmall {
            system: "iNES",
            len: 5,
            need: 16
        })
    );
    assert_eq!(
        system::analyze(&[0u8; 64], SystemType::Nes),
        Err(SystemError::NotNes)
    );
    let mut unif = b"UNIF".to_vec();
    unif.resize(0x20, 0);
    unif.extend_from_slice(b"PRG0\x00\x40\x00\x00abc");
    assert_eq!(
        system::analyze(&unif, SystemType::Nes),
        Err(SystemError::UnifChunkOverrun {
            id: "PRG0".into(),
            offset: 0x20,
            len: 0x4000,
            available: 3
        })
    );
    assert_eq!(
        system::analyze(&[0u8; 0x8000], SystemType::Gb),
        Err(SystemError::NoGameBoyLogo)
    );
    let mut smd = vec![0u8; 0x200 + 0x3000];
    smd[8] = 0xAA;
    smd[9] = 0xBB;
    assert_eq!(
        system::analyze(&smd, SystemType::Mega),
        Err(SystemError::SmdPartialBlock { len: 0x3000 })
    );
    // The same files are shown as raw when nobody forces a system.
    assert_eq!(system::detect(Some("x.unf"), &unif).system, SystemType::Raw);
    assert_eq!(
        system::detect(Some("x.sfc"), b"abc").system,
        SystemType::Raw
    );
}

#[test]
fn samples_normalize_to_their_plain_fixtures() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (
            "samples/roms/snes/cputest-basic.smc",
            "roms/snes/cputest-basic.sfc",
        ),
        (
            "samples/roms/n64/bigbass1997_minimal.v64",
            "roms/n64/bigbass1997_minimal.z64",
        ),
        (
            "samples/roms/sms/sdcc_makebin_export.smd",
            "roms/sms_gg/sdcc_makebin_export.sms",
        ),
        (
            "samples/roms/lynx/cc65_tgi_hello.lnx",
            "roms/lynx/cc65_tgi_hello.lyx",
        ),
        ("samples/roms/pce/cc65_hello.pce", "roms/pce/cc65_hello.pce"),
    ];
    for (sample, plain) in cases {
        let raw = std::fs::read(root.join(sample)).unwrap();
        let layout = system::detect(Some(sample), &raw);
        let norm = system::normalize(&raw, &layout).unwrap();
        assert!(norm.as_ref() == read_fixture(plain).as_slice(), "{sample}");
    }
}
