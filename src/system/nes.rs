//! NES / Famicom: iNES and NES 2.0, Famtasia (FFE) and UNIF containers.

use std::borrow::Cow;

use super::{
    Conversion, HeaderKind, Layout, SystemError, SystemType, UnifPiece, bytes_at, read_u32_le,
};

mod ffe;

const INES_HEADER_LEN: usize = 0x10;
const FFE_HEADER_LEN: usize = ffe::HEADER_LEN;
/// The UNIF header is 32 bytes; NINJA's document said 0x40, which is wrong.
const UNIF_HEADER_LEN: usize = 0x20;
const UNIF_CHUNK_HEADER_LEN: usize = 8;

pub(super) fn analyze(raw: &[u8]) -> Result<Layout, SystemError> {
    // NINJA checked only "NES", not the 0x1A that follows.
    if raw.starts_with(b"NES") {
        if raw.len() < INES_HEADER_LEN {
            return Err(SystemError::TooSmall {
                system: "iNES",
                len: raw.len(),
                need: INES_HEADER_LEN,
            });
        }
        let kind = if raw[7] & 0x0C == 0x08 {
            HeaderKind::Nes20
        } else {
            HeaderKind::Ines
        };
        let mut layout = Layout::headered(SystemType::Nes, raw, kind, INES_HEADER_LEN);
        // Emulators check the fourth byte that NINJA did not: a dump with
        // "NES\x19" or "NES\x1b" is played with it set right.
        if raw[3] != 0x1A {
            let mut header = layout.header_bytes.clone();
            header[3] = 0x1A;
            layout.notes.push(format!(
                "the iNES header starts \"NES\\x{:02x}\", not \"NES\\x1a\": the deinterleaved \
                 image has 0x1a there, as emulators require",
                raw[3]
            ));
            layout.conversion = Some(Conversion::Header(header));
        }
        return Ok(layout);
    }
    if bytes_at(raw, 8, &[0xAA, 0xBB]) {
        if raw.len() < FFE_HEADER_LEN {
            return Err(SystemError::TooSmall {
                system: "Famtasia/FFE NES",
                len: raw.len(),
                need: FFE_HEADER_LEN,
            });
        }
        let mut layout = Layout::headered(SystemType::Nes, raw, HeaderKind::Ffe, FFE_HEADER_LEN);
        // No emulator loads the FFE form: emulators get an iNES file.
        layout.conversion = ffe::plan(raw, &mut layout.notes).map(Conversion::FfeToInes);
        return Ok(layout);
    }
    if raw.starts_with(b"UNIF") {
        return analyze_unif(raw);
    }
    Err(SystemError::NotNes)
}

fn is_rom_chunk(id: &[u8]) -> bool {
    matches!(id, [b'P', b'R', b'G', n] | [b'C', b'H', b'R', n] if n.is_ascii_hexdigit() && !n.is_ascii_lowercase())
}

fn analyze_unif(raw: &[u8]) -> Result<Layout, SystemError> {
    if raw.len() < UNIF_HEADER_LEN {
        return Err(SystemError::TooSmall {
            system: "UNIF",
            len: raw.len(),
            need: UNIF_HEADER_LEN,
        });
    }
    let mut pieces = Vec::new();
    let mut kept = raw[..UNIF_HEADER_LEN].to_vec();
    let mut kept_start = 0;
    let mut offset = UNIF_HEADER_LEN;
    while offset < raw.len() {
        let (Some(id), Some(len)) = (raw.get(offset..offset + 4), read_u32_le(raw, offset + 4))
        else {
            return Err(SystemError::UnifTruncatedChunk { offset });
        };
        let data_start = offset + UNIF_CHUNK_HEADER_LEN;
        let available = raw.len() - data_start;
        let len = len as usize;
        if len > available {
            return Err(SystemError::UnifChunkOverrun {
                id: String::from_utf8_lossy(id).into_owned(),
                offset,
                len: len as u64,
                available,
            });
        }
        if is_rom_chunk(id) {
            kept.extend_from_slice(&raw[offset..data_start]);
            pieces.push(UnifPiece::Kept {
                offset: kept_start,
                len: data_start - kept_start,
            });
            pieces.push(UnifPiece::Rom {
                offset: data_start,
                len,
            });
            kept_start = data_start + len;
        } else {
            kept.extend_from_slice(&raw[offset..data_start + len]);
        }
        offset = data_start + len;
    }
    if !pieces.iter().any(|p| matches!(p, UnifPiece::Rom { .. })) {
        return Err(SystemError::UnifNoRomData);
    }
    if kept_start < raw.len() {
        pieces.push(UnifPiece::Kept {
            offset: kept_start,
            len: raw.len() - kept_start,
        });
    }
    Ok(Layout {
        header: Some(HeaderKind::Unif),
        data_offset: 0,
        data_len: 0,
        unif: pieces,
        unif_kept: kept,
        ..Layout::plain(SystemType::Nes, raw)
    })
}

/// PRG and CHR chunk data concatenated in file order (not PRG first).
pub(super) fn unif_normalize<'a>(raw: &'a [u8], layout: &Layout) -> Cow<'a, [u8]> {
    let mut roms = layout.unif.iter().filter_map(|p| match p {
        UnifPiece::Rom { offset, len } => raw.get(*offset..offset + len),
        UnifPiece::Kept { .. } => None,
    });
    let first = roms.next().unwrap_or_default();
    let Some(second) = roms.next() else {
        return Cow::Borrowed(first);
    };
    let mut out = Vec::with_capacity(layout.normalized_len());
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    roms.for_each(|chunk| out.extend_from_slice(chunk));
    Cow::Owned(out)
}

/// The UNIF file again, each PRG/CHR chunk refilled in file order from
/// `normalized`.
pub(super) fn unif_restore(normalized: &[u8], layout: &Layout) -> Result<Vec<u8>, SystemError> {
    let expected = layout.normalized_len();
    if normalized.len() != expected {
        return Err(SystemError::UnifSizeChanged {
            expected,
            actual: normalized.len(),
        });
    }
    let mut out = Vec::with_capacity(layout.restored_len(expected));
    let mut kept = layout.unif_kept.as_slice();
    let mut data = normalized;
    for piece in &layout.unif {
        let (source, len) = match piece {
            UnifPiece::Kept { len, .. } => (&mut kept, *len),
            UnifPiece::Rom { len, .. } => (&mut data, *len),
        };
        let (head, tail) = source.split_at(len.min(source.len()));
        out.extend_from_slice(head);
        *source = tail;
    }
    Ok(out)
}

/// A Famtasia/FFE dump: `AA BB` at 8 and a size that is 512 bytes over a
/// whole number of 8 KiB banks. Content sniffing only; an `.nes`/`.ffe` name
/// is trusted without this.
pub(super) fn looks_like_ffe(raw: &[u8]) -> bool {
    bytes_at(raw, 8, &[0xAA, 0xBB])
        && raw.len() > FFE_HEADER_LEN
        && (raw.len() - FFE_HEADER_LEN).is_multiple_of(0x2000)
}

/// Header fields worth showing: iNES sizes and mapper, UNIF board, what
/// an FFE header says.
pub(super) fn describe(raw: &[u8], layout: &Layout, out: &mut super::Fields) {
    match layout.header {
        Some(HeaderKind::Ines | HeaderKind::Nes20) => {
            let h = &layout.header_bytes;
            let (Some(&flags6), Some(&flags7)) = (h.get(6), h.get(7)) else {
                return;
            };
            let mut mapper = u16::from(flags6 >> 4) | u16::from(flags7 & 0xF0);
            if layout.header == Some(HeaderKind::Nes20) {
                mapper |= u16::from(h.get(8).copied().unwrap_or(0) & 0x0F) << 8;
            }
            out.push_text("mapper", mapper, mapper_text(mapper));
            let banks = |at: usize| u64::from(h.get(at).copied().unwrap_or(0));
            out.push_bytes("prg_rom_bytes", banks(4) * 16384);
            out.push_bytes("chr_rom_bytes", banks(5) * 8192);
            let mirroring = if flags6 & 0x08 != 0 {
                "four-screen"
            } else if flags6 & 0x01 != 0 {
                "vertical"
            } else {
                "horizontal"
            };
            out.push(("mirroring", mirroring.into()));
            out.push(("battery", (flags6 & 0x02 != 0).into()));
            out.push(("trainer", (flags6 & 0x04 != 0).into()));
        }
        Some(HeaderKind::Unif) => {
            if let Some(revision) = read_u32_le(raw, 4) {
                out.push(("unif_revision", revision.into()));
            }
            let mut rom_chunks = Vec::new();
            let mut chunk_text = Vec::new();
            for (id, data) in unif_chunks(raw) {
                match id {
                    b"MAPR" => out.push(("board", text(data).into())),
                    b"NAME" => out.push(("title", text(data).into())),
                    _ if is_rom_chunk(id) => {
                        let id = String::from_utf8_lossy(id);
                        rom_chunks.push(format!("{id} {}", data.len()));
                        chunk_text.push(format!("{id} {}", super::bytes_text(data.len() as u64)));
                    }
                    _ => {}
                }
            }
            out.push_text("rom_chunks", rom_chunks.join(", "), chunk_text.join(", "));
        }
        Some(HeaderKind::Ffe) => ffe::describe(raw, layout, out),
        _ => {}
    }
}

/// An iNES mapper number with the board or chip people know it by.
fn mapper_text(mapper: u16) -> String {
    let name = match mapper {
        0 => "NROM",
        1 => "MMC1",
        2 => "UxROM",
        3 => "CNROM",
        4 => "MMC3",
        5 => "MMC5",
        6 => "Front Fareast Magic Card",
        7 => "AxROM",
        8 => "Front Fareast Magic Card, GNROM mode",
        9 => "MMC2",
        10 => "MMC4",
        11 => "Color Dreams",
        13 => "CPROM",
        17 => "Front Fareast Super Magic Card",
        66 => "GxROM",
        71 => "Camerica",
        _ => return mapper.to_string(),
    };
    format!("{mapper} ({name})")
}

fn unif_chunks(raw: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut offset = UNIF_HEADER_LEN;
    std::iter::from_fn(move || {
        let id = raw.get(offset..offset + 4)?;
        let len = read_u32_le(raw, offset + 4)? as usize;
        let data = raw.get(offset + UNIF_CHUNK_HEADER_LEN..)?.get(..len)?;
        offset += UNIF_CHUNK_HEADER_LEN + len;
        Some((id, data))
    })
}

/// A NUL-terminated text field, trimmed, unprintable bytes escaped.
fn text(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    crate::text::bytes_as_text(data[..end].trim_ascii())
}
