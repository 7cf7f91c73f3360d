//! APS patches, two unrelated formats that share a name:
//!
//! - APS N64 (`APS10`, Silo and Fractal's Advanced Patching System, 1998):
//!   a header with a 50-byte description, for type 1 a cartridge check
//!   (image format, cartridge ID, country, the 8-byte header CRC), the output
//!   size, then IPS-like records `u32 offset, u8 length, data` where length 0
//!   means a run `u8 value, u8 count`. All integers little-endian.
//! - APS GBA (`APS1`): source and target sizes, then 64 KiB blocks, each
//!   `u32 offset, u16 source CRC, u16 target CRC` and 65536 XOR bytes. The
//!   CRC is CRC-16/CCITT-FALSE over the whole block, zero-padded past the end
//!   of the file.

use crc::{CRC_16_IBM_3740, Crc};

use super::reader::ByteReader;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "APS";

const N64_MAGIC: &[u8] = b"APS10";
const GBA_MAGIC: &[u8] = b"APS1";
const DESCRIPTION_LEN: usize = 50;
const N64_PAD_LEN: usize = 5;
const DEFAULT_DESCRIPTION: &[u8] = b"no description";
const TYPE_SIMPLE: u8 = 0;
const TYPE_N64: u8 = 1;
const ENCODING_SIMPLE: u8 = 0;
/// Offsets of the fields the cartridge check compares, in the big-endian
/// (`.z64`) N64 header: CRC1 and CRC2, then cartridge ID and country code.
const N64_HEADER_CRC_AT: usize = 0x10;
const N64_CART_ID_AT: usize = 0x3C;
const N64_COUNTRY_AT: usize = 0x3E;
const Z64_FIRST_WORD: [u8; 4] = [0x80, 0x37, 0x12, 0x40];
const V64_FIRST_WORD: [u8; 4] = [0x37, 0x80, 0x40, 0x12];

const GBA_BLOCK_SIZE: usize = 0x10000;
const GBA_HEADER_LEN: usize = 12;
const GBA_RECORD_LEN: usize = 8 + GBA_BLOCK_SIZE;
const GBA_BLOCK_CRC: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);

/// A parsed APS patch of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApsPatch<'a> {
    N64(ApsN64Patch<'a>),
    Gba(ApsGbaPatch<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApsN64Patch<'a> {
    /// The raw 50-byte description (space or NUL padded).
    pub description: &'a [u8],
    /// Present for type-1 (N64) patches.
    pub cartridge: Option<N64Cartridge>,
    pub output_size: u32,
    pub records: Vec<ApsN64Record<'a>>,
}

/// What a type-1 patch records about the ROM it was made from; all fields
/// in big-endian (`.z64`) order as the spec asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct N64Cartridge {
    pub image_format: N64ImageFormat,
    pub cart_id: [u8; 2],
    pub country: u8,
    pub header_crc: [u8; 8],
}

/// The layout of the image the patch was made against; its offsets and
/// data are in that layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum N64ImageFormat {
    /// 0: Doctor V64, 16-bit byte-swapped (`.v64`).
    DoctorV64,
    /// 1: CD64, Z64, Wild Card, SP: big-endian (`.z64`).
    BigEndian,
    Other(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApsN64Record<'a> {
    Data { offset: u32, bytes: &'a [u8] },
    Run { offset: u32, value: u8, count: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApsGbaPatch<'a> {
    pub source_size: u32,
    pub target_size: u32,
    pub blocks: Vec<ApsGbaBlock<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApsGbaBlock<'a> {
    pub offset: u32,
    pub source_crc16: u16,
    pub target_crc16: u16,
    /// Exactly 65536 bytes.
    pub xor: &'a [u8],
}

/// Cheap check for either kind (`APS1` starts both magics).
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(GBA_MAGIC)
}

/// Parses either kind. `APS10` also starts `APS1`: a file is read as GBA
/// when its length is exactly the GBA header plus whole blocks and every
/// block lies inside the files it describes; otherwise by its magic.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<ApsPatch<'a>, PatchError> {
    if !matches(bytes) {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with APS1 or APS10".into(),
        });
    }
    if has_gba_shape(bytes)
        && let Ok(patch) = parse_gba(bytes, limits)
        && patch.blocks_inside_files()
    {
        return Ok(ApsPatch::Gba(patch));
    }
    if bytes.starts_with(N64_MAGIC) {
        parse_n64(bytes, limits).map(ApsPatch::N64)
    } else {
        parse_gba(bytes, limits).map(ApsPatch::Gba)
    }
}

fn has_gba_shape(bytes: &[u8]) -> bool {
    bytes.len() >= GBA_HEADER_LEN && (bytes.len() - GBA_HEADER_LEN).is_multiple_of(GBA_RECORD_LEN)
}

fn parse_n64<'a>(bytes: &'a [u8], limits: &Limits) -> Result<ApsN64Patch<'a>, PatchError> {
    let mut cursor = ByteReader::at(NAME, bytes, N64_MAGIC.len());
    let patch_type = cursor.byte("the patch type")?;
    let encoding = cursor.byte("the encoding method")?;
    if patch_type != TYPE_SIMPLE && patch_type != TYPE_N64 {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!("patch type {patch_type} is not defined (0 simple, 1 N64)"),
        });
    }
    if encoding != ENCODING_SIMPLE {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!("encoding method {encoding} is not defined (only 0)"),
        });
    }
    let description = cursor.take(DESCRIPTION_LEN, "the description")?;
    let cartridge = if patch_type == TYPE_N64 {
        let image_format = match cursor.byte("the image format")? {
            0 => N64ImageFormat::DoctorV64,
            1 => N64ImageFormat::BigEndian,
            other => N64ImageFormat::Other(other),
        };
        let cart_id = cursor.array("the cartridge ID")?;
        let country = cursor.byte("the country code")?;
        let header_crc = cursor.array("the header CRC")?;
        cursor.take(N64_PAD_LEN, "the header padding")?;
        Some(N64Cartridge {
            image_format,
            cart_id,
            country,
            header_crc,
        })
    } else {
        None
    };
    let output_size = cursor.u32_le("the output size")?;
    limits.check(NAME, u64::from(output_size))?;

    let mut records = Vec::new();
    while !cursor.is_empty() {
        let record_at = cursor.position();
        let offset = cursor.u32_le("a record offset")?;
        let length = cursor.byte("a record length")?;
        let record = if length == 0 {
            let value = cursor.byte("a run value")?;
            let count = cursor.byte("a run length")?;
            ApsN64Record::Run {
                offset,
                value,
                count,
            }
        } else {
            let data = cursor.take(usize::from(length), "record data")?;
            ApsN64Record::Data {
                offset,
                bytes: data,
            }
        };
        let end = u64::from(offset) + record_len(&record);
        if end > u64::from(output_size) {
            return Err(PatchError::Corrupt {
                format: NAME,
                detail: format!(
                    "the record at byte {record_at} writes up to 0x{end:X}, past the {output_size}-byte output"
                ),
            });
        }
        records.push(record);
    }
    Ok(ApsN64Patch {
        description,
        cartridge,
        output_size,
        records,
    })
}

fn record_len(record: &ApsN64Record<'_>) -> u64 {
    match record {
        ApsN64Record::Data { bytes, .. } => bytes.len() as u64,
        ApsN64Record::Run { count, .. } => u64::from(*count),
    }
}

fn parse_gba<'a>(bytes: &'a [u8], limits: &Limits) -> Result<ApsGbaPatch<'a>, PatchError> {
    let mut cursor = ByteReader::at(NAME, bytes, GBA_MAGIC.len());
    let source_size = cursor.u32_le("the source size")?;
    let target_size = cursor.u32_le("the target size")?;
    limits.check(NAME, u64::from(target_size))?;
    let mut blocks = Vec::new();
    while !cursor.is_empty() {
        let offset = cursor.u32_le("a block offset")?;
        let source_crc16 = cursor.u16_le("a block source CRC")?;
        let target_crc16 = cursor.u16_le("a block target CRC")?;
        let xor = cursor.take(GBA_BLOCK_SIZE, "a 64 KiB XOR block")?;
        blocks.push(ApsGbaBlock {
            offset,
            source_crc16,
            target_crc16,
            xor,
        });
    }
    Ok(ApsGbaPatch {
        source_size,
        target_size,
        blocks,
    })
}

impl<'a> ApsPatch<'a> {
    pub fn summary(&self) -> PatchSummary {
        match self {
            ApsPatch::N64(patch) => PatchSummary {
                target_size: Some(u64::from(patch.output_size)),
                ..PatchSummary::default()
            },
            ApsPatch::Gba(patch) => PatchSummary {
                source_size: Some(u64::from(patch.source_size)),
                target_size: Some(u64::from(patch.target_size)),
                ..PatchSummary::default()
            },
        }
    }

    /// Both kinds store the output size; the source length does not matter.
    pub fn output_size(&self, _source_len: u64) -> u64 {
        match self {
            ApsPatch::N64(patch) => u64::from(patch.output_size),
            ApsPatch::Gba(patch) => u64::from(patch.target_size),
        }
    }

    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        match self {
            ApsPatch::N64(patch) => patch.apply(source, opts),
            ApsPatch::Gba(patch) => patch.apply(source, opts),
        }
    }
}

impl<'a> ApsN64Patch<'a> {
    /// The description without its padding, lossily decoded.
    pub fn description_text(&self) -> String {
        String::from_utf8_lossy(self.description)
            .trim_end_matches(['\0', ' '])
            .to_string()
    }

    /// Copies the source into an image of the stored output size (cut or
    /// zero-filled), then writes the records. A type-1 patch first checks the
    /// cartridge ID, country and header CRC unless `opts.ignore_checksums`.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if let Some(cartridge) = &self.cartridge
            && !opts.ignore_checksums
        {
            cartridge.verify(source)?;
        }
        let size = opts.limits.check(NAME, u64::from(self.output_size))?;
        let mut image = vec![0; size];
        let kept = size.min(source.len());
        if let (Some(dst), Some(src)) = (image.get_mut(..kept), source.get(..kept)) {
            dst.copy_from_slice(src);
        }
        for record in &self.records {
            let (offset, len) = match record {
                ApsN64Record::Data { offset, bytes } => (*offset, bytes.len()),
                ApsN64Record::Run { offset, count, .. } => (*offset, usize::from(*count)),
            };
            let start = usize::try_from(offset).ok();
            let window = start
                .and_then(|start| Some(start..start.checked_add(len)?))
                .and_then(|range| image.get_mut(range))
                .ok_or_else(|| PatchError::Corrupt {
                    format: NAME,
                    detail: format!("a record at 0x{offset:X} writes past the output"),
                })?;
            match record {
                ApsN64Record::Data { bytes, .. } => window.copy_from_slice(bytes),
                ApsN64Record::Run { value, .. } => window.fill(*value),
            }
        }
        Ok(image)
    }
}

impl N64Cartridge {
    /// Reads the cartridge fields from `image` laid out as the patch says.
    /// RomPatcher.js stores a `.v64` image's fields unswapped, so the raw
    /// bytes are accepted too.
    fn verify(&self, image: &[u8]) -> Result<(), PatchError> {
        let expected = self.fields();
        let declared_swapped = self.image_format == N64ImageFormat::DoctorV64;
        let found = read_cartridge_fields(image, declared_swapped);
        if found == Some(expected) || read_cartridge_fields(image, false) == Some(expected) {
            return Ok(());
        }
        Err(PatchError::ChecksumMismatch {
            format: NAME,
            what: "N64 cartridge ID, country and header CRC",
            expected: hex(&expected),
            actual: found.map_or_else(|| "missing (file too short)".into(), |f| hex(&f)),
        })
    }

    fn fields(&self) -> [u8; 11] {
        let mut fields = [0; 11];
        fields[..2].copy_from_slice(&self.cart_id);
        fields[2] = self.country;
        fields[3..].copy_from_slice(&self.header_crc);
        fields
    }
}

/// Cartridge ID, country and header CRC in big-endian order; `swapped`
/// reads a 16-bit byte-swapped image.
fn read_cartridge_fields(image: &[u8], swapped: bool) -> Option<[u8; 11]> {
    let byte = |index: usize| image.get(if swapped { index ^ 1 } else { index }).copied();
    let mut fields = [0; 11];
    fields[0] = byte(N64_CART_ID_AT)?;
    fields[1] = byte(N64_CART_ID_AT + 1)?;
    fields[2] = byte(N64_COUNTRY_AT)?;
    for (i, slot) in fields[3..].iter_mut().enumerate() {
        *slot = byte(N64_HEADER_CRC_AT + i)?;
    }
    Some(fields)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<'a> ApsGbaPatch<'a> {
    /// Creators only write blocks that start inside the source or target.
    fn blocks_inside_files(&self) -> bool {
        let covered = self.source_size.max(self.target_size);
        self.blocks.iter().all(|block| block.offset < covered)
    }

    /// Builds the target: the source cut or zero-filled to the target size,
    /// each block replaced by source XOR patch. Unless
    /// `opts.ignore_checksums`, the source size and every block's source and
    /// target CRC-16 must match.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if !opts.ignore_checksums && source.len() as u64 != u64::from(self.source_size) {
            return Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "file size",
                expected: format!("{} bytes", self.source_size),
                actual: format!("{} bytes", source.len()),
            });
        }
        let size = opts.limits.check(NAME, u64::from(self.target_size))?;
        let mut image = vec![0; size];
        let kept = size.min(source.len());
        if let (Some(dst), Some(src)) = (image.get_mut(..kept), source.get(..kept)) {
            dst.copy_from_slice(src);
        }
        let mut block = vec![0u8; GBA_BLOCK_SIZE];
        for patch_block in &self.blocks {
            let start = usize::try_from(patch_block.offset).unwrap_or(usize::MAX);
            copy_padded_block(source, start, &mut block);
            if !opts.ignore_checksums {
                check_block_crc(
                    patch_block.offset,
                    "source",
                    patch_block.source_crc16,
                    &block,
                )?;
            }
            for (byte, mask) in block.iter_mut().zip(patch_block.xor) {
                *byte ^= mask;
            }
            if !opts.ignore_checksums {
                check_block_crc(
                    patch_block.offset,
                    "target",
                    patch_block.target_crc16,
                    &block,
                )?;
            }
            let inside = image.len().saturating_sub(start).min(GBA_BLOCK_SIZE);
            if let (Some(dst), Some(src)) = (
                image.get_mut(start..start.saturating_add(inside)),
                block.get(..inside),
            ) {
                dst.copy_from_slice(src);
            }
        }
        Ok(image)
    }
}

/// Fills `block` with the 64 KiB of `data` at `start`, zeros past its end.
fn copy_padded_block(data: &[u8], start: usize, block: &mut [u8]) {
    block.fill(0);
    let available = data.get(start..).unwrap_or(&[]);
    let len = available.len().min(block.len());
    if let (Some(dst), Some(src)) = (block.get_mut(..len), available.get(..len)) {
        dst.copy_from_slice(src);
    }
}

fn check_block_crc(
    offset: u32,
    which: &'static str,
    expected: u16,
    block: &[u8],
) -> Result<(), PatchError> {
    let actual = GBA_BLOCK_CRC.checksum(block);
    if actual == expected {
        return Ok(());
    }
    Err(PatchError::ChecksumMismatch {
        format: NAME,
        what: if which == "source" {
            "block source CRC-16"
        } else {
            "block target CRC-16"
        },
        expected: format!("{expected:04x} (block at 0x{offset:X})"),
        actual: format!("{actual:04x}"),
    })
}

/// Creates an APS N64 patch. A big-endian or byte-swapped N64 image as source
/// gives a type-1 patch with the cartridge check; anything else type 0.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let output_size = u32::try_from(target.len()).map_err(|_| PatchError::Unsupported {
        format: NAME,
        detail: "APS N64 patches describe outputs of at most 4 GiB".into(),
    })?;
    let mut patch = N64_MAGIC.to_vec();
    let image_format = match source.get(..4) {
        Some(word) if word == Z64_FIRST_WORD => Some(N64ImageFormat::BigEndian),
        Some(word) if word == V64_FIRST_WORD => Some(N64ImageFormat::DoctorV64),
        _ => None,
    };
    let fields = image_format.and_then(|format| {
        read_cartridge_fields(source, format == N64ImageFormat::DoctorV64).map(|f| (format, f))
    });
    patch.push(if fields.is_some() {
        TYPE_N64
    } else {
        TYPE_SIMPLE
    });
    patch.push(ENCODING_SIMPLE);
    // RomPatcher.js's default text, NUL-padded: our patches then equal its.
    let mut description = [0u8; DESCRIPTION_LEN];
    description[..DEFAULT_DESCRIPTION.len()].copy_from_slice(DEFAULT_DESCRIPTION);
    patch.extend_from_slice(&description);
    if let Some((format, fields)) = fields {
        patch.push(if format == N64ImageFormat::DoctorV64 {
            0
        } else {
            1
        });
        patch.extend_from_slice(&fields);
        patch.extend_from_slice(&[0; N64_PAD_LEN]);
    }
    patch.extend_from_slice(&output_size.to_le_bytes());

    // Bytes past the source's end read as zero: apply zero-fills there.
    let old_byte = |i: usize| source.get(i).copied().unwrap_or(0);
    let mut at = 0;
    while at < target.len() {
        if target.get(at).copied() == Some(old_byte(at)) {
            at += 1;
            continue;
        }
        let start = at;
        while at < target.len()
            && at - start < usize::from(u8::MAX)
            && target.get(at).copied() != Some(old_byte(at))
        {
            at += 1;
        }
        let changed = target.get(start..at).unwrap_or(&[]);
        // `start` < target.len() <= u32::MAX, checked above.
        patch.extend_from_slice(&(start as u32).to_le_bytes());
        match changed {
            [first, rest @ ..] if rest.len() >= 2 && rest.iter().all(|b| b == first) => {
                patch.extend_from_slice(&[0, *first, changed.len() as u8]);
            }
            _ => {
                patch.push(changed.len() as u8);
                patch.extend_from_slice(changed);
            }
        }
    }
    Ok(patch)
}

/// Creates an APS GBA patch: one XOR block per differing 64 KiB region.
pub fn create_gba(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let too_big = || PatchError::Unsupported {
        format: NAME,
        detail: "APS GBA patches describe files of at most 4 GiB".into(),
    };
    let source_size = u32::try_from(source.len()).map_err(|_| too_big())?;
    let target_size = u32::try_from(target.len()).map_err(|_| too_big())?;
    let mut patch = GBA_MAGIC.to_vec();
    patch.extend_from_slice(&source_size.to_le_bytes());
    patch.extend_from_slice(&target_size.to_le_bytes());
    let covered = source.len().max(target.len());
    let mut old_block = vec![0u8; GBA_BLOCK_SIZE];
    let mut new_block = vec![0u8; GBA_BLOCK_SIZE];
    for start in (0..covered).step_by(GBA_BLOCK_SIZE) {
        copy_padded_block(source, start, &mut old_block);
        copy_padded_block(target, start, &mut new_block);
        if old_block == new_block {
            continue;
        }
        let offset = u32::try_from(start).map_err(|_| too_big())?;
        patch.extend_from_slice(&offset.to_le_bytes());
        patch.extend_from_slice(&GBA_BLOCK_CRC.checksum(&old_block).to_le_bytes());
        patch.extend_from_slice(&GBA_BLOCK_CRC.checksum(&new_block).to_le_bytes());
        patch.extend(old_block.iter().zip(&new_block).map(|(a, b)| a ^ b));
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    fn simple_header(output_size: u32) -> Vec<u8> {
        let mut patch = b"APS10\x00\x00".to_vec();
        patch.extend_from_slice(&[b' '; 50]);
        patch.extend_from_slice(&output_size.to_le_bytes());
        patch
    }

    #[test]
    fn crc16_is_ccitt_false() {
        assert_eq!(GBA_BLOCK_CRC.checksum(b"123456789"), 0x29B1);
    }

    #[test]
    fn n64_simple_records_and_runs() {
        let mut bytes = simple_header(6);
        bytes.extend_from_slice(&[1, 0, 0, 0, 2, 0xAA, 0xBB]); // data at 1
        bytes.extend_from_slice(&[3, 0, 0, 0, 0, 0x77, 3]); // run of 3 at 3
        let patch = parse(&bytes, &Limits::default()).unwrap();
        let ApsPatch::N64(n64) = &patch else {
            panic!("read as GBA")
        };
        assert_eq!(
            n64.records,
            vec![
                ApsN64Record::Data {
                    offset: 1,
                    bytes: &[0xAA, 0xBB]
                },
                ApsN64Record::Run {
                    offset: 3,
                    value: 0x77,
                    count: 3
                },
            ]
        );
        assert_eq!(n64.description_text(), "");
        assert_eq!(n64.description, &[b' '; 50][..]);
        assert_eq!(patch.output_size(100), 6);
        assert_eq!(patch.summary().target_size, Some(6));
        assert_eq!(
            patch.apply(&[9, 9, 9, 9], &opts()).unwrap(),
            vec![9, 0xAA, 0xBB, 0x77, 0x77, 0x77]
        );
        // Shrinking cuts the source.
        let mut shrink = simple_header(2);
        shrink.extend_from_slice(&[0, 0, 0, 0, 1, 5]);
        assert_eq!(
            parse(&shrink, &Limits::default())
                .unwrap()
                .apply(&[1, 2, 3], &opts())
                .unwrap(),
            vec![5, 2]
        );
    }

    #[test]
    fn n64_errors() {
        let mut past_end = simple_header(2);
        past_end.extend_from_slice(&[1, 0, 0, 0, 2, 1, 2]);
        assert!(matches!(
            parse(&past_end, &Limits::default()),
            Err(PatchError::Corrupt { format: "APS", .. })
        ));
        let mut cut = simple_header(8);
        cut.extend_from_slice(&[1, 0, 0, 0, 4, 1]);
        assert_eq!(
            parse(&cut, &Limits::default()),
            Err(PatchError::Truncated {
                format: "APS",
                what: "record data at byte 66 needs 4 bytes, 1 is left".into()
            })
        );
        assert!(matches!(
            parse(&simple_header(100), &Limits { max_image_size: 99 }),
            Err(PatchError::TooLarge { size: 100, .. })
        ));
        let mut bad_encoding = simple_header(1);
        bad_encoding[6] = 3;
        assert!(matches!(
            parse(&bad_encoding, &Limits::default()),
            Err(PatchError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(b"PATCH", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        assert!(matches!(
            parse(b"APS10\x00", &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
    }

    fn z64_image() -> Vec<u8> {
        let mut rom = vec![0u8; 0x80];
        rom[..4].copy_from_slice(&Z64_FIRST_WORD);
        rom[0x10..0x18].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        rom[0x3C..0x3F].copy_from_slice(b"NSE");
        rom
    }

    fn byte_swapped(image: &[u8]) -> Vec<u8> {
        image
            .chunks(2)
            .flat_map(|pair| pair.iter().rev().copied())
            .collect()
    }

    #[test]
    fn n64_cartridge_check() {
        let source = z64_image();
        let mut target = source.clone();
        target[0x50] = 0x99;
        let made = create(&source, &target).unwrap();
        assert_eq!(made[5], TYPE_N64);
        assert_eq!(
            &made[57..69],
            &[1, b'N', b'S', b'E', 1, 2, 3, 4, 5, 6, 7, 8]
        );
        let patch = parse(&made, &Limits::default()).unwrap();
        assert_eq!(patch.apply(&source, &opts()).unwrap(), target);

        let mut other = source.clone();
        other[0x17] = 0;
        assert_eq!(
            patch.apply(&other, &opts()),
            Err(PatchError::ChecksumMismatch {
                format: "APS",
                what: "N64 cartridge ID, country and header CRC",
                expected: "4e53450102030405060708".into(),
                actual: "4e53450102030405060700".into(),
            })
        );
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..opts()
        };
        assert!(patch.apply(&other, &forced).is_ok());

        // A patch made from a .v64 image stores the fields unswapped and
        // applies to the .v64 image.
        let v64_source = byte_swapped(&source);
        let v64_target = byte_swapped(&target);
        let v64_patch_bytes = create(&v64_source, &v64_target).unwrap();
        assert_eq!(&v64_patch_bytes[57..61], &[0, b'N', b'S', b'E']);
        let v64_patch = parse(&v64_patch_bytes, &Limits::default()).unwrap();
        assert_eq!(v64_patch.apply(&v64_source, &opts()).unwrap(), v64_target);
    }

    fn gba_pair() -> (Vec<u8>, Vec<u8>) {
        let source: Vec<u8> = (0..0x18000u32).map(|i| (i * 7) as u8).collect();
        let mut target = source.clone();
        target[0x12345] ^= 0x5A;
        target.extend_from_slice(&[1, 2, 3]);
        (source, target)
    }

    #[test]
    fn gba_create_apply_and_checks() {
        let (source, target) = gba_pair();
        let made = create_gba(&source, &target).unwrap();
        assert_eq!(made.len(), GBA_HEADER_LEN + GBA_RECORD_LEN);
        let patch = parse(&made, &Limits::default()).unwrap();
        assert!(matches!(patch, ApsPatch::Gba(_)));
        assert_eq!(patch.summary().source_size, Some(0x18000));
        assert_eq!(patch.output_size(0), 0x18003);
        assert_eq!(patch.apply(&source, &opts()).unwrap(), target);

        let mut wrong = source.clone();
        wrong[0x10001] ^= 1;
        assert!(matches!(
            patch.apply(&wrong, &opts()),
            Err(PatchError::ChecksumMismatch {
                what: "block source CRC-16",
                ..
            })
        ));
        assert!(matches!(
            patch.apply(&source[1..], &opts()),
            Err(PatchError::ChecksumMismatch {
                what: "file size",
                ..
            })
        ));
        let mut cut = made.clone();
        cut.pop();
        assert!(matches!(
            parse(&cut, &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024), n64 in any::<bool>()) {
            let mut bytes = if n64 { b"APS10".to_vec() } else { b"APS1".to_vec() };
            bytes.extend_from_slice(&tail);
            if let Ok(patch) = parse(&bytes, &Limits { max_image_size: 1 << 20 }) {
                let _ = patch.apply(&tail, &ApplyOptions::default());
                let _ = patch.summary();
            }
        }

        #[test]
        fn n64_create_apply_round_trip(
            source in proptest::collection::vec(any::<u8>(), 0..2048),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..32),
            new_len in 0usize..2600,
        ) {
            let mut target = source.clone();
            target.resize(new_len, 0x42);
            for (at, value) in edits {
                if let Some(byte) = target.get_mut(usize::from(at) % new_len.max(1)) {
                    *byte = value;
                }
            }
            let made = create(&source, &target).unwrap();
            let patch = parse(&made, &Limits::default()).unwrap();
            prop_assert_eq!(patch.apply(&source, &ApplyOptions::default()).unwrap(), target);
        }

        #[test]
        fn gba_create_apply_round_trip(
            source in proptest::collection::vec(any::<u8>(), 0..300),
            target in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let made = create_gba(&source, &target).unwrap();
            let patch = parse(&made, &Limits::default()).unwrap();
            prop_assert_eq!(patch.apply(&source, &ApplyOptions::default()).unwrap(), target);
        }
    }
}
