//! VCDIFF (RFC 3284) as xdelta3 3.0.x writes it: the default or a custom
//! code table, NEAR/SAME address caches, VCD_SOURCE and VCD_TARGET copy
//! windows, xdelta3's per-window Adler-32 extension, its application header
//! (file names, from `-A`), and its secondary compressors LZMA (id 2), DJW
//! (id 1) and FGK (id 16, adaptive Huffman, `xdelta3 -S fgk`).
//!
//! Parsing checks the framing of every window (lengths, truncation, limits);
//! the instruction sections, which may be secondary-compressed, are checked
//! as they are executed by `apply`.

pub mod code_table;
pub mod djw;
mod encode;
pub mod fgk;
pub mod lzma;

use std::borrow::Cow;

use crate::patch::{ApplyOptions, Limits, PatchError, PatchSummary};
use code_table::{AddressCache, AddressError, CodeTable, Operation};

/// Bytes from a patch shown as text (one line, exact).
pub use crate::text::bytes_as_text;
pub use encode::create;

pub const NAME: &str = "VCDIFF";

const MAGIC: [u8; 3] = [0xD6, 0xC3, 0xC4];
const VERSION: u8 = 0;

// Header indicator bits.
const HEADER_SECONDARY: u8 = 0x01;
const HEADER_CODE_TABLE: u8 = 0x02;
const HEADER_APP_HEADER: u8 = 0x04;

// Window indicator bits; VCD_ADLER32 is xdelta3's extension.
const WINDOW_SOURCE: u8 = 0x01;
const WINDOW_TARGET: u8 = 0x02;
const WINDOW_ADLER32: u8 = 0x04;
const WINDOW_SOURCE_AND_TARGET: u8 = WINDOW_SOURCE | WINDOW_TARGET;

// Delta indicator bits: which sections went through the secondary compressor.
const DATA_COMPRESSED: u8 = 0x01;
const INSTRUCTIONS_COMPRESSED: u8 = 0x02;
const ADDRESSES_COMPRESSED: u8 = 0x04;

const SECONDARY_DJW: u8 = 1;
const SECONDARY_LZMA: u8 = 2;
const SECONDARY_FGK: u8 = 16;

/// A custom code table is delta-coded against the default one; the nested
/// delta may not itself carry a custom table.
const MAX_CODE_TABLE_NESTING: u32 = 1;

/// The cheap magic check: VCDIFF magic and version 0.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC) && bytes.get(3) == Some(&VERSION)
}

/// The secondary compressor named in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondaryCompressor {
    Djw,
    Lzma,
    Fgk,
}

impl SecondaryCompressor {
    /// Its name as xdelta3's documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            SecondaryCompressor::Djw => "DJW",
            SecondaryCompressor::Lzma => "LZMA",
            SecondaryCompressor::Fgk => "FGK",
        }
    }
}

/// Where a window's COPY instructions may read besides the window itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyWindow {
    None,
    /// A segment of the source file.
    Source {
        offset: u64,
        len: u64,
    },
    /// A segment of the target already produced by earlier windows.
    Target {
        offset: u64,
        len: u64,
    },
}

impl CopyWindow {
    fn len(&self) -> u64 {
        match *self {
            CopyWindow::None => 0,
            CopyWindow::Source { len, .. } | CopyWindow::Target { len, .. } => len,
        }
    }
}

/// One of a window's three sections, as stored in the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    pub bytes: &'a [u8],
    /// Passed through the secondary compressor (then `bytes` starts with the
    /// decompressed length).
    pub compressed: bool,
}

/// One target window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<'a> {
    pub copy_window: CopyWindow,
    pub target_len: u64,
    /// xdelta3's Adler-32 of the window's target bytes.
    pub adler32: Option<u32>,
    pub data: Section<'a>,
    pub instructions: Section<'a>,
    pub addresses: Section<'a>,
}

/// What xdelta3 records in its application header (on unless `-A` is
/// given alone): the file names given to the encoder, without directories,
/// and the external compressor each was unpacked with (empty for none,
/// `G` gzip, `B` bzip2, `Z` compress, `Y` xz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppHeaderNames<'a> {
    pub target_name: &'a [u8],
    pub target_compression: &'a [u8],
    /// Absent when the patch was made without a source file.
    pub source_name: Option<&'a [u8]>,
    pub source_compression: Option<&'a [u8]>,
}

impl AppHeaderNames<'_> {
    /// (label, value) rows for `info`: the names as text, and a compressor
    /// only where one is named.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![("target name", bytes_as_text(self.target_name))];
        if !self.target_compression.is_empty() {
            rows.push((
                "target compression",
                compression_text(self.target_compression),
            ));
        }
        if let Some(name) = self.source_name {
            rows.push(("source name", bytes_as_text(name)));
        }
        if let Some(code) = self.source_compression.filter(|c| !c.is_empty()) {
            rows.push(("source compression", compression_text(code)));
        }
        rows
    }
}

/// xdelta3's letter for an external compressor, with its name.
fn compression_text(code: &[u8]) -> String {
    let name = match code {
        b"G" => "gzip",
        b"B" => "bzip2",
        b"Z" => "compress",
        b"Y" => "xz",
        _ => return bytes_as_text(code),
    };
    format!("{name} ({})", bytes_as_text(code))
}

/// A parsed VCDIFF patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcdiffPatch<'a> {
    pub secondary: Option<SecondaryCompressor>,
    /// A custom code table, when the header carries one.
    pub code_table: Option<Box<CodeTable>>,
    /// xdelta3's application header, raw.
    pub app_header: Option<&'a [u8]>,
    pub windows: Vec<Window<'a>>,
    target_len: u64,
}

/// Checked reads over patch bytes.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

/// Why an integer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VarintError {
    Truncated,
    Overflow,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    #[inline]
    pub fn byte(&mut self) -> Option<u8> {
        let value = *self.bytes.get(self.position)?;
        self.position += 1;
        Some(value)
    }

    /// A VCDIFF integer: base 128, most significant digit first, high bit
    /// set on every byte but the last.
    #[inline]
    fn varint_checked(&mut self) -> Result<u64, VarintError> {
        let mut value = 0u64;
        loop {
            let byte = self.byte().ok_or(VarintError::Truncated)?;
            if value > (u64::MAX >> 7) {
                return Err(VarintError::Overflow);
            }
            value = (value << 7) | u64::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    }

    #[inline]
    pub fn varint(&mut self) -> Option<u64> {
        self.varint_checked().ok()
    }

    #[inline]
    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(len)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.position..).unwrap_or_default();
        self.position = self.bytes.len();
        rest
    }
}

/// Appends a VCDIFF integer.
pub fn write_varint(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 10];
    let mut count = 0;
    let mut rest = value;
    loop {
        digits[count] = (rest & 0x7F) as u8;
        count += 1;
        rest >>= 7;
        if rest == 0 {
            break;
        }
    }
    for index in (0..count).rev() {
        let continuation = if index == 0 { 0 } else { 0x80 };
        out.push(digits[index] | continuation);
    }
}

/// xdelta3's per-window checksum.
pub(crate) fn adler32(bytes: &[u8]) -> u32 {
    let mut hash = simd_adler32::Adler32::new();
    hash.write(bytes);
    hash.finish()
}

fn truncated(what: &str) -> PatchError {
    PatchError::Truncated {
        format: NAME,
        what: what.to_string(),
    }
}

fn corrupt(detail: impl Into<String>) -> PatchError {
    PatchError::Corrupt {
        format: NAME,
        detail: detail.into(),
    }
}

fn read_byte(cursor: &mut Cursor<'_>, what: &str) -> Result<u8, PatchError> {
    cursor.byte().ok_or_else(|| truncated(what))
}

fn read_varint(cursor: &mut Cursor<'_>, what: &str) -> Result<u64, PatchError> {
    cursor.varint_checked().map_err(|e| match e {
        VarintError::Truncated => truncated(what),
        VarintError::Overflow => corrupt(format!("{what} is too large a number")),
    })
}

fn read_section<'a>(
    cursor: &mut Cursor<'a>,
    len: u64,
    compressed: bool,
    what: &str,
) -> Result<Section<'a>, PatchError> {
    let bytes = usize::try_from(len)
        .ok()
        .and_then(|len| cursor.take(len))
        .ok_or_else(|| truncated(what))?;
    Ok(Section { bytes, compressed })
}

/// Parses a VCDIFF patch.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<VcdiffPatch<'a>, PatchError> {
    parse_nested(bytes, limits, 0)
}

fn parse_nested<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    nesting: u32,
) -> Result<VcdiffPatch<'a>, PatchError> {
    let mut cursor = Cursor::new(bytes);
    if cursor.take(3) != Some(&MAGIC[..]) {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "the file does not start with the VCDIFF magic D6 C3 C4".into(),
        });
    }
    let version = read_byte(&mut cursor, "version")?;
    if version != VERSION {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!("VCDIFF version {version} (only version 0 exists)"),
        });
    }

    let header_indicator = read_byte(&mut cursor, "header indicator")?;
    if header_indicator & !(HEADER_SECONDARY | HEADER_CODE_TABLE | HEADER_APP_HEADER) != 0 {
        return Err(corrupt(format!(
            "unknown header indicator bits {header_indicator:#04x}"
        )));
    }
    let secondary = if header_indicator & HEADER_SECONDARY != 0 {
        match read_byte(&mut cursor, "secondary compressor id")? {
            SECONDARY_DJW => Some(SecondaryCompressor::Djw),
            SECONDARY_LZMA => Some(SecondaryCompressor::Lzma),
            SECONDARY_FGK => Some(SecondaryCompressor::Fgk),
            other => return Err(corrupt(format!("unknown secondary compressor id {other}"))),
        }
    } else {
        None
    };

    let code_table = if header_indicator & HEADER_CODE_TABLE != 0 {
        if nesting >= MAX_CODE_TABLE_NESTING {
            return Err(corrupt("a code table inside a code table"));
        }
        let table_len = read_varint(&mut cursor, "code table length")?;
        if table_len < 2 {
            return Err(corrupt("code table length is under 2"));
        }
        let near_slots = read_byte(&mut cursor, "code table NEAR size")?;
        let same_slots = read_byte(&mut cursor, "code table SAME size")?;
        let delta = read_section(&mut cursor, table_len - 2, false, "code table")?;
        Some(Box::new(decode_code_table(
            delta.bytes,
            near_slots,
            same_slots,
            nesting,
        )?))
    } else {
        None
    };

    let app_header = if header_indicator & HEADER_APP_HEADER != 0 {
        let len = read_varint(&mut cursor, "application header length")?;
        Some(read_section(&mut cursor, len, false, "application header")?.bytes)
    } else {
        None
    };

    let mut windows = Vec::new();
    let mut target_len = 0u64;
    while !cursor.is_empty() {
        let window = parse_window(&mut cursor, secondary.is_some(), target_len)?;
        target_len = target_len
            .checked_add(window.target_len)
            .ok_or_else(|| corrupt("target length overflows"))?;
        limits.check(NAME, target_len)?;
        windows.push(window);
    }

    Ok(VcdiffPatch {
        secondary,
        code_table,
        app_header,
        windows,
        target_len,
    })
}

fn parse_window<'a>(
    cursor: &mut Cursor<'a>,
    has_secondary: bool,
    target_so_far: u64,
) -> Result<Window<'a>, PatchError> {
    let indicator = read_byte(cursor, "window indicator")?;
    if indicator & !(WINDOW_SOURCE | WINDOW_TARGET | WINDOW_ADLER32) != 0 {
        return Err(corrupt(format!(
            "unknown window indicator bits {indicator:#04x}"
        )));
    }
    let copy_window = match indicator & (WINDOW_SOURCE | WINDOW_TARGET) {
        0 => CopyWindow::None,
        WINDOW_SOURCE_AND_TARGET => {
            return Err(corrupt("window copies from both source and target"));
        }
        kind => {
            let len = read_varint(cursor, "copy window length")?;
            let offset = read_varint(cursor, "copy window offset")?;
            let end = offset
                .checked_add(len)
                .ok_or_else(|| corrupt("copy window overflows"))?;
            if kind == WINDOW_SOURCE {
                CopyWindow::Source { offset, len }
            } else {
                if end > target_so_far {
                    return Err(corrupt(format!(
                        "target copy window ends at {end}, after the {target_so_far} target bytes made so far"
                    )));
                }
                CopyWindow::Target { offset, len }
            }
        }
    };

    let encoding_len = read_varint(cursor, "delta encoding length")?;
    let encoding_start = cursor.position;
    let target_len = read_varint(cursor, "target window length")?;
    copy_window
        .len()
        .checked_add(target_len)
        .ok_or_else(|| corrupt("window address space overflows"))?;
    let delta_indicator = read_byte(cursor, "delta indicator")?;
    if delta_indicator & !(DATA_COMPRESSED | INSTRUCTIONS_COMPRESSED | ADDRESSES_COMPRESSED) != 0 {
        return Err(corrupt(format!(
            "unknown delta indicator bits {delta_indicator:#04x}"
        )));
    }
    if delta_indicator != 0 && !has_secondary {
        return Err(corrupt(
            "sections are marked compressed but the patch names no secondary compressor",
        ));
    }
    let data_len = read_varint(cursor, "data section length")?;
    let instructions_len = read_varint(cursor, "instruction section length")?;
    let addresses_len = read_varint(cursor, "address section length")?;
    let adler32 = if indicator & WINDOW_ADLER32 != 0 {
        let digest = cursor
            .take(4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .ok_or_else(|| truncated("window checksum"))?;
        Some(u32::from_be_bytes(digest))
    } else {
        None
    };
    let header_len = (cursor.position - encoding_start) as u64;
    let declared = header_len
        .checked_add(data_len)
        .and_then(|n| n.checked_add(instructions_len))
        .and_then(|n| n.checked_add(addresses_len));
    if declared != Some(encoding_len) {
        return Err(corrupt(format!(
            "window's delta encoding length {encoding_len} disagrees with its sections"
        )));
    }
    let data = read_section(
        cursor,
        data_len,
        delta_indicator & DATA_COMPRESSED != 0,
        "data section",
    )?;
    let instructions = read_section(
        cursor,
        instructions_len,
        delta_indicator & INSTRUCTIONS_COMPRESSED != 0,
        "instruction section",
    )?;
    let addresses = read_section(
        cursor,
        addresses_len,
        delta_indicator & ADDRESSES_COMPRESSED != 0,
        "address section",
    )?;
    Ok(Window {
        copy_window,
        target_len,
        adler32,
        data,
        instructions,
        addresses,
    })
}

/// A custom code table is a complete VCDIFF delta from the default table's
/// string form to the new table's.
fn decode_code_table(
    delta: &[u8],
    near_slots: u8,
    same_slots: u8,
    nesting: u32,
) -> Result<CodeTable, PatchError> {
    let default_form = CodeTable::default_table().to_string_form();
    let limits = Limits {
        max_image_size: code_table::CODE_TABLE_STRING_LEN as u64,
    };
    let table_error = |e: PatchError| corrupt(format!("custom code table: {e}"));
    let nested = parse_nested(delta, &limits, nesting + 1).map_err(table_error)?;
    let options = ApplyOptions {
        limits,
        ignore_checksums: false,
    };
    let form = nested.apply(&default_form, &options).map_err(table_error)?;
    CodeTable::from_string_form(&form, near_slots, same_slots)
        .ok_or_else(|| corrupt("custom code table has an impossible entry or size"))
}

/// Per-section-kind state for xdelta3's LZMA and FGK, which span windows.
#[derive(Default)]
struct SecondaryState {
    lzma: [Option<lzma::LzmaSectionDecoder>; 3],
    fgk: [Option<Box<fgk::FgkDecoder>>; 3],
}

impl<'a> VcdiffPatch<'a> {
    /// Total length of the target: the sum of the windows' lengths.
    pub fn target_len(&self) -> u64 {
        self.target_len
    }

    /// The size `apply` will return; VCDIFF's does not depend on the source.
    pub fn output_size(&self, _source_len: u64) -> u64 {
        self.target_len
    }

    /// The names in xdelta3's application header, read as xdelta3 reads
    /// it: `target/compression/source/compression`, or just
    /// `target/compression` without a source; `None` for any other shape.
    pub fn app_header_names(&self) -> Option<AppHeaderNames<'a>> {
        let header = self.app_header?;
        let fields: Vec<&'a [u8]> = header.splitn(4, |&b| b == b'/').collect();
        match *fields.as_slice() {
            [target_name, target_compression] => Some(AppHeaderNames {
                target_name,
                target_compression,
                source_name: None,
                source_compression: None,
            }),
            [
                target_name,
                target_compression,
                source_name,
                source_compression,
            ] => Some(AppHeaderNames {
                target_name,
                target_compression,
                source_name: Some(source_name),
                source_compression: Some(source_compression),
            }),
            _ => None,
        }
    }

    /// What the patch says about itself. VCDIFF carries no whole-file
    /// checksum and no source length (only the segments it copies from).
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: None,
            target_size: Some(self.target_len),
            source_checksum: None,
            target_checksum: None,
        }
    }

    /// Applies the patch to `source`.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let capacity = opts.limits.check(NAME, self.target_len)?;
        let table = self.code_table.as_deref().unwrap_or(&DEFAULT_TABLE);
        let mut applier = Applier {
            secondary_kind: self.secondary,
            source,
            table,
            cache: AddressCache::new(table.near_slots, table.same_slots),
            secondary: SecondaryState::default(),
            opts,
            output: Vec::with_capacity(capacity),
        };
        super::prefault(&mut applier.output);
        for (index, window) in self.windows.iter().enumerate() {
            applier.apply_window(window, index)?;
        }
        Ok(applier.output)
    }

    /// Applies the patch window by window, writing each window to `sink`
    /// as soon as it is made, so only one window is held in memory (as
    /// `xdelta3 -d` does). Returns the number of bytes written. A patch with
    /// VCD_TARGET windows, which copy from earlier output, is applied whole
    /// first. On error, the windows before the failing one have been written.
    pub fn apply_to_writer<W: std::io::Write>(
        &self,
        source: &[u8],
        opts: &ApplyOptions,
        sink: &mut W,
    ) -> Result<u64, StreamError> {
        opts.limits.check(NAME, self.target_len)?;
        let reads_earlier_output = self
            .windows
            .iter()
            .any(|window| matches!(window.copy_window, CopyWindow::Target { .. }));
        if reads_earlier_output {
            let target = self.apply(source, opts)?;
            sink.write_all(&target)?;
            return Ok(target.len() as u64);
        }
        let largest_window = self.windows.iter().map(|w| w.target_len).max().unwrap_or(0);
        let table = self.code_table.as_deref().unwrap_or(&DEFAULT_TABLE);
        let mut applier = Applier {
            secondary_kind: self.secondary,
            source,
            table,
            cache: AddressCache::new(table.near_slots, table.same_slots),
            secondary: SecondaryState::default(),
            opts,
            output: Vec::with_capacity(opts.limits.check(NAME, largest_window)?),
        };
        super::prefault(&mut applier.output);
        let mut written = 0u64;
        for (index, window) in self.windows.iter().enumerate() {
            applier.output.clear();
            applier.apply_window(window, index)?;
            sink.write_all(&applier.output)?;
            written += applier.output.len() as u64;
        }
        Ok(written)
    }
}

/// Why `apply_to_writer` stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("could not write the patched file: {0}")]
    Write(#[from] std::io::Error),
}

static DEFAULT_TABLE: std::sync::LazyLock<CodeTable> =
    std::sync::LazyLock::new(CodeTable::default_table);

/// The three sections of a window; LZMA and FGK keep state per kind.
#[derive(Clone, Copy)]
enum SectionKind {
    Data = 0,
    Instructions = 1,
    Addresses = 2,
}

impl SectionKind {
    fn name(self) -> &'static str {
        match self {
            SectionKind::Data => "data",
            SectionKind::Instructions => "instruction",
            SectionKind::Addresses => "address",
        }
    }
}

/// Everything one `apply` call carries from window to window.
struct Applier<'p, 's> {
    secondary_kind: Option<SecondaryCompressor>,
    source: &'s [u8],
    table: &'p CodeTable,
    cache: AddressCache,
    secondary: SecondaryState,
    opts: &'p ApplyOptions,
    output: Vec<u8>,
}

impl Applier<'_, '_> {
    fn decode_section<'d>(
        &mut self,
        section: &Section<'d>,
        kind: SectionKind,
    ) -> Result<Cow<'d, [u8]>, PatchError> {
        let state = &mut self.secondary;
        let limits = &self.opts.limits;
        if !section.compressed {
            return Ok(Cow::Borrowed(section.bytes));
        }
        let kind_name = kind.name();
        let mut cursor = Cursor::new(section.bytes);
        let size = read_varint(&mut cursor, "compressed section length")?;
        if size == 0 {
            return Err(corrupt(format!(
                "compressed {kind_name} section decompresses to nothing"
            )));
        }
        let size = limits.check(NAME, size)?;
        let input = cursor.rest();
        // Huffman codes spend at least a bit per byte, so a larger claim is
        // refused before anything is allocated for it.
        let huffman = matches!(
            self.secondary_kind,
            Some(SecondaryCompressor::Djw | SecondaryCompressor::Fgk)
        );
        if huffman && size as u64 > (input.len() as u64).saturating_mul(8) {
            return Err(corrupt(format!(
                "compressed {kind_name} section claims {size} bytes from {} bytes",
                input.len()
            )));
        }
        match self.secondary_kind {
            Some(SecondaryCompressor::Djw) => djw::decode(input, size)
                .map(Cow::Owned)
                .map_err(|e| corrupt(format!("{kind_name} section: {e}"))),
            Some(SecondaryCompressor::Lzma) => {
                let slot = state
                    .lzma
                    .get_mut(kind as usize)
                    .ok_or_else(|| corrupt("unknown section"))?;
                if slot.is_none() {
                    *slot =
                        Some(lzma::LzmaSectionDecoder::new().map_err(|e| corrupt(e.to_string()))?);
                }
                let decoder = slot
                    .as_mut()
                    .ok_or_else(|| corrupt("LZMA decoder missing"))?;
                decoder
                    .decode(input, size)
                    .map(Cow::Owned)
                    .map_err(|e| corrupt(format!("{kind_name} section: {e}")))
            }
            Some(SecondaryCompressor::Fgk) => {
                let decoder = state
                    .fgk
                    .get_mut(kind as usize)
                    .ok_or_else(|| corrupt("unknown section"))?
                    .get_or_insert_with(Box::default);
                decoder
                    .decode(input, size)
                    .map(Cow::Owned)
                    .map_err(|e| corrupt(format!("{kind_name} section: {e}")))
            }
            None => Err(corrupt("compressed section without a secondary compressor")),
        }
    }

    fn apply_window(&mut self, window: &Window<'_>, index: usize) -> Result<(), PatchError> {
        let data = self.decode_section(&window.data, SectionKind::Data)?;
        let instructions = self.decode_section(&window.instructions, SectionKind::Instructions)?;
        let addresses = self.decode_section(&window.addresses, SectionKind::Addresses)?;
        let (source, table, opts) = (self.source, self.table, self.opts);
        let cache = &mut self.cache;
        cache.reset();
        let output = &mut self.output;
        let mut data = Cursor::new(&data);
        let mut instructions = Cursor::new(&instructions);
        let mut addresses = Cursor::new(&addresses);

        // Where copies below `copy_len` read: a source slice, or a range of
        // the output made by earlier windows.
        let copy_len = window.copy_window.len();
        let segment = match window.copy_window {
            CopyWindow::None => Segment::Source(&[]),
            CopyWindow::Source { offset, len } => {
                let end = offset.saturating_add(len);
                let slice = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .and_then(|(start, end)| source.get(start..end))
                    .ok_or_else(|| {
                        corrupt(format!(
                            "window {index} copies from source bytes {offset}..{end} but the source file has {} bytes (is it the right file?)",
                            source.len()
                        ))
                    })?;
                Segment::Source(slice)
            }
            CopyWindow::Target { offset, .. } => Segment::Output(
                usize::try_from(offset)
                    .map_err(|_| corrupt("target copy window is out of range"))?,
            ),
        };

        let window_start = output.len();
        let window_end = copy_len
            .checked_add(window.target_len)
            .ok_or_else(|| corrupt("window address space overflows"))?;
        // Position in the address space: copy segment, then this window.
        let mut here = copy_len;
        while !instructions.is_empty() {
            let opcode = instructions
                .byte()
                .ok_or_else(|| truncated("instruction"))?;
            for half in table.entries[usize::from(opcode)] {
                if half.operation == Operation::Noop {
                    continue;
                }
                let size = if half.size == 0 {
                    read_varint(&mut instructions, "instruction size")?
                } else {
                    u64::from(half.size)
                };
                let next = here
                    .checked_add(size)
                    .filter(|&next| next <= window_end)
                    .ok_or_else(|| {
                        corrupt(format!(
                            "window {index} has instructions past its {}-byte target length",
                            window.target_len
                        ))
                    })?;
                // In range: `next` is within the window's checked length.
                let size = size as usize;
                match half.operation {
                    Operation::Noop => {}
                    Operation::Add => {
                        let bytes = data.take(size).ok_or_else(|| {
                            corrupt(format!("window {index} runs out of ADD data"))
                        })?;
                        output.extend_from_slice(bytes);
                    }
                    Operation::Run => {
                        let byte = data.byte().ok_or_else(|| {
                            corrupt(format!("window {index} runs out of RUN data"))
                        })?;
                        output.resize(output.len() + size, byte);
                    }
                    Operation::Copy { mode } => {
                        let address = cache.decode(mode, here, &mut addresses).map_err(
                            |e| match e {
                                AddressError::Truncated => {
                                    corrupt(format!("window {index} runs out of COPY addresses"))
                                }
                                AddressError::Invalid => corrupt(format!(
                                    "window {index} has a COPY address that is not before the copy"
                                )),
                            },
                        )?;
                        copy(output, &segment, copy_len, window_start, address, size).ok_or_else(
                            || corrupt(format!("window {index} has a COPY outside its window")),
                        )?;
                    }
                }
                here = next;
            }
        }
        if here != window_end {
            return Err(corrupt(format!(
                "window {index} makes {} bytes, not its declared {}",
                here - copy_len,
                window.target_len
            )));
        }
        if !data.is_empty() {
            return Err(corrupt(format!("window {index} has unused data")));
        }
        if !addresses.is_empty() {
            return Err(corrupt(format!("window {index} has unused addresses")));
        }
        if let Some(expected) = window.adler32
            && !opts.ignore_checksums
        {
            let made = output.get(window_start..).unwrap_or_default();
            let actual = adler32(made);
            if actual != expected {
                return Err(PatchError::ChecksumMismatch {
                    format: NAME,
                    what: "target window Adler-32",
                    expected: format!("{expected:08x}"),
                    actual: format!("{actual:08x}"),
                });
            }
        }
        Ok(())
    }
}

enum Segment<'s> {
    Source(&'s [u8]),
    /// Starts at this offset of the output.
    Output(usize),
}

/// Executes one COPY of `size` bytes from `address` in the window's address
/// space. `None` if any byte is outside the copy segment or not yet made.
fn copy(
    output: &mut Vec<u8>,
    segment: &Segment<'_>,
    copy_len: u64,
    window_start: usize,
    address: u64,
    size: usize,
) -> Option<()> {
    let end = address.checked_add(size as u64)?;
    if end <= copy_len {
        // Entirely inside the copy segment.
        let start = usize::try_from(address).ok()?;
        match *segment {
            Segment::Source(bytes) => {
                output.extend_from_slice(bytes.get(start..start.checked_add(size)?)?)
            }
            Segment::Output(base) => {
                let from = base.checked_add(start)?;
                let to = from.checked_add(size)?;
                if to > output.len() {
                    return None;
                }
                output.extend_from_within(from..to);
            }
        }
        return Some(());
    }
    if address >= copy_len {
        // Inside this window; may overlap the bytes it is making.
        let from = window_start.checked_add(usize::try_from(address - copy_len).ok()?)?;
        if from >= output.len() {
            return None;
        }
        // The bytes made from `from` on repeat with period `distance`, so
        // each pass can copy everything made so far from `from`: the chunk
        // doubles until the copy is done.
        let distance = output.len() - from;
        let mut copied = 0usize;
        while copied < size {
            let chunk = (size - copied).min(distance + copied);
            output.extend_from_within(from..from + chunk);
            copied += chunk;
        }
        return Some(());
    }
    // Straddles the end of the segment into this window: byte by byte.
    for offset in 0..size as u64 {
        let position = address + offset;
        let byte = if position < copy_len {
            match *segment {
                Segment::Source(bytes) => *bytes.get(usize::try_from(position).ok()?)?,
                Segment::Output(base) => {
                    *output.get(base.checked_add(usize::try_from(position).ok()?)?)?
                }
            }
        } else {
            let at = window_start.checked_add(usize::try_from(position - copy_len).ok()?)?;
            *output.get(at)?
        };
        output.push(byte);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_the_definition() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        // Long enough for the vector paths and the modulo folding.
        let bytes: Vec<u8> = (0..100_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in &bytes {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&bytes), (b << 16) | a);
    }

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 16383, 16384, 123_456_789, u64::MAX] {
            let mut bytes = Vec::new();
            write_varint(&mut bytes, value);
            assert_eq!(bytes.len(), code_table::varint_len(value));
            assert_eq!(Cursor::new(&bytes).varint(), Some(value));
        }
        let mut out = Vec::new();
        write_varint(&mut out, 123_456_789);
        assert_eq!(out, [0xBA, 0xEF, 0x9A, 0x15]); // RFC 3284 section 2 example
        assert_eq!(
            Cursor::new(&[0x81]).varint_checked(),
            Err(VarintError::Truncated)
        );
        assert_eq!(
            Cursor::new(&[0xFF; 11]).varint_checked(),
            Err(VarintError::Overflow)
        );
    }

    /// Builds a patch with one window from raw sections (no secondary).
    fn one_window(
        copy: Option<(u64, u64)>,
        target_len: u64,
        data: &[u8],
        instructions: &[u8],
        addresses: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![0xD6, 0xC3, 0xC4, 0, 0];
        let mut body = Vec::new();
        write_varint(&mut body, target_len);
        body.push(0);
        write_varint(&mut body, data.len() as u64);
        write_varint(&mut body, instructions.len() as u64);
        write_varint(&mut body, addresses.len() as u64);
        body.extend_from_slice(data);
        body.extend_from_slice(instructions);
        body.extend_from_slice(addresses);
        match copy {
            Some((offset, len)) => {
                out.push(WINDOW_SOURCE);
                write_varint(&mut out, len);
                write_varint(&mut out, offset);
            }
            None => out.push(0),
        }
        write_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        out
    }

    fn apply_bytes(patch: &[u8], source: &[u8]) -> Result<Vec<u8>, PatchError> {
        parse(patch, &Limits::default())?.apply(source, &ApplyOptions::default())
    }

    // Opcodes of the default table used below.
    const ADD_3: u8 = 4;
    const RUN: u8 = 0;
    const COPY_4_SELF: u8 = 20;
    const COPY_4_HERE: u8 = 36;
    const COPY_SIZED_SELF: u8 = 19;

    #[test]
    fn hand_made_window_applies() {
        // ADD "abc", RUN 5 x 'z', COPY 4 from source 2, COPY 6 from here-3.
        let patch = one_window(
            Some((0, 8)),
            3 + 5 + 4 + 6,
            b"abcz",
            &[ADD_3, RUN, 5, COPY_4_SELF, COPY_SIZED_SELF + 16, 6],
            &[2, 3],
        );
        let made = apply_bytes(&patch, b"01234567").unwrap();
        assert_eq!(made, b"abczzzzz2345345345");
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.output_size(8), 18);
        assert_eq!(parsed.summary().target_size, Some(18));
        assert_eq!(parsed.app_header_names(), None);
    }

    #[test]
    fn overlapping_target_copy_repeats_a_pattern() {
        // ADD "ab", then COPY 10 bytes from 2 back (mode HERE).
        let patch = one_window(None, 12, b"ab", &[3, COPY_4_HERE - 1, 10], &[2]);
        assert_eq!(apply_bytes(&patch, b"").unwrap(), b"abababababab");
    }

    #[test]
    fn target_window_over_the_limit_is_too_large_before_allocating() {
        let patch = one_window(None, 1 << 40, b"", &[], &[]);
        let error = parse(&patch, &Limits::default()).unwrap_err();
        assert_eq!(
            error,
            PatchError::TooLarge {
                format: NAME,
                size: 1 << 40,
                max: Limits::DEFAULT_MAX_IMAGE_SIZE
            }
        );
        let small = Limits { max_image_size: 10 };
        let patch = one_window(None, 11, b"", &[], &[]);
        assert!(matches!(
            parse(&patch, &small),
            Err(PatchError::TooLarge { size: 11, .. })
        ));
        let parsed = parse(&patch, &Limits::default()).unwrap();
        let options = ApplyOptions {
            limits: small,
            ignore_checksums: false,
        };
        assert!(matches!(
            parsed.apply(b"", &options),
            Err(PatchError::TooLarge { .. })
        ));
    }

    #[test]
    fn copies_outside_their_windows_are_corrupt() {
        // Source segment past the end of the source file.
        let patch = one_window(Some((4, 8)), 4, b"", &[COPY_4_SELF], &[0]);
        assert!(matches!(
            apply_bytes(&patch, b"01234567"),
            Err(PatchError::Corrupt { .. })
        ));
        // Address at or after the current position.
        let patch = one_window(Some((0, 4)), 4, b"", &[COPY_4_SELF], &[4]);
        assert!(matches!(
            apply_bytes(&patch, b"0123"),
            Err(PatchError::Corrupt { .. })
        ));
        // HERE mode reaching before the start of the address space.
        let patch = one_window(None, 4, b"", &[COPY_4_HERE], &[9]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Corrupt { .. })
        ));
        // A copy that straddles the segment end reads into the window: fine.
        let patch = one_window(Some((0, 2)), 6, b"xy", &[ADD_3 - 1, COPY_4_SELF], &[0]);
        assert_eq!(apply_bytes(&patch, b"ab").unwrap(), b"xyabxy");
    }

    #[test]
    fn short_sections_are_corrupt() {
        // ADD 3 with only 2 data bytes.
        let patch = one_window(None, 3, b"ab", &[ADD_3], &[]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Corrupt { .. })
        ));
        // RUN with no data byte.
        let patch = one_window(None, 5, b"", &[RUN, 5], &[]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Corrupt { .. })
        ));
        // RUN whose size is missing.
        let patch = one_window(None, 5, b"a", &[RUN], &[]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Truncated { .. })
        ));
        // COPY with no address.
        let patch = one_window(Some((0, 4)), 4, b"", &[COPY_4_SELF], &[]);
        assert!(matches!(
            apply_bytes(&patch, b"0123"),
            Err(PatchError::Corrupt { .. })
        ));
        // Instructions making more or fewer bytes than declared.
        let patch = one_window(None, 2, b"abc", &[ADD_3], &[]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Corrupt { .. })
        ));
        let patch = one_window(None, 4, b"abc", &[ADD_3], &[]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Corrupt { .. })
        ));
        // Unused data.
        let patch = one_window(None, 3, b"abcd", &[ADD_3], &[]);
        assert!(matches!(
            apply_bytes(&patch, b""),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn truncated_and_malformed_headers_are_clear_errors() {
        let patch = one_window(None, 3, b"abc", &[ADD_3], &[]);
        assert_eq!(apply_bytes(&patch, b"").unwrap(), b"abc");
        // A header alone is a valid patch for an empty target.
        assert_eq!(apply_bytes(&patch[..5], b"x").unwrap(), b"");
        for cut in 6..patch.len() {
            let error = parse(&patch[..cut], &Limits::default()).unwrap_err();
            assert!(
                matches!(
                    error,
                    PatchError::Truncated { .. } | PatchError::Corrupt { .. }
                ),
                "cut at {cut}: {error:?}"
            );
        }
        assert!(matches!(
            parse(b"PK\x03\x04", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        assert!(matches!(
            parse(&[0xD6, 0xC3, 0xC4, 1, 0], &Limits::default()),
            Err(PatchError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(&[0xD6, 0xC3, 0xC4, 0, 0x08], &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        assert!(matches!(
            parse(&[0xD6, 0xC3, 0xC4, 0, 0x01, 9], &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        // Delta indicator set without a secondary compressor.
        let mut bad = patch.clone();
        let delta_indicator_at = 5 + 1 + 1 + 1;
        bad[delta_indicator_at] = DATA_COMPRESSED;
        assert!(matches!(
            parse(&bad, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        // Encoding length that disagrees with the sections.
        let mut bad = patch.clone();
        bad[6] += 1;
        assert!(parse(&bad, &Limits::default()).is_err());
        assert!(!matches(&patch[..3]));
        assert!(matches(&patch));
    }

    #[test]
    fn adler32_is_checked_unless_ignored() {
        let mut patch = one_window(None, 3, b"abc", &[ADD_3], &[]);
        patch[5] = WINDOW_ADLER32;
        let checksum = adler32(b"abc").to_be_bytes();
        // The checksum sits after the three section lengths.
        let at = 5 + 1 + 1 + 1 + 1 + 3;
        patch[6] += 4;
        let mut good = patch.clone();
        good.splice(at..at, checksum);
        assert_eq!(apply_bytes(&good, b"").unwrap(), b"abc");
        let mut bad = patch.clone();
        bad.splice(at..at, [0, 0, 0, 1]);
        let parsed = parse(&bad, &Limits::default()).unwrap();
        assert!(matches!(
            parsed.apply(b"", &ApplyOptions::default()),
            Err(PatchError::ChecksumMismatch { .. })
        ));
        let options = ApplyOptions {
            ignore_checksums: true,
            ..ApplyOptions::default()
        };
        assert_eq!(parsed.apply(b"", &options).unwrap(), b"abc");
    }

    #[test]
    fn corrupt_secondary_streams_are_corrupt() {
        for id in [SECONDARY_DJW, SECONDARY_LZMA, SECONDARY_FGK] {
            let mut patch = vec![0xD6, 0xC3, 0xC4, 0, HEADER_SECONDARY, id, 0];
            // Window: target 3, instructions compressed: size 1 then junk.
            let body = [
                3,
                INSTRUCTIONS_COMPRESSED,
                3,
                4,
                0,
                b'a',
                b'b',
                b'c',
                1,
                0xFF,
                0x13,
                0x37,
            ];
            patch.push(body.len() as u8);
            patch.extend_from_slice(&body);
            let parsed = parse(&patch, &Limits::default()).unwrap();
            let error = parsed.apply(b"", &ApplyOptions::default()).unwrap_err();
            assert!(
                matches!(error, PatchError::Corrupt { .. }),
                "{id}: {error:?}"
            );
        }
    }

    #[test]
    fn custom_code_table_equal_to_the_default_decodes() {
        // The nested delta: one window, ADD the whole default table string.
        let table = CodeTable::default_table().to_string_form();
        let mut nested = vec![0xD6, 0xC3, 0xC4, 0, 0, 0];
        let mut body = Vec::new();
        write_varint(&mut body, table.len() as u64);
        body.push(0);
        write_varint(&mut body, table.len() as u64);
        let mut instructions = vec![1];
        write_varint(&mut instructions, table.len() as u64);
        write_varint(&mut body, instructions.len() as u64);
        write_varint(&mut body, 0);
        body.extend_from_slice(&table);
        body.extend_from_slice(&instructions);
        write_varint(&mut nested, body.len() as u64);
        nested.extend_from_slice(&body);

        let plain = one_window(None, 3, b"abc", &[ADD_3], &[]);
        let mut patch = vec![0xD6, 0xC3, 0xC4, 0, HEADER_CODE_TABLE];
        write_varint(&mut patch, nested.len() as u64 + 2);
        patch.extend_from_slice(&[4, 3]);
        patch.extend_from_slice(&nested);
        patch.extend_from_slice(&plain[5..]);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(
            parsed.code_table.as_deref(),
            Some(&CodeTable::default_table())
        );
        assert_eq!(parsed.apply(b"", &ApplyOptions::default()).unwrap(), b"abc");

        // A table that says ADD 3 is opcode 4 but with SAME slots missing is refused.
        let mut bad = patch.clone();
        let same_at = patch.len() - plain.len() + 5 - nested.len() - 1;
        bad[same_at] = 0;
        assert!(matches!(
            parse(&bad, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn target_copy_windows_copy_earlier_output() {
        // Window 1 adds "hello"; window 2 copies "ell" from it (VCD_TARGET
        // segment offset 1, length 3) and adds "!".
        let first = one_window(None, 5, b"hello", &[6], &[]);
        let mut patch = first.clone();
        let mut body = Vec::new();
        write_varint(&mut body, 4);
        body.push(0);
        write_varint(&mut body, 1); // data: "!"
        write_varint(&mut body, 3); // instructions: COPY sized, 3; ADD 1
        write_varint(&mut body, 1); // address
        body.push(b'!');
        body.extend_from_slice(&[COPY_SIZED_SELF, 3, 2]);
        body.push(0);
        patch.push(WINDOW_TARGET);
        write_varint(&mut patch, 3);
        write_varint(&mut patch, 1);
        write_varint(&mut patch, body.len() as u64);
        patch.extend_from_slice(&body);
        assert_eq!(apply_bytes(&patch, b"").unwrap(), b"helloell!");
        let parsed = parse(&patch, &Limits::default()).unwrap();
        let mut streamed = Vec::new();
        let written = parsed
            .apply_to_writer(b"", &ApplyOptions::default(), &mut streamed)
            .unwrap();
        assert_eq!((written, &streamed[..]), (9, &b"helloell!"[..]));
        assert_eq!(
            parsed.windows[1].copy_window,
            CopyWindow::Target { offset: 1, len: 3 }
        );

        // A target segment reaching past the output made so far is corrupt.
        let mut bad = first.clone();
        bad.push(WINDOW_TARGET);
        write_varint(&mut bad, 3);
        write_varint(&mut bad, 3);
        write_varint(&mut bad, body.len() as u64);
        bad.extend_from_slice(&body);
        assert!(matches!(
            parse(&bad, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn streaming_writes_windows_until_one_fails() {
        let good = one_window(None, 3, b"abc", &[ADD_3], &[]);
        let bad = one_window(None, 3, b"ab", &[ADD_3], &[]);
        let mut patch = good.clone();
        patch.extend_from_slice(&good[5..]);
        patch.extend_from_slice(&bad[5..]);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        let mut streamed = Vec::new();
        let error = parsed
            .apply_to_writer(b"", &ApplyOptions::default(), &mut streamed)
            .unwrap_err();
        assert!(matches!(
            error,
            StreamError::Patch(PatchError::Corrupt { .. })
        ));
        assert_eq!(streamed, b"abcabc");

        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let parsed = parse(&good, &Limits::default()).unwrap();
        let error = parsed
            .apply_to_writer(b"", &ApplyOptions::default(), &mut Full)
            .unwrap_err();
        assert!(matches!(error, StreamError::Write(_)), "{error}");
    }

    #[test]
    fn app_header_shapes() {
        let with = |header: &[u8]| {
            let mut patch = vec![0xD6, 0xC3, 0xC4, 0, HEADER_APP_HEADER];
            write_varint(&mut patch, header.len() as u64);
            patch.extend_from_slice(header);
            patch
        };
        let patch = with(b"out.bin/G");
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(
            parsed.app_header_names(),
            Some(AppHeaderNames {
                target_name: b"out.bin",
                target_compression: b"G",
                source_name: None,
                source_compression: None,
            })
        );
        let patch = with(b"a/b/c/d/e");
        let names = parse(&patch, &Limits::default())
            .unwrap()
            .app_header_names()
            .unwrap();
        assert_eq!(names.source_compression, Some(&b"d/e"[..]));
        let patch = with(b"just-a-name");
        assert_eq!(
            parse(&patch, &Limits::default())
                .unwrap()
                .app_header_names(),
            None
        );
    }

    #[test]
    fn app_header_names_read_as_text() {
        let mut header = b"caf\xc3\xa9 \xff\xfe.sfc/G/a\\b\n.smc/".to_vec();
        let mut patch = vec![0xD6, 0xC3, 0xC4, 0, HEADER_APP_HEADER];
        write_varint(&mut patch, header.len() as u64);
        patch.append(&mut header);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(
            parsed.app_header_names().unwrap().rows(),
            vec![
                ("target name", "caf\u{e9} \\xff\\xfe.sfc".to_string()),
                ("target compression", "gzip (G)".to_string()),
                ("source name", "a\\\\b\\n.smc".to_string()),
            ]
        );
        assert_eq!(bytes_as_text(b"\x80ok\xc3"), "\\x80ok\\xc3");
        assert_eq!(bytes_as_text(b"x/Q"), "x/Q");
        assert_eq!(compression_text(b"Q\x01"), "Q\\x01");
    }

    #[test]
    fn oversized_huffman_claims_are_refused_before_allocating() {
        for id in [SECONDARY_DJW, SECONDARY_FGK] {
            let mut patch = vec![0xD6, 0xC3, 0xC4, 0, HEADER_SECONDARY, id, 0];
            // Data section claims 2^29 bytes from 2 bytes of input.
            let mut body = vec![];
            write_varint(&mut body, 1 << 29);
            body.push(DATA_COMPRESSED);
            let mut data = Vec::new();
            write_varint(&mut data, 1 << 29);
            data.extend_from_slice(&[0, 0]);
            write_varint(&mut body, data.len() as u64);
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&data);
            write_varint(&mut patch, body.len() as u64);
            patch.extend_from_slice(&body);
            let parsed = parse(&patch, &Limits::default()).unwrap();
            let options = ApplyOptions {
                limits: Limits {
                    max_image_size: 1 << 30,
                },
                ignore_checksums: false,
            };
            let error = parsed.apply(b"", &options).unwrap_err();
            assert!(error.to_string().contains("claims"), "{error}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024),
            with_magic in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = if with_magic { vec![0xD6, 0xC3, 0xC4, 0] } else { Vec::new() };
            bytes.extend_from_slice(&tail);
            let limits = Limits { max_image_size: 1 << 20 };
            if let Ok(parsed) = parse(&bytes, &limits) {
                let options = ApplyOptions { limits, ignore_checksums: false };
                let _ = parsed.apply(&tail, &options);
            }
        }

        #[test]
        fn mutated_real_patches_never_panic(
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..4096,
        ) {
            let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/patches/");
            let original = std::fs::read(format!("{fixtures}nes15_ntsc2pal.xdelta3-default.vcdiff")).unwrap_or_default();
            let mut bytes = original.clone();
            for (at, value) in flips {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = value;
                }
            }
            bytes.truncate(cut.max(4));
            let source = vec![0u8; 40976];
            if let Ok(parsed) = parse(&bytes, &Limits::default()) {
                let _ = parsed.apply(&source, &ApplyOptions::default());
            }
        }
    }
}
