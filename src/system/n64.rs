//! Nintendo 64: big-endian (.z64), byte-swapped (.v64) and little-endian
//! (.n64) dumps; the common format is big-endian.

use super::checksum::{ChecksumField, ChecksumStatus, Endian};
use super::{ByteOrder, Layout, SystemType};

/// The first word of every N64 ROM (PI bus settings), in each byte order.
const MAGIC_BIG: [u8; 4] = [0x80, 0x37, 0x12, 0x40];
const MAGIC_SWAPPED16: [u8; 4] = [0x37, 0x80, 0x40, 0x12];
const MAGIC_LITTLE32: [u8; 4] = [0x40, 0x12, 0x37, 0x80];

pub(super) fn byte_order(raw: &[u8]) -> Option<ByteOrder> {
    match raw.get(..4)? {
        m if m == MAGIC_BIG => Some(ByteOrder::Big),
        m if m == MAGIC_SWAPPED16 => Some(ByteOrder::Swapped16),
        m if m == MAGIC_LITTLE32 => Some(ByteOrder::Little32),
        _ => None,
    }
}

pub(super) fn analyze(raw: &[u8]) -> Layout {
    let mut layout = Layout::plain(SystemType::N64, raw);
    match byte_order(raw) {
        Some(order) => layout.byte_order = order,
        // NINJA swapped only on the v64 magic and took anything else as is.
        None => layout.notes.push(
            "no N64 boot word (80 37 12 40 in any byte order) at the start: taken as big-endian"
                .to_string(),
        ),
    }
    layout
}

/// The big-endian image. A trailing partial unit (an odd byte) is kept as is.
pub(super) fn to_big_endian(data: &[u8], order: ByteOrder) -> Vec<u8> {
    let mut out = data.to_vec();
    // Whole 64-bit words at a time: the compiler turns these into vector
    // shuffles, where a per-pair swap stays scalar.
    let convert: fn(u64) -> u64 = match order {
        ByteOrder::Big => return out,
        ByteOrder::Swapped16 => {
            |w| ((w & 0x00FF_00FF_00FF_00FF) << 8) | ((w >> 8) & 0x00FF_00FF_00FF_00FF)
        }
        ByteOrder::Little32 => |w| {
            let swapped = w.swap_bytes();
            swapped.rotate_left(32)
        },
    };
    let mut words = out.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&convert(u64::from_ne_bytes(bytes)).to_ne_bytes());
    }
    let tail = words.into_remainder();
    match order {
        ByteOrder::Swapped16 => tail.chunks_exact_mut(2).for_each(|pair| pair.swap(0, 1)),
        ByteOrder::Little32 => tail.chunks_exact_mut(4).for_each(|word| word.reverse()),
        ByteOrder::Big => {}
    }
    out
}

/// Byte order conversions are their own inverse.
pub fn from_big_endian(data: &[u8], order: ByteOrder) -> Vec<u8> {
    to_big_endian(data, order)
}

pub(super) fn describe(normalized: &[u8], out: &mut super::Fields) {
    let Some(header) = normalized.get(..0x40) else {
        return;
    };
    out.push((
        "title",
        crate::text::padded_title(&header[0x20..0x34]).into(),
    ));
    let code = crate::text::bytes_as_text(&header[0x3B..0x3F]);
    out.push(("game_code", code.into()));
    let version = header[0x3F];
    out.push_text(
        "version",
        version,
        format!("{version} (release 1.{version})"),
    );
    let crc1 = u32::from_be_bytes([header[0x10], header[0x11], header[0x12], header[0x13]]);
    let crc2 = u32::from_be_bytes([header[0x14], header[0x15], header[0x16], header[0x17]]);
    out.push_text(
        "crc1",
        format!("{crc1:08x}"),
        format!("{crc1:08x} (stored boot checksum, first word)"),
    );
    out.push_text(
        "crc2",
        format!("{crc2:08x}"),
        format!("{crc2:08x} (stored boot checksum, second word)"),
    );
    match cic(normalized) {
        Some((cic, _)) => out.push_text(
            "boot_code",
            format!("CIC-NUS-{cic}"),
            format!("CIC-NUS-{cic} (told by the boot code's CRC32)"),
        ),
        None => out.push_text(
            "boot_code",
            "unknown",
            "unknown: no CIC 6101/6102/6103/6105/6106 boot code, so the CRCs are not checked",
        ),
    }
    if let Some(status) = checksum_status(normalized) {
        out.push(("crc_valid", status.holds().into()));
    }
}

/// The boot chips (CIC) whose CRC this knows, each identified by the
/// CRC32 of the boot code at 0x40..0x1000 that pairs with it (as the
/// n64crc tool identifies them), with the seed its CRC starts from.
const CICS: [(u32, u16, u32); 5] = [
    (0x6170_A4A1, 6101, 0xF8CA_4DDC),
    (0x90BB_6CB5, 6102, 0xF8CA_4DDC),
    (0x0B05_0EE0, 6103, 0xA388_6759),
    (0x98BC_2C86, 6105, 0xDF26_F436),
    (0xACC8_580A, 6106, 0x1FEA_617A),
];

const BOOT_CODE: std::ops::Range<usize> = 0x40..0x1000;
/// The CRC covers the first MiB after the boot code.
const CRC_START: usize = 0x1000;
const CRC_END: usize = 0x10_1000;

/// The boot chip the image's boot code pairs with, if one of [`CICS`].
fn cic(image: &[u8]) -> Option<(u16, u32)> {
    let crc = crc32fast::hash(image.get(BOOT_CODE)?);
    CICS.iter()
        .find(|(boot, ..)| *boot == crc)
        .map(|&(_, cic, seed)| (cic, seed))
}

/// CRC1 and CRC2 as the boot chip `cic` computes them over the first MiB
/// after the boot code.
fn crcs(image: &[u8], cic: u16, seed: u32) -> Option<(u32, u32)> {
    let data = image.get(CRC_START..CRC_END)?;
    let word = |at: usize| {
        image
            .get(at..at + 4)
            .map_or(0, |w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let (mut t1, mut t2, mut t3, mut t4, mut t5, mut t6) = (seed, seed, seed, seed, seed, seed);
    for (i, chunk) in data.chunks_exact(4).enumerate() {
        let d = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let (sum, carried) = t6.overflowing_add(d);
        if carried {
            t4 = t4.wrapping_add(1);
        }
        t6 = sum;
        t3 ^= d;
        let r = d.rotate_left(d & 0x1F);
        t5 = t5.wrapping_add(r);
        t2 ^= if t2 > d { r } else { t6 ^ d };
        t1 = t1.wrapping_add(if cic == 6105 {
            // 6105 mixes in words of its own boot code.
            let offset = CRC_START + i * 4;
            word(0x750 + (offset & 0xFF)) ^ d
        } else {
            t5 ^ d
        });
    }
    Some(match cic {
        6103 => ((t6 ^ t4).wrapping_add(t3), (t5 ^ t2).wrapping_add(t1)),
        6106 => (
            t6.wrapping_mul(t4).wrapping_add(t3),
            t5.wrapping_mul(t2).wrapping_add(t1),
        ),
        _ => (t6 ^ t4 ^ t3, t5 ^ t2 ^ t1),
    })
}

/// CRC1 (0x10) and CRC2 (0x14) of a big-endian N64 image whose boot code
/// is one of a known boot chip, and at least the MiB they cover.
pub(super) fn checksum_status(image: &[u8]) -> Option<ChecksumStatus> {
    let (cic, seed) = cic(image)?;
    let (crc1, crc2) = crcs(image, cic, seed)?;
    let field = |name, offset: usize, computed| {
        Some(ChecksumField {
            name,
            offset,
            width: 4,
            endian: Endian::Big,
            stored: u32::from_be_bytes(image.get(offset..offset + 4)?.try_into().ok()?),
            computed,
        })
    };
    Some(ChecksumStatus {
        kind: format!("N64 CRC1 and CRC2 (CIC-NUS-{cic} boot code)"),
        fields: vec![
            field("N64 CRC1", 0x10, crc1)?,
            field("N64 CRC2", 0x14, crc2)?,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_conversions_match_the_byte_definitions() {
        let data: Vec<u8> = (0..23u8).collect();
        let mut swapped = data.clone();
        swapped[..22].chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
        assert_eq!(to_big_endian(&data, ByteOrder::Swapped16), swapped);
        let mut reversed = data.clone();
        reversed[..20].chunks_exact_mut(4).for_each(|w| w.reverse());
        assert_eq!(to_big_endian(&data, ByteOrder::Little32), reversed);
    }
}
