//! Nintendo 64: big-endian (.z64), byte-swapped (.v64) and little-endian
//! (.n64) dumps; the common format is big-endian.

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
