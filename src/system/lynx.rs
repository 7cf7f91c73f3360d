//! Atari Lynx: the 64-byte LNX header, dropped for patching and put back
//! after (it holds the screen rotation).

use super::{HeaderKind, Layout, SystemType, read_u16_le};

const LNX_HEADER_LEN: usize = 0x40;

pub(super) fn analyze(raw: &[u8]) -> Layout {
    if raw.starts_with(b"LYNX") && raw.len() >= LNX_HEADER_LEN {
        Layout::headered(SystemType::Lynx, raw, HeaderKind::Lnx, LNX_HEADER_LEN)
    } else {
        Layout::plain(SystemType::Lynx, raw)
    }
}

pub(super) fn describe(layout: &Layout, out: &mut super::Fields) {
    let header = &layout.header_bytes;
    if header.len() < LNX_HEADER_LEN {
        return;
    }
    let text = |range: std::ops::Range<usize>| {
        let field = &header[range];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        crate::text::bytes_as_text(field[..end].trim_ascii())
    };
    out.push(("title", text(10..42).into()));
    out.push(("manufacturer", text(42..58).into()));
    // A cartridge bank is 256 pages.
    let mut page = |key, bank: &str, size: u16| match size {
        0 => out.push_text(key, size, format!("0 (no {bank})")),
        size => out.push_text(
            key,
            size,
            format!(
                "{size} bytes per page, so {bank} holds {}",
                super::bytes_text(u64::from(size) * 256)
            ),
        ),
    };
    if let Some(bank0) = read_u16_le(header, 4) {
        page("bank0_page_size", "bank 0", bank0);
    }
    if let Some(bank1) = read_u16_le(header, 6) {
        page("bank1_page_size", "bank 1", bank1);
    }
    let rotation = match header[58] {
        0 => "none",
        1 => "left",
        2 => "right",
        _ => "unknown",
    };
    out.push(("rotation", rotation.into()));
}
