//! Property tests of the system engine: every container built from a clean
//! image normalizes back to it, restore then normalize is stable, and no
//! input of any shape makes the engine panic.

use ninja_fs::system::{self, Interleave, SystemType, convert};
use proptest::prelude::*;

const SNES_BLOCK: usize = 0x8000;

/// Normalizes `raw` as `system` and checks the result is `clean`, then that
/// the deinterleaved image normalizes to the same bytes again.
fn check_round_trip(raw: &[u8], system: SystemType, clean: &[u8]) -> Result<(), TestCaseError> {
    let layout = system::analyze(raw, system).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let norm = system::normalize(raw, &layout).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        norm.as_ref() == clean,
        "normalized image differs from the clean one"
    );
    prop_assert_eq!(layout.normalized_len(), clean.len());
    let restored =
        system::restore(&norm, &layout).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(restored.len(), layout.restored_len(norm.len()));
    let again =
        system::analyze(&restored, system).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let renorm =
        system::normalize(&restored, &again).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        renorm.as_ref() == clean,
        "normalize(restore(x)) differs from normalize(x)"
    );
    Ok(())
}

fn with_header(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out
}

/// A SNES image of `blocks` 32 KiB blocks with a valid internal header at
/// `base` (0x7FC0 LoROM, 0xFFC0 HiROM) and an invalid one at the other place.
fn snes_image(mut data: Vec<u8>, hirom: bool) -> Vec<u8> {
    let (base, other) = if hirom {
        (0xFFC0, 0x7FC0)
    } else {
        (0x7FC0, 0xFFC0)
    };
    let checksum = u16::from_le_bytes([data[base + 0x1E], data[base + 0x1F]]);
    data[base + 0x1C..base + 0x1E].copy_from_slice(&(!checksum).to_le_bytes());
    data[base + 0x15] = if hirom { 0x21 } else { 0x20 };
    if other + 0x20 <= data.len() {
        data[other + 0x1C..other + 0x20].fill(0);
    }
    data
}

fn copier_header(kind: u8) -> Vec<u8> {
    let mut header = vec![0u8; 0x200];
    match kind {
        0 => header[..16].copy_from_slice(b"GAME DOCTOR SF 3"),
        1 => header[8..16].copy_from_slice(b"SUPERUFO"),
        2 => header[8..11].copy_from_slice(&[0xAA, 0xBB, 0x04]),
        _ => header[0x1E8..0x1EC].copy_from_slice(b"NSRT"),
    }
    header
}

fn blocks(min: usize, max: usize, unit: usize) -> impl Strategy<Value = Vec<u8>> {
    (min..=max).prop_flat_map(move |n| proptest::collection::vec(any::<u8>(), n * unit))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn snes_lorom_containers(data in blocks(1, 8, SNES_BLOCK), kind in 0u8..4) {
        let clean = snes_image(data, false);
        check_round_trip(&clean, SystemType::Snes, &clean)?;
        check_round_trip(&with_header(&copier_header(kind), &clean), SystemType::Snes, &clean)?;
    }

    #[test]
    fn snes_hirom_containers(data in blocks(2, 9, SNES_BLOCK), kind in 0u8..4) {
        let clean = snes_image(data, true);
        check_round_trip(&clean, SystemType::Snes, &clean)?;
        let stored = convert::snes_interleave(&clean, Interleave::SnesGeneric);
        check_round_trip(&stored, SystemType::Snes, &clean)?;
        check_round_trip(&with_header(&copier_header(kind), &stored), SystemType::Snes, &clean)?;
    }

    #[test]
    fn n64_byte_orders(mut data in blocks(1, 64, 4)) {
        data[..4].copy_from_slice(&[0x80, 0x37, 0x12, 0x40]);
        check_round_trip(&data, SystemType::N64, &data)?;
        for order in [system::ByteOrder::Swapped16, system::ByteOrder::Little32] {
            check_round_trip(&convert::from_big_endian(&data, order), SystemType::N64, &data)?;
        }
    }

    #[test]
    fn game_boy_smartcard(mut data in blocks(1, 4, 0x4000), header in proptest::collection::vec(any::<u8>(), 0x200)) {
        data[0x104..0x108].copy_from_slice(&[0xCE, 0xED, 0x66, 0x66]);
        check_round_trip(&data, SystemType::Gb, &data)?;
        check_round_trip(&with_header(&header, &data), SystemType::Gb, &data)?;
    }

    #[test]
    fn sega_smd(mut data in blocks(2, 6, 0x4000), mega in any::<bool>()) {
        let (at, magic, system): (usize, &[u8], _) = if mega {
            (0x100, b"SEGA", SystemType::Mega)
        } else {
            (0x7FF0, b"TMR SEGA", SystemType::Sms)
        };
        data[at..at + magic.len()].copy_from_slice(magic);
        check_round_trip(&data, system, &data)?;
        let mut header = vec![0u8; 0x200];
        header[8] = 0xAA;
        header[9] = 0xBB;
        let smd = with_header(&header, &convert::smd_interleave(&data));
        check_round_trip(&smd, system, &data)?;
        prop_assert_eq!(system::detect(Some("game.bin"), &smd).system, system);
    }

    #[test]
    fn pce_magic_griffin(data in blocks(1, 8, 0x1000), header in proptest::collection::vec(any::<u8>(), 0x200)) {
        // Data whose first bytes read as code only once bit-reversed is a
        // US TurboGrafx-16 dump, put back in order (tested in pce.rs and
        // tests/revert_pce_exhirom.rs): not a round trip.
        prop_assume!(!system::analyze(&data, SystemType::Pce).unwrap().bits_reversed);
        check_round_trip(&data, SystemType::Pce, &data)?;
        check_round_trip(&with_header(&header, &data), SystemType::Pce, &data)?;
    }

    #[test]
    fn lynx_lnx(data in proptest::collection::vec(any::<u8>(), 1..4096), rest in proptest::collection::vec(any::<u8>(), 60)) {
        let header = with_header(b"LYNX", &rest);
        let raw = with_header(&header, &data);
        check_round_trip(&raw, SystemType::Lynx, &data)?;
        // The LNX header comes back in the deinterleaved image.
        let layout = system::analyze(&raw, SystemType::Lynx).unwrap();
        let restored = system::restore(&data, &layout).unwrap();
        prop_assert_eq!(restored.as_ref(), raw.as_slice());
    }

    #[test]
    fn nes_containers(
        prg in proptest::collection::vec(any::<u8>(), 1..0x3000),
        chr in proptest::collection::vec(any::<u8>(), 0..0x2000),
        chr_first in any::<bool>(),
    ) {
        let clean: Vec<u8> = prg.iter().chain(&chr).copied().collect();
        let mut ines = b"NES\x1a\x01\x01\x00\x00".to_vec();
        ines.resize(16, 0);
        check_round_trip(&with_header(&ines, &clean), SystemType::Nes, &clean)?;
        let mut ffe = vec![0u8; 0x200];
        ffe[8] = 0xAA;
        ffe[9] = 0xBB;
        check_round_trip(&with_header(&ffe, &clean), SystemType::Nes, &clean)?;

        // UNIF with a board chunk between ROM chunks, in the order asked for.
        let chunk = |id: &[u8], data: &[u8]| {
            let mut out = id.to_vec();
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            out
        };
        let mut unif = b"UNIF".to_vec();
        unif.resize(0x20, 0);
        type Chunk<'a> = (&'a [u8], &'a [u8]);
        let (first, second): (Chunk, Chunk) = if chr_first {
            ((b"CHR0", &chr), (b"PRG0", &prg))
        } else {
            ((b"PRG0", &prg), (b"CHR0", &chr))
        };
        unif.extend(chunk(first.0, first.1));
        unif.extend(chunk(b"MAPR", b"NES-NROM-128\0"));
        unif.extend(chunk(second.0, second.1));
        unif.extend(chunk(b"MIRR", &[1]));
        let in_file_order: Vec<u8> = first.1.iter().chain(second.1).copied().collect();
        check_round_trip(&unif, SystemType::Nes, &in_file_order)?;
        let layout = system::analyze(&unif, SystemType::Nes).unwrap();
        let restored = system::restore(&in_file_order, &layout).unwrap();
        prop_assert_eq!(restored.as_ref(), unif.as_slice());
    }
}

/// Bytes shaped like the headers the detectors look for, so that arbitrary
/// input reaches deep into each parser.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<&'static [u8]> = vec![
        b"",
        b"NES",
        b"NES\x1a",
        b"UNIF",
        b"LYNX",
        b"FDS\x1a",
        &[0x80, 0x37, 0x12, 0x40],
        &[0x37, 0x80, 0x40, 0x12],
        &[0x40, 0x12, 0x37, 0x80],
        b"GAME DOCTOR SF 3",
        b"\0\0\0\0\0\0\0\0\xAA\xBB",
    ];
    let sizes = prop_oneof![
        0usize..600,
        Just(0x7FFF),
        Just(0x8000),
        Just(0x8200),
        Just(0x8201),
        Just(0x10200),
        Just(0x4200),
    ];
    (proptest::sample::select(prefixes), sizes, any::<u64>()).prop_map(|(prefix, size, seed)| {
        let mut state = seed | 1;
        let mut data: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let n = prefix.len().min(data.len());
        data[..n].copy_from_slice(&prefix[..n]);
        data
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_input_panics_any_system(raw in hostile_bytes()) {
        for system in SystemType::ALL {
            if let Ok(layout) = system::analyze(&raw, system) {
                let norm = system::normalize(&raw, &layout).unwrap();
                prop_assert_eq!(norm.len(), layout.normalized_len());
                let restored = system::restore(&norm, &layout).unwrap();
                prop_assert_eq!(restored.len(), layout.restored_len(norm.len()));
                // The mount hands these views to the kernel as the backing
                // file itself: the claim must never be wrong.
                if layout.normalized_is_raw() {
                    prop_assert!(norm.as_ref() == raw.as_slice());
                }
                if layout.deinterleaved_is_raw() {
                    prop_assert!(restored.as_ref() == raw.as_slice());
                }
                let _ = system::describe(&raw, &norm, &layout);
            }
        }
        let layout = system::detect(Some("any.bin"), &raw);
        prop_assert!(system::normalize(&raw, &layout).is_ok());
        prop_assert!(system::normalize(&raw[..raw.len() / 2], &layout).is_err() || raw.len() < 2);
    }
}

/// The three charts on images of their exact sizes (too big for many cases).
#[test]
fn snes_charts_round_trip() {
    for (megabits, scheme) in [
        (20, Interleave::SnesChart20),
        (24, Interleave::SnesChart24),
        (48, Interleave::SnesChart48),
    ] {
        let len = megabits * 0x2_0000;
        let data: Vec<u8> = (0..len).map(|i| (i / SNES_BLOCK * 7 + i) as u8).collect();
        let mut clean = snes_image(data, true);
        if megabits == 48 {
            // An ExHiROM keeps its header at 0x40FFC0; the chart brings that block first.
            let base = 0x40_FFC0;
            clean[base + 0x15] = 0x25;
            clean[base + 0x1C..base + 0x20].copy_from_slice(&[0xFF, 0xFF, 0, 0]);
            clean[0xFFC0 + 0x1C..0xFFC0 + 0x20].fill(0);
        }
        let stored = convert::snes_interleave(&clean, scheme);
        let layout = system::analyze(&stored, SystemType::Snes).unwrap();
        assert_eq!(layout.interleave, scheme, "{megabits} Mbit");
        assert!(system::normalize(&stored, &layout).unwrap() == clean.as_slice());

        // A Super UFO never used the charts: the generic scheme applies.
        let ufo_stored = convert::snes_interleave(&clean, Interleave::SnesGeneric);
        let raw = with_header(&copier_header(1), &ufo_stored);
        let layout = system::analyze(&raw, SystemType::Snes).unwrap();
        if megabits != 48 {
            assert_eq!(
                layout.interleave,
                Interleave::SnesGeneric,
                "UFO {megabits} Mbit"
            );
            assert!(system::normalize(&raw, &layout).unwrap() == clean.as_slice());
        }
    }
}
