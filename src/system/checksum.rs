//! Internal checksums: the fields a console's header keeps about its own
//! image (SNES checksum and complement, Game Boy header and global sums,
//! Mega Drive and Master System sums, N64 CRC1/CRC2, GBA header
//! complement). A patch leaves them wrong more often than not; some
//! emulators and flash carts warn or refuse then.
//!
//! Each family computes its fields in its own module; this one dispatches
//! and writes fixes. Images are as emulators play them: deinterleaved,
//! headerless (a SNES image may keep a 512-byte header), big-endian.

use std::fmt;

use super::{SystemType, gb, gba, n64, sega, snes};

/// How a field's bytes hold its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Big,
    Little,
}

/// One checksum field of an image: where it is, what it holds, and what
/// it should hold for the image as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumField {
    /// What it is called, for people: "SNES checksum".
    pub name: &'static str,
    /// Where it is in the image given, and how many bytes it takes.
    pub offset: usize,
    pub width: usize,
    pub endian: Endian,
    pub stored: u32,
    pub computed: u32,
}

impl ChecksumField {
    pub fn holds(&self) -> bool {
        self.stored == self.computed
    }

    /// `value` in hex, as wide as the field.
    pub fn hex(&self, value: u32) -> String {
        format!("{value:#0width$x}", width = self.width * 2 + 2)
    }

    fn write(&self, image: &mut [u8], value: u32) {
        let bytes = match self.endian {
            Endian::Big => value.to_be_bytes(),
            Endian::Little => value.to_le_bytes(),
        };
        let bytes = match self.endian {
            Endian::Big => &bytes[4 - self.width..],
            Endian::Little => &bytes[..self.width],
        };
        if let Some(target) = image.get_mut(self.offset..self.offset + self.width) {
            target.copy_from_slice(bytes);
        }
    }
}

/// The checksum fields of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumStatus {
    /// Which checksum it is: "SNES checksum and complement".
    pub kind: String,
    pub fields: Vec<ChecksumField>,
}

impl ChecksumStatus {
    /// Whether every field holds what the image makes of it.
    pub fn holds(&self) -> bool {
        self.fields.iter().all(ChecksumField::holds)
    }
}

/// A field [`fix_checksum`] rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub name: &'static str,
    pub offset: usize,
    pub width: usize,
    pub old: u32,
    pub new: u32,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.width * 2 + 2;
        write!(
            f,
            "{} at {:#x}: {:#0digits$x} -> {:#0digits$x}",
            self.name, self.offset, self.old, self.new
        )
    }
}

/// Whether images of `system` carry an internal checksum ninja-fs checks.
/// Raw images may too: a Game Boy Advance image is read as raw, and its
/// header complement is found by content.
pub fn has_checksum(system: SystemType) -> bool {
    matches!(
        system,
        SystemType::Snes | SystemType::N64 | SystemType::Gb | SystemType::Sms | SystemType::Mega
    )
}

/// The internal checksum of `image`, an image of `system` as emulators
/// play it, or `None` when it has no header that holds one.
pub fn checksum_status(image: &[u8], system: SystemType) -> Option<ChecksumStatus> {
    match system {
        SystemType::Snes => snes::checksum_status(image),
        SystemType::N64 => n64::checksum_status(image),
        SystemType::Gb => gb::checksum_status(image),
        SystemType::Sms | SystemType::Mega => sega::checksum_status(image, system),
        SystemType::Raw => gba::checksum_status(image),
        SystemType::Nes | SystemType::Fds | SystemType::Pce | SystemType::Lynx => None,
    }
}

/// Rewrites the checksum fields of `image` that do not hold, and says
/// which. An image whose fields hold, or that has none, is left as it is.
pub fn fix_checksum(image: &mut [u8], system: SystemType) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    // Field by field, reading the status again after each write: a later
    // field (the Game Boy's global sum) may cover an earlier one.
    let mut index = 0;
    while let Some(status) = checksum_status(image, system) {
        let Some(field) = status.fields.get(index) else {
            break;
        };
        if !field.holds() {
            field.write(image, field.computed);
            changes.push(FieldChange {
                name: field.name,
                offset: field.offset,
                width: field.width,
                old: field.stored,
                new: field.computed,
            });
        }
        index += 1;
    }
    changes
}

/// Why the checksum of an image cannot be checked or fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error(
        "{0} images carry no internal checksum (ninja-fs fixes those of SNES, Game Boy, \
         Mega Drive, Master System, Game Gear, N64 and GBA images)"
    )]
    NoneInSystem(&'static str),
    #[error(
        "no GBA cartridge header, and a raw image has no other internal checksum \
         (say --system if it is a ROM of another system)"
    )]
    NoGbaHeader,
    #[error(
        "the N64 CRCs cannot be computed: the image is shorter than the MiB after its boot \
         code, or its boot code is none of CIC 6101, 6102, 6103, 6105, 6106"
    )]
    N64Unknown,
    #[error("no {0} internal header with a checksum is found in the image")]
    NoHeader(&'static str),
}

/// What [`fix_checked`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fixed {
    /// These fields were rewritten.
    Changed(Vec<FieldChange>),
    /// Every field held already; nothing was written.
    Held(ChecksumStatus),
}

impl Fixed {
    /// One line per field changed, or one saying all held, for people.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Fixed::Changed(changes) => changes.iter().map(|c| format!("fixed {c}")).collect(),
            Fixed::Held(status) => {
                let fields: Vec<String> = status
                    .fields
                    .iter()
                    .map(|f| format!("{} {}", f.name, f.hex(f.stored)))
                    .collect();
                let verb = if fields.len() == 1 { "holds" } else { "hold" };
                vec![format!(
                    "{} {verb} already: nothing changed",
                    fields.join(" and ")
                )]
            }
        }
    }
}

/// [`fix_checksum`], saying why when `image` has no checksum to fix.
pub fn fix_checked(image: &mut [u8], system: SystemType) -> Result<Fixed, ChecksumError> {
    let Some(status) = checksum_status(image, system) else {
        return Err(match system {
            SystemType::Raw => ChecksumError::NoGbaHeader,
            SystemType::N64 => ChecksumError::N64Unknown,
            system if has_checksum(system) => ChecksumError::NoHeader(system.name()),
            system => ChecksumError::NoneInSystem(system.name()),
        });
    };
    if status.holds() {
        return Ok(Fixed::Held(status));
    }
    Ok(Fixed::Changed(fix_checksum(image, system)))
}

/// A status in words, all of one width (a report is sized before its
/// images are built).
pub fn status_words(status: Option<&ChecksumStatus>) -> &'static str {
    match status.map(ChecksumStatus::holds) {
        Some(true) => "yes, stored = computed",
        Some(false) => "no, stored != computed",
        None => "none (no header found)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(rel: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/roms/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// (name, stored, computed) of every field.
    fn values(status: &ChecksumStatus) -> Vec<(&'static str, u32, u32)> {
        status
            .fields
            .iter()
            .map(|f| (f.name, f.stored, f.computed))
            .collect()
    }

    /// Fixes `image`, checks the fix holds and that fixing again changes
    /// nothing, and gives the changes.
    fn fixed(image: &mut [u8], system: SystemType) -> Vec<FieldChange> {
        let changes = fix_checksum(image, system);
        if let Some(status) = checksum_status(image, system) {
            assert!(status.holds(), "{status:?}");
        }
        assert_eq!(fix_checksum(image, system), []);
        changes
    }

    // The values below were computed by tests/checksum_reference.py, a
    // separate implementation; where a fixture's tool wrote its checksums
    // (makebin, rgbfix, the N64 toolchain), the stored values agree.

    #[test]
    fn snes_placeholder_checksums_are_found_and_fixed() {
        let mut image = fixture("snes/cputest-basic.sfc");
        let status = checksum_status(&image, SystemType::Snes).unwrap();
        assert_eq!(
            values(&status),
            [
                ("SNES checksum", 0xFFFF, 0x6477),
                ("SNES checksum complement", 0x0000, 0x9B88)
            ]
        );
        let before = image.clone();
        let changes = fixed(&mut image, SystemType::Snes);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "SNES checksum at 0x7fde: 0xffff -> 0x6477",
                "SNES checksum complement at 0x7fdc: 0x0000 -> 0x9b88"
            ]
        );
        let differing: Vec<usize> = (0..image.len())
            .filter(|&i| image[i] != before[i])
            .collect();
        assert_eq!(differing, [0x7FDC, 0x7FDD, 0x7FDE, 0x7FDF]);
        assert_eq!(&image[0x7FDC..0x7FE0], [0x88, 0x9B, 0x77, 0x64]);
        let full = fixture("snes/cputest-full.sfc");
        let status = checksum_status(&full, SystemType::Snes).unwrap();
        assert_eq!(status.fields[0].computed, 0x7AE6);
    }

    #[test]
    fn snes_header_behind_a_copier_header_is_fixed_in_place() {
        let mut image = fixture("snes/cputest-basic.sfc");
        image.splice(0..0, [0u8; 0x200]);
        let changes = fixed(&mut image, SystemType::Snes);
        assert_eq!(changes[0].offset, 0x200 + 0x7FDE);
        assert_eq!(&image[0x81DC..0x81E0], [0x88, 0x9B, 0x77, 0x64]);
        assert_eq!(image[..0x200], [0u8; 0x200]);
    }

    #[test]
    fn snes_without_a_header_is_left_alone() {
        let mut image = vec![0x5Au8; 0x10000];
        assert_eq!(checksum_status(&image, SystemType::Snes), None);
        assert_eq!(fix_checksum(&mut image, SystemType::Snes), []);
        assert_eq!(image, vec![0x5Au8; 0x10000]);
    }

    #[test]
    fn snes_mirrored_sizes_count_the_header_as_the_console_does() {
        // 3 MiB HiROM: the last MiB is mirrored to fill 4 MiB; the header
        // lies in the first 2 MiB and counts once.
        let mut image: Vec<u8> = (0..0x30_0000u32).map(|i| (i * 7 % 251) as u8).collect();
        image[0xFFD5] = 0x21;
        image[0xFFD7] = 0x0C;
        fixed(&mut image, SystemType::Snes);
        let main: u64 = image[..0x20_0000].iter().map(|&b| u64::from(b)).sum();
        let rest: u64 = image[0x20_0000..].iter().map(|&b| u64::from(b)).sum();
        let sum = ((main + 2 * rest) & 0xFFFF) as u16;
        assert_eq!(u16::from_le_bytes([image[0xFFDE], image[0xFFDF]]), sum);
        assert_eq!(u16::from_le_bytes([image[0xFFDC], image[0xFFDD]]), !sum);
    }

    #[test]
    fn game_boy_fixtures_hold_and_a_patch_is_fixed() {
        for (file, header, global) in [
            ("gb/mooneye_acceptance_bits_reg_f.gb", 0x2D, 0x468D),
            ("gb/mooneye_emulator-only_mbc1_ram_256Kb.gb", 0x25, 0xF5C7),
            ("gb/mooneye_emulator-only_mbc1_rom_1Mb.gb", 0x2A, 0x37DC),
            ("gb/mooneye_emulator-only_mbc1_rom_512Kb.gb", 0x2B, 0x3AC2),
            ("gb/sdcc_makebin_mbc1.gb", 0x30, 0xCA13),
            ("gb/sdcc_makebin.gbc", 0x78, 0x4B13),
        ] {
            let mut image = fixture(file);
            let status = checksum_status(&image, SystemType::Gb).unwrap();
            assert_eq!(
                values(&status),
                [
                    ("Game Boy header checksum", header, header),
                    ("Game Boy global checksum", global, global)
                ],
                "{file}"
            );
            let before = image.clone();
            assert_eq!(fixed(&mut image, SystemType::Gb), [], "{file}");
            assert_eq!(image, before);
        }
        // A patched title: both sums change, the global one covering the
        // header checksum's new value.
        let mut image = fixture("gb/mooneye_acceptance_bits_reg_f.gb");
        image[0x134] = image[0x134].wrapping_add(1);
        let changes = fixed(&mut image, SystemType::Gb);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        // The global sum is unchanged: the title byte gained what the
        // header checksum lost.
        assert_eq!(shown, ["Game Boy header checksum at 0x14d: 0x2d -> 0x2c"]);
        // A patched byte past the header: the global sum alone.
        assert_eq!(image[0x151], 0x31);
        image[0x151] = 0x34;
        let changes = fixed(&mut image, SystemType::Gb);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["Game Boy global checksum at 0x14e: 0x468d -> 0x4690"]
        );
    }

    #[test]
    fn master_system_and_game_gear_fixtures_hold() {
        for file in [
            "sms_gg/sdcc_makebin_export.sms",
            "sms_gg/sdcc_makebin_intl.gg",
            "sms_gg/sdcc_makebin_jp.sms",
        ] {
            let mut image = fixture(file);
            let status = checksum_status(&image, SystemType::Sms).unwrap();
            assert_eq!(values(&status), [("TMR SEGA checksum", 0x6DD7, 0x6DD7)]);
            image[0x100] ^= 0xFF;
            let changes = fixed(&mut image, SystemType::Sms);
            assert_eq!(changes.len(), 1);
            assert_eq!(changes[0].offset, 0x7FFA);
        }
    }

    #[test]
    fn mega_drive_sum_of_words() {
        let mut image = vec![0u8; 0x400];
        image[0x100..0x104].copy_from_slice(b"SEGA");
        for word in image[0x200..].chunks_exact_mut(2) {
            word.copy_from_slice(&[0x01, 0x02]);
        }
        // 256 words of 0x0102: 0x10200, kept to 16 bits.
        let status = checksum_status(&image, SystemType::Mega).unwrap();
        assert_eq!(values(&status), [("Mega Drive checksum", 0, 0x0200)]);
        let changes = fixed(&mut image, SystemType::Mega);
        assert_eq!(
            changes[0].to_string(),
            "Mega Drive checksum at 0x18e: 0x0000 -> 0x0200"
        );
        assert_eq!(image[0x18E..0x190], [0x02, 0x00]);
        // An odd last byte counts as a high byte.
        image.push(0x10);
        assert_eq!(
            checksum_status(&image, SystemType::Mega).unwrap().fields[0].computed,
            0x1200
        );
    }

    #[test]
    fn n64_fixture_holds_and_a_patch_is_fixed() {
        let mut image = fixture("n64/bigbass1997_minimal.z64");
        let status = checksum_status(&image, SystemType::N64).unwrap();
        assert_eq!(status.kind, "N64 CRC1 and CRC2 (CIC-NUS-6102 boot code)");
        assert_eq!(
            values(&status),
            [
                ("N64 CRC1", 0xF7EC_E806, 0xF7EC_E806),
                ("N64 CRC2", 0x707C_8F60, 0x707C_8F60)
            ]
        );
        image[0x2000..0x2004].copy_from_slice(b"hack");
        let changes = fixed(&mut image, SystemType::N64);
        let offsets: Vec<usize> = changes.iter().map(|c| c.offset).collect();
        assert_eq!(offsets, [0x10, 0x14]);
        // Too short for the MiB the CRC covers: not checked.
        assert_eq!(checksum_status(&image[..0x10_0000], SystemType::N64), None);
    }

    #[test]
    fn gba_header_complement() {
        let mut image = vec![0u8; 0x200];
        image[4..8].copy_from_slice(&[0x24, 0xFF, 0xAE, 0x51]);
        image[0xA0..0xAC].copy_from_slice(b"NINJA TEST  ");
        image[0xB2] = 0x96;
        let header_sum: u32 = image[0xA0..0xBD].iter().map(|&b| u32::from(b)).sum();
        let expected = (0u32.wrapping_sub(header_sum + 0x19) & 0xFF) as u8;
        let changes = fixed(&mut image, SystemType::Raw);
        assert_eq!(changes.len(), 1);
        assert_eq!(image[0xBD], expected);
        // Without the fixed 0x96 byte it is no GBA header.
        image[0xB2] = 0;
        assert_eq!(checksum_status(&image, SystemType::Raw), None);
    }

    #[test]
    fn systems_without_checksums_are_never_touched() {
        let mut image = fixture("nes/nes15-NTSC.nes");
        let before = image.clone();
        for system in [
            SystemType::Nes,
            SystemType::Fds,
            SystemType::Pce,
            SystemType::Lynx,
        ] {
            assert!(!has_checksum(system));
            assert_eq!(checksum_status(&image, system), None);
            assert_eq!(fix_checksum(&mut image, system), []);
        }
        assert_eq!(image, before);
    }

    /// Arbitrary bytes, with a system's header marks planted sometimes so
    /// the header paths run too.
    fn image_for(system: SystemType) -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(any::<u8>(), 0..0x12000),
            any::<bool>(),
        )
            .prop_map(move |(mut image, plant)| {
                let put = |image: &mut Vec<u8>, at: usize, bytes: &[u8]| {
                    if let Some(slot) = image.get_mut(at..at + bytes.len()) {
                        slot.copy_from_slice(bytes);
                    }
                };
                if plant {
                    match system {
                        SystemType::Snes => put(&mut image, 0x7FD5, &[0x20, 0, 0x08]),
                        SystemType::Gb => put(&mut image, 0x104, &[0xCE, 0xED, 0x66, 0x66]),
                        SystemType::Sms => {
                            put(&mut image, 0x7FF0, b"TMR SEGA");
                            put(&mut image, 0x7FFF, &[0x4E]);
                        }
                        SystemType::Mega => put(&mut image, 0x100, b"SEGA"),
                        SystemType::Raw => {
                            put(&mut image, 4, &[0x24, 0xFF, 0xAE, 0x51]);
                            put(&mut image, 0xB2, &[0x96]);
                        }
                        _ => {}
                    }
                }
                image
            })
    }

    fn check_fix(mut image: Vec<u8>, system: SystemType) {
        let status = checksum_status(&image, system);
        let before = image.clone();
        let changes = fix_checksum(&mut image, system);
        assert_eq!(changes.is_empty(), image == before);
        if status.as_ref().is_none_or(ChecksumStatus::holds) {
            assert_eq!(changes, []);
        }
        if let Some(after) = checksum_status(&image, system) {
            assert!(after.holds());
        }
        assert_eq!(fix_checksum(&mut image, system), []);
        for change in &changes {
            assert!(change.offset + change.width <= image.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn fixing_is_idempotent_and_never_panics(
            (system, image) in prop_oneof![
                Just(SystemType::Snes),
                Just(SystemType::Gb),
                Just(SystemType::Sms),
                Just(SystemType::Mega),
                Just(SystemType::Raw),
                Just(SystemType::N64),
                Just(SystemType::Nes),
            ]
            .prop_flat_map(|system| (Just(system), image_for(system)))
        ) {
            check_fix(image, system);
        }
    }

    #[test]
    fn status_words_are_one_width() {
        let field = ChecksumField {
            name: "x",
            offset: 0,
            width: 1,
            endian: Endian::Big,
            stored: 1,
            computed: 2,
        };
        let fails = ChecksumStatus {
            kind: "x".into(),
            fields: vec![field.clone()],
        };
        let holds = ChecksumStatus {
            kind: "x".into(),
            fields: vec![ChecksumField { stored: 2, ..field }],
        };
        let widths = [
            status_words(Some(&holds)).len(),
            status_words(Some(&fails)).len(),
            status_words(None).len(),
        ];
        assert_eq!(widths, [22, 22, 22]);
    }

    #[test]
    fn fields_are_written_in_their_byte_order() {
        let mut image = [0u8; 6];
        let field = |offset, width, endian| ChecksumField {
            name: "x",
            offset,
            width,
            endian,
            stored: 0,
            computed: 0,
        };
        field(0, 2, Endian::Little).write(&mut image, 0x1234);
        field(2, 2, Endian::Big).write(&mut image, 0x1234);
        field(4, 1, Endian::Big).write(&mut image, 0xAB);
        field(5, 4, Endian::Big).write(&mut image, 0xFFFF_FFFF); // past the end: ignored
        assert_eq!(image, [0x34, 0x12, 0x12, 0x34, 0xAB, 0]);
    }

    #[test]
    fn a_change_reads_as_old_and_new_values() {
        let change = FieldChange {
            name: "SNES checksum",
            offset: 0x7FDE,
            width: 2,
            old: 0xFFFF,
            new: 0x6477,
        };
        assert_eq!(
            change.to_string(),
            "SNES checksum at 0x7fde: 0xffff -> 0x6477"
        );
    }
}
