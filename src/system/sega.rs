//! Sega Master System / Game Gear and Mega Drive / Genesis: plain dumps and
//! Super Magic Drive (SMD) interleaved dumps.

use super::checksum::{ChecksumField, ChecksumStatus, Endian};
use super::{
    HeaderKind, Interleave, Layout, SystemError, SystemType, bytes_at, read_u16_be, read_u16_le,
};

const SMD_HEADER_LEN: usize = 0x200;
const SMD_BLOCK: usize = 0x4000;
const HALF_BLOCK: usize = SMD_BLOCK / 2;
const SMS_HEADER: usize = 0x7FF0;

fn is_plain(raw: &[u8]) -> bool {
    bytes_at(raw, 0x7FF4, b"SEGA") || bytes_at(raw, 0x100, b"SEGA")
}

pub(super) fn analyze(raw: &[u8], system: SystemType) -> Result<Layout, SystemError> {
    if is_plain(raw) {
        return Ok(Layout::plain(system, raw));
    }
    if bytes_at(raw, 8, &[0xAA, 0xBB]) && raw.len() >= SMD_HEADER_LEN {
        let data_len = raw.len() - SMD_HEADER_LEN;
        if !data_len.is_multiple_of(SMD_BLOCK) {
            return Err(SystemError::SmdPartialBlock { len: data_len });
        }
        let mut layout = Layout::headered(system, raw, HeaderKind::Smd, SMD_HEADER_LEN);
        layout.interleave = Interleave::Smd;
        return Ok(layout);
    }
    let mut layout = Layout::plain(system, raw);
    layout.notes.push(
        "no SEGA signature and no SMD header: taken as a plain dump (an unlicensed game, or a hacked interleaved one)"
            .to_string(),
    );
    Ok(layout)
}

/// Each 16 KiB block stores its odd bytes first, then its even bytes.
pub(super) fn smd_deinterleave(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for (block, target) in data
        .chunks_exact(SMD_BLOCK)
        .zip(out.chunks_exact_mut(SMD_BLOCK))
    {
        let (odd, even) = block.split_at(HALF_BLOCK);
        for ((pair, &o), &e) in target.chunks_exact_mut(2).zip(odd).zip(even) {
            pair[0] = e;
            pair[1] = o;
        }
    }
    out
}

/// The inverse of [`smd_deinterleave`]: how an SMD copier stores a dump.
pub fn smd_interleave(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for (block, target) in data
        .chunks_exact(SMD_BLOCK)
        .zip(out.chunks_exact_mut(SMD_BLOCK))
    {
        let (odd, even) = target.split_at_mut(HALF_BLOCK);
        for ((pair, o), e) in block.chunks_exact(2).zip(odd).zip(even) {
            *e = pair[0];
            *o = pair[1];
        }
    }
    out
}

pub(super) fn looks_like_mega(raw: &[u8]) -> bool {
    bytes_at(raw, 0x100, b"SEGA") || smd_block_has(raw, 0x100, b"SEGA")
}

pub(super) fn looks_like_sms(raw: &[u8]) -> bool {
    bytes_at(raw, 0x7FF0, b"TMR SEGA") || smd_block_has(raw, 0x7FF0, b"TMR SEGA")
}

/// Whether an SMD dump, once deinterleaved, holds `magic` at `at` (which must
/// fall in one block). Reads only that block.
fn smd_block_has(raw: &[u8], at: usize, magic: &[u8]) -> bool {
    if !bytes_at(raw, 8, &[0xAA, 0xBB]) {
        return false;
    }
    let block_start = SMD_HEADER_LEN + at / SMD_BLOCK * SMD_BLOCK;
    let Some(block) = raw.get(block_start..block_start + SMD_BLOCK) else {
        return false;
    };
    let plain = smd_deinterleave(block);
    bytes_at(&plain, at % SMD_BLOCK, magic)
}

pub(super) fn describe(normalized: &[u8], system: SystemType, out: &mut super::Fields) {
    if system == SystemType::Mega || bytes_at(normalized, 0x100, b"SEGA") {
        describe_mega(normalized, out);
    } else {
        describe_sms(normalized, out);
    }
}

/// A space-padded header text: runs of spaces made one, unprintable bytes
/// escaped (NUL padding is dropped first).
fn text(field: &[u8]) -> String {
    let end = field.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    crate::text::bytes_as_text(&field[..end])
        .split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_mega(normalized: &[u8], out: &mut super::Fields) {
    let Some(header) = normalized.get(0x100..0x200) else {
        return;
    };
    out.push(("console", text(&header[0x00..0x10]).into()));
    out.push(("copyright", text(&header[0x10..0x20]).into()));
    out.push(("title_domestic", text(&header[0x20..0x50]).into()));
    out.push(("title_overseas", text(&header[0x50..0x80]).into()));
    out.push(("serial", text(&header[0x80..0x8E]).into()));
    out.push(("region", text(&header[0xF0..0xF3]).into()));
    if let Some(stored) = read_u16_be(header, 0x8E) {
        let computed = mega_sum(normalized);
        out.push_text(
            "checksum",
            format!("{stored:#06x}"),
            format!("{stored:#06x} (stored; a sum of the words after 0x200)"),
        );
        out.push(("checksum_valid", (stored == computed).into()));
    }
}

/// ROM sizes an SMS header's size nibble declares; the checksum covers them.
fn sms_declared_size(code: u8) -> Option<usize> {
    Some(match code {
        0xA => 0x2000,
        0xB => 0x4000,
        0xC => 0x8000,
        0xD => 0xC000,
        0xE => 0x1_0000,
        0xF => 0x2_0000,
        0x0 => 0x4_0000,
        0x1 => 0x8_0000,
        0x2 => 0x10_0000,
        _ => return None,
    })
}

fn describe_sms(normalized: &[u8], out: &mut super::Fields) {
    let Some(header) = normalized.get(SMS_HEADER..SMS_HEADER + 0x10) else {
        return;
    };
    let region_code = header[0xF] >> 4;
    let region = match region_code {
        3 => "Master System, Japan",
        4 => "Master System, export",
        5 => "Game Gear, Japan",
        6 => "Game Gear, export",
        7 => "Game Gear, international",
        _ => "unknown",
    };
    out.push(("region", format!("{region_code} ({region})").into()));
    // The product code is BCD, low byte first, with a high digit in 0x7FFE.
    let product = format!(
        "{}{:02x}{:02x}",
        if header[0xE] >> 4 > 0 {
            (header[0xE] >> 4).to_string()
        } else {
            String::new()
        },
        header[0xD],
        header[0xC]
    );
    out.push(("product_code", product.into()));
    out.push(("version", (header[0xE] & 0x0F).into()));
    let size_code = header[0xF] & 0x0F;
    if let (Some(stored), Some(size)) = (read_u16_le(header, 0xA), sms_declared_size(size_code)) {
        out.push_bytes("rom_size_declared", size as u64);
        let computed = sms_sum(normalized, size);
        out.push_text(
            "checksum",
            format!("{stored:#06x}"),
            format!("{stored:#06x} (stored; a sum of the declared size's bytes)"),
        );
        out.push(("checksum_valid", (stored == computed).into()));
    }
}

/// The Mega Drive checksum: a sum of the big-endian words after the
/// 512-byte header (an odd last byte counts as a word's high byte).
fn mega_sum(image: &[u8]) -> u16 {
    image
        .get(0x200..)
        .unwrap_or_default()
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]))
        .fold(0u16, u16::wrapping_add)
}

/// The Master System checksum: a sum of the bytes of the declared size,
/// the 16-byte header left out (bytes past the image's end count as none).
fn sms_sum(image: &[u8], size: usize) -> u16 {
    let sum = |range: std::ops::Range<usize>| {
        let end = range.end.min(image.len());
        image
            .get(range.start.min(end)..end)
            .unwrap_or_default()
            .iter()
            .fold(0u16, |s, &b| s.wrapping_add(u16::from(b)))
    };
    if size <= 0x8000 {
        sum(0..size - 0x10)
    } else {
        sum(0..SMS_HEADER).wrapping_add(sum(0x8000..size))
    }
}

/// The checksum word of a Mega Drive image (0x18e), or of a Master System
/// or Game Gear image with a TMR SEGA header (0x7ffa).
pub(super) fn checksum_status(image: &[u8], system: SystemType) -> Option<ChecksumStatus> {
    let field = |name, offset, endian, stored: u16, computed: u16| ChecksumField {
        name,
        offset,
        width: 2,
        endian,
        stored: u32::from(stored),
        computed: u32::from(computed),
    };
    let (kind, field) = if system == SystemType::Mega || bytes_at(image, 0x100, b"SEGA") {
        if image.len() < 0x200 {
            return None;
        }
        let stored = read_u16_be(image, 0x18E)?;
        let field = field(
            "Mega Drive checksum",
            0x18E,
            Endian::Big,
            stored,
            mega_sum(image),
        );
        ("Mega Drive checksum", field)
    } else {
        if !bytes_at(image, SMS_HEADER, b"TMR SEGA") {
            return None;
        }
        let size = sms_declared_size(*image.get(SMS_HEADER + 0xF)? & 0x0F)?;
        let stored = read_u16_le(image, SMS_HEADER + 0xA)?;
        let computed = sms_sum(image, size);
        let field = field(
            "TMR SEGA checksum",
            SMS_HEADER + 0xA,
            Endian::Little,
            stored,
            computed,
        );
        ("TMR SEGA header checksum", field)
    };
    Some(ChecksumStatus {
        kind: kind.into(),
        fields: vec![field],
    })
}
