//! Game Boy Advance: read as raw images (NINJA 2.0 had no GBA type), but
//! its cartridge header carries a complement byte that is checked here.

use super::checksum::{ChecksumField, ChecksumStatus, Endian};
use super::{Fields, bytes_at};

/// The first bytes of the Nintendo logo every GBA cartridge carries at 4.
const LOGO_START: [u8; 4] = [0x24, 0xFF, 0xAE, 0x51];
/// The fixed value at 0xb2 every GBA header has.
const FIXED_AT: usize = 0xB2;
const FIXED: u8 = 0x96;
const COMPLEMENT_AT: usize = 0xBD;

/// Whether `image` starts with a GBA cartridge header.
fn looks_like_gba(image: &[u8]) -> bool {
    image.len() > COMPLEMENT_AT && image[FIXED_AT] == FIXED && bytes_at(image, 4, &LOGO_START)
}

/// The complement byte at 0xbd: minus the sum of 0xa0..=0xbc, less 0x19.
fn complement(image: &[u8]) -> u8 {
    image[0xA0..COMPLEMENT_AT]
        .iter()
        .fold(0u8, |x, &b| x.wrapping_sub(b))
        .wrapping_sub(0x19)
}

/// The header complement of an image with a GBA cartridge header.
pub(super) fn checksum_status(image: &[u8]) -> Option<ChecksumStatus> {
    if !looks_like_gba(image) {
        return None;
    }
    Some(ChecksumStatus {
        kind: "GBA header complement".into(),
        fields: vec![ChecksumField {
            name: "GBA header complement",
            offset: COMPLEMENT_AT,
            width: 1,
            endian: Endian::Big,
            stored: u32::from(image[COMPLEMENT_AT]),
            computed: u32::from(complement(image)),
        }],
    })
}

/// A raw image with a GBA header: its title, game code and complement.
pub(super) fn describe(image: &[u8], out: &mut Fields) {
    if !looks_like_gba(image) {
        return;
    }
    out.push((
        "gba_title",
        crate::text::padded_title(&image[0xA0..0xAC]).into(),
    ));
    out.push((
        "gba_game_code",
        crate::text::bytes_as_text(&image[0xAC..0xB0]).into(),
    ));
    let stored = image[COMPLEMENT_AT];
    out.push_text(
        "gba_header_complement",
        format!("{stored:#04x}"),
        format!("{stored:#04x} (stored, over 0xa0-0xbc)"),
    );
    out.push((
        "gba_header_complement_valid",
        (stored == complement(image)).into(),
    ));
}
