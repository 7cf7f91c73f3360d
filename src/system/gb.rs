//! Game Boy and Game Boy Color: an optional 512-byte SmartCard header.

use super::checksum::{ChecksumField, ChecksumStatus, Endian};
use super::{HeaderKind, Layout, SystemError, SystemType, bytes_at};

const SMARTCARD_HEADER_LEN: usize = 0x200;
const BANK: usize = 0x4000;
const LOGO_AT: usize = 0x104;
/// The first bytes of the Nintendo logo every cartridge carries at 0x104.
const LOGO_START: [u8; 4] = [0xCE, 0xED, 0x66, 0x66];

pub(super) fn analyze(raw: &[u8]) -> Result<Layout, SystemError> {
    let layout = if !raw.len().is_multiple_of(BANK) && raw.len() > SMARTCARD_HEADER_LEN {
        Layout::headered(
            SystemType::Gb,
            raw,
            HeaderKind::SmartCard,
            SMARTCARD_HEADER_LEN,
        )
    } else {
        Layout::plain(SystemType::Gb, raw)
    };
    // NINJA refused images without the logo; so do we, rather than guess.
    if !bytes_at(&raw[layout.data_offset..], LOGO_AT, &LOGO_START) {
        return Err(SystemError::NoGameBoyLogo);
    }
    Ok(layout)
}

pub(super) fn has_logo_anywhere(raw: &[u8]) -> bool {
    bytes_at(raw, LOGO_AT, &LOGO_START)
        || bytes_at(raw, SMARTCARD_HEADER_LEN + LOGO_AT, &LOGO_START)
}

fn cartridge_type_name(code: u8) -> &'static str {
    match code {
        0x00 => "ROM only",
        0x01 => "MBC1",
        0x02 => "MBC1+RAM",
        0x03 => "MBC1+RAM+BATTERY",
        0x05 => "MBC2",
        0x06 => "MBC2+BATTERY",
        0x08 => "ROM+RAM",
        0x09 => "ROM+RAM+BATTERY",
        0x0B => "MMM01",
        0x0C => "MMM01+RAM",
        0x0D => "MMM01+RAM+BATTERY",
        0x0F => "MBC3+TIMER+BATTERY",
        0x10 => "MBC3+TIMER+RAM+BATTERY",
        0x11 => "MBC3",
        0x12 => "MBC3+RAM",
        0x13 => "MBC3+RAM+BATTERY",
        0x19 => "MBC5",
        0x1A => "MBC5+RAM",
        0x1B => "MBC5+RAM+BATTERY",
        0x1C => "MBC5+RUMBLE",
        0x1D => "MBC5+RUMBLE+RAM",
        0x1E => "MBC5+RUMBLE+RAM+BATTERY",
        0x20 => "MBC6",
        0x22 => "MBC7+SENSOR+RUMBLE+RAM+BATTERY",
        0xFC => "POCKET CAMERA",
        0xFD => "BANDAI TAMA5",
        0xFE => "HuC3",
        0xFF => "HuC1+RAM+BATTERY",
        _ => "unknown",
    }
}

pub(super) fn describe(normalized: &[u8], out: &mut super::Fields) {
    let Some(header) = normalized.get(0x100..0x150) else {
        return;
    };
    let cgb_flag = header[0x43];
    // On Color cartridges the last title byte is the CGB flag.
    let title_len = if cgb_flag & 0x80 != 0 { 15 } else { 16 };
    let title = &header[0x34..0x34 + title_len];
    let end = title.iter().position(|&b| b == 0).unwrap_or(title.len());
    let title = crate::text::bytes_as_text(title[..end].trim_ascii_end());
    out.push(("title", title.into()));
    let color = match cgb_flag {
        0xC0 => "Game Boy Color only",
        0x80 => "Game Boy Color enhanced",
        _ => "Game Boy",
    };
    out.push(("color", color.into()));
    out.push(("super_game_boy", (header[0x46] == 0x03).into()));
    let cart = header[0x47];
    out.push((
        "cartridge_type",
        format!("{cart:#04x} ({})", cartridge_type_name(cart)).into(),
    ));
    if header[0x48] < 9 {
        out.push_bytes("rom_size_declared", 0x8000u64 << header[0x48]);
    }
    let ram = header[0x49];
    let ram_size = match ram {
        0 => "no cartridge RAM",
        1 => "2 KiB of RAM",
        2 => "8 KiB of RAM",
        3 => "32 KiB of RAM",
        4 => "128 KiB of RAM",
        5 => "64 KiB of RAM",
        _ => "unknown",
    };
    out.push_text("ram_size_code", ram, format!("{ram} ({ram_size})"));
    let computed = header_checksum(normalized).unwrap_or_default();
    out.push_text(
        "header_checksum",
        format!("{:#04x}", header[0x4D]),
        format!("{:#04x} (stored, over 0x134-0x14c)", header[0x4D]),
    );
    out.push(("header_checksum_valid", (computed == header[0x4D]).into()));
    let stored_global = u16::from_be_bytes([header[0x4E], header[0x4F]]);
    let global = checksum_status(normalized)
        .and_then(|status| status.fields.get(1).map(|field| field.computed));
    out.push_text(
        "global_checksum",
        format!("{stored_global:#06x}"),
        format!("{stored_global:#06x} (stored, over the whole image)"),
    );
    let global_holds = global == Some(u32::from(stored_global));
    out.push(("global_checksum_valid", global_holds.into()));
}

/// The header checksum at 0x14d, over 0x134..=0x14c, as the boot ROM checks it.
fn header_checksum(image: &[u8]) -> Option<u8> {
    Some(
        image
            .get(0x134..0x14D)?
            .iter()
            .fold(0u8, |x, &b| x.wrapping_sub(b).wrapping_sub(1)),
    )
}

/// The header checksum (0x14d) and the global checksum (0x14e-0x14f, a
/// big-endian sum of every byte but those two) of a Game Boy image with
/// the Nintendo logo.
pub(super) fn checksum_status(image: &[u8]) -> Option<ChecksumStatus> {
    if image.len() < 0x150 || !bytes_at(image, LOGO_AT, &LOGO_START) {
        return None;
    }
    let header = header_checksum(image)?;
    let stored_global = u16::from_be_bytes([image[0x14E], image[0x14F]]);
    // A plain u32 sum vectorizes; a wrapping u16 fold does not.
    let all = image
        .chunks(1 << 16)
        .map(|chunk| chunk.iter().map(|&b| u32::from(b)).sum::<u32>() & 0xFFFF)
        .fold(0u32, u32::wrapping_add);
    let global = all
        .wrapping_sub(u32::from(image[0x14E]))
        .wrapping_sub(u32::from(image[0x14F]))
        & 0xFFFF;
    Some(ChecksumStatus {
        kind: "Game Boy header and global checksums".into(),
        fields: vec![
            ChecksumField {
                name: "Game Boy header checksum",
                offset: 0x14D,
                width: 1,
                endian: Endian::Big,
                stored: u32::from(image[0x14D]),
                computed: u32::from(header),
            },
            ChecksumField {
                name: "Game Boy global checksum",
                offset: 0x14E,
                width: 2,
                endian: Endian::Big,
                stored: u32::from(stored_global),
                computed: global,
            },
        ],
    })
}
