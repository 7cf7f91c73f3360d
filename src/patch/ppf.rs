//! PPF (PlayStation Patch Format) 1.0, 2.0 and 3.0.
//!
//! A PPF patch is a header followed by records that overwrite bytes at an
//! offset. Versions 2.0 and 3.0 carry a 1024-byte copy of the original image
//! at a fixed offset ("block check") to identify it; 2.0 also carries the
//! original's size; 3.0 may carry the original bytes of every record ("undo"
//! data), which lets a patched image be restored.

use super::reader::ByteReader;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "PPF";

const MAGIC_V1: &[u8; 5] = b"PPF10";
const MAGIC_V2: &[u8; 5] = b"PPF20";
const MAGIC_V3: &[u8; 5] = b"PPF30";

const DESCRIPTION_OFFSET: usize = 6;
const DESCRIPTION_LEN: usize = 50;
/// Magic, encoding byte and description: the part every version shares.
const COMMON_HEADER_LEN: usize = DESCRIPTION_OFFSET + DESCRIPTION_LEN;
const BLOCK_CHECK_LEN: usize = 1024;
/// Where the block check was copied from in a CD image (BIN) or a PrimoDVD
/// image (GI).
const BLOCK_CHECK_OFFSET_BIN: u64 = 0x9320;
const BLOCK_CHECK_OFFSET_GI: u64 = 0x80A0;

const DIZ_BEGIN: &[u8] = b"@BEGIN_FILE_ID.DIZ";
const DIZ_END: &[u8] = b"@END_FILE_ID.DIZ";

/// A record's data is at most this long: its length is one byte.
const MAX_RECORD_LEN: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PpfVersion {
    V1,
    V2,
    V3,
}

impl PpfVersion {
    /// The version as PPF's own tools name it: `1.0`, `2.0`, `3.0`.
    pub fn number(self) -> &'static str {
        match self {
            PpfVersion::V1 => "1.0",
            PpfVersion::V2 => "2.0",
            PpfVersion::V3 => "3.0",
        }
    }
}

/// The kind of disc image a PPF 3.0 patch was made for; it decides where
/// the block check was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Bin,
    Gi,
}

impl ImageType {
    fn block_check_offset(self) -> u64 {
        match self {
            ImageType::Bin => BLOCK_CHECK_OFFSET_BIN,
            ImageType::Gi => BLOCK_CHECK_OFFSET_GI,
        }
    }
}

/// The bytes a record writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordBytes<'a> {
    Literal(&'a [u8]),
    /// PPF 1.0's documented run form (length byte 0): `count` copies of `byte`.
    Repeat {
        byte: u8,
        count: u8,
    },
}

impl RecordBytes<'_> {
    pub fn len(&self) -> usize {
        match self {
            RecordBytes::Literal(data) => data.len(),
            RecordBytes::Repeat { count, .. } => usize::from(*count),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_into(&self, destination: &mut [u8]) {
        match self {
            RecordBytes::Literal(data) => {
                for (slot, byte) in destination.iter_mut().zip(data.iter()) {
                    *slot = *byte;
                }
            }
            RecordBytes::Repeat { byte, .. } => destination.fill(*byte),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PpfRecord<'a> {
    pub offset: u64,
    pub data: RecordBytes<'a>,
    /// PPF 3.0 with undo: the original bytes, as long as `data`.
    pub undo: Option<&'a [u8]>,
}

impl PpfRecord<'_> {
    /// One past the last byte this record writes.
    fn end(&self) -> u64 {
        // Cannot overflow: parse bounds offset + length by the image limit.
        self.offset.saturating_add(self.data.len() as u64)
    }
}

/// The 1024 bytes of the original image a PPF 2.0/3.0 patch identifies it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCheck<'a> {
    pub image_offset: u64,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PpfPatch<'a> {
    pub version: PpfVersion,
    /// The 50-byte description field as stored (space or NUL padded).
    pub description: &'a [u8],
    /// PPF 2.0 only: the size of the image the patch was made for.
    pub source_size: Option<u32>,
    /// PPF 3.0 only; earlier versions are always for BIN images.
    pub image_type: ImageType,
    pub block_check: Option<BlockCheck<'a>>,
    /// PPF 3.0: every record carries undo data.
    pub has_undo: bool,
    pub records: Vec<PpfRecord<'a>>,
    /// The FILE_ID.DIZ text of a PPF 2.0/3.0 trailer, without its markers.
    pub file_id_diz: Option<&'a [u8]>,
}

pub fn matches(bytes: &[u8]) -> bool {
    [MAGIC_V1, MAGIC_V2, MAGIC_V3]
        .iter()
        .any(|magic| bytes.starts_with(*magic))
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<PpfPatch<'a>, PatchError> {
    let version = if bytes.starts_with(MAGIC_V1) {
        PpfVersion::V1
    } else if bytes.starts_with(MAGIC_V2) {
        PpfVersion::V2
    } else if bytes.starts_with(MAGIC_V3) {
        PpfVersion::V3
    } else {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with PPF10, PPF20 or PPF30".to_string(),
        });
    };

    let mut cursor = ByteReader::at(NAME, bytes, DESCRIPTION_OFFSET);
    let description = cursor.take(DESCRIPTION_LEN, "the header")?;

    let mut source_size = None;
    let mut image_type = ImageType::Bin;
    let mut has_block_check = false;
    let mut has_undo = false;
    match version {
        PpfVersion::V1 => {}
        PpfVersion::V2 => {
            source_size = Some(cursor.u32_le("the header")?);
            has_block_check = true;
        }
        PpfVersion::V3 => {
            image_type = match cursor.byte("the header")? {
                0 => ImageType::Bin,
                1 => ImageType::Gi,
                other => {
                    return Err(PatchError::Corrupt {
                        format: NAME,
                        detail: format!("unknown image type {other} (0 is BIN, 1 is GI)"),
                    });
                }
            };
            has_block_check = flag(cursor.byte("the header")?, "block check")?;
            has_undo = flag(cursor.byte("the header")?, "undo")?;
            cursor.byte("the header")?;
        }
    }

    let block_check = if has_block_check {
        Some(BlockCheck {
            image_offset: image_type.block_check_offset(),
            data: cursor.take(BLOCK_CHECK_LEN, "the block check")?,
        })
    } else {
        None
    };

    let (records_end, file_id_diz) = match version {
        PpfVersion::V1 => (bytes.len(), None),
        PpfVersion::V2 => find_file_id_diz(bytes, cursor.position(), 4)?,
        PpfVersion::V3 => find_file_id_diz(bytes, cursor.position(), 2)?,
    };
    let mut records_cursor = ByteReader::at(
        NAME,
        bytes.get(..records_end).unwrap_or_default(),
        cursor.position(),
    );

    let mut records = Vec::new();
    while records_cursor.remaining() > 0 {
        let offset = match version {
            PpfVersion::V3 => records_cursor.u64_le("a record offset")?,
            _ => u64::from(records_cursor.u32_le("a record offset")?),
        };
        let length = records_cursor.byte("a record length")?;
        let data = if length == 0 && version == PpfVersion::V1 {
            let run = records_cursor.take(2, "a run record")?;
            RecordBytes::Repeat {
                byte: run.first().copied().unwrap_or_default(),
                count: run.get(1).copied().unwrap_or_default(),
            }
        } else {
            RecordBytes::Literal(records_cursor.take(usize::from(length), "record data")?)
        };
        let undo = if has_undo {
            Some(records_cursor.take(data.len(), "undo data")?)
        } else {
            None
        };
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| PatchError::Corrupt {
                format: NAME,
                detail: format!("record offset {offset:#x} is past any possible image"),
            })?;
        limits.check(NAME, end)?;
        records.push(PpfRecord { offset, data, undo });
    }

    Ok(PpfPatch {
        version,
        description,
        source_size,
        image_type,
        block_check,
        has_undo,
        records,
        file_id_diz,
    })
}

fn flag(value: u8, what: &str) -> Result<bool, PatchError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(PatchError::Corrupt {
            format: NAME,
            detail: format!("the {what} flag is {other}, expected 0 or 1"),
        }),
    }
}

/// Finds an optional FILE_ID.DIZ trailer: begin marker, text, end marker,
/// then the text's length (`length_width` bytes, little-endian). Returns
/// where the records stop and the text.
fn find_file_id_diz(
    bytes: &[u8],
    records_start: usize,
    length_width: usize,
) -> Result<(usize, Option<&[u8]>), PatchError> {
    let Some(end_marker_start) = bytes.len().checked_sub(length_width + DIZ_END.len()) else {
        return Ok((bytes.len(), None));
    };
    if end_marker_start < records_start
        || bytes.get(end_marker_start..end_marker_start + DIZ_END.len()) != Some(DIZ_END)
    {
        return Ok((bytes.len(), None));
    }
    let search_area = bytes
        .get(records_start..end_marker_start)
        .unwrap_or_default();

    // Trust the stored length when it points at the begin marker; some
    // writers store it wrongly, so otherwise take the last begin marker.
    let mut declared_length = 0usize;
    for (shift, byte) in bytes
        .get(end_marker_start + DIZ_END.len()..)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        declared_length |= usize::from(*byte) << (8 * shift);
    }
    let from_declared = declared_length
        .checked_add(DIZ_BEGIN.len())
        .and_then(|span| end_marker_start.checked_sub(span))
        .filter(|start| *start >= records_start)
        .filter(|start| bytes.get(*start..*start + DIZ_BEGIN.len()) == Some(DIZ_BEGIN));
    let begin = match from_declared {
        Some(start) => start,
        None => search_area
            .windows(DIZ_BEGIN.len())
            .rposition(|window| window == DIZ_BEGIN)
            .map(|relative| records_start + relative)
            .ok_or_else(|| PatchError::Corrupt {
                format: NAME,
                detail: "the FILE_ID.DIZ trailer has an end marker but no begin marker".to_string(),
            })?,
    };
    let text = bytes.get(begin + DIZ_BEGIN.len()..end_marker_start);
    Ok((begin, text))
}

impl PpfPatch<'_> {
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: self.source_size.map(u64::from),
            target_size: self
                .source_size
                .map(|size| self.output_size(u64::from(size))),
            source_checksum: None,
            target_checksum: None,
        }
    }

    /// The exact length `apply` returns for a source of `source_len` bytes:
    /// records past the end grow the image.
    pub fn output_size(&self, source_len: u64) -> u64 {
        self.records
            .iter()
            .map(PpfRecord::end)
            .fold(source_len, u64::max)
    }

    /// The description with its padding removed.
    pub fn description_text(&self) -> String {
        let until_nul = self
            .description
            .split(|byte| *byte == 0)
            .next()
            .unwrap_or_default();
        latin1(until_nul).trim_end().to_string()
    }

    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if !opts.ignore_checksums {
            if let Some(expected) = self.source_size
                && u64::from(expected) != source.len() as u64
            {
                return Err(PatchError::ChecksumMismatch {
                    format: NAME,
                    what: "file size",
                    expected: format!("{expected} bytes"),
                    actual: format!("{} bytes", source.len()),
                });
            }
            self.verify_block_check(source)?;
        }
        let mut image = self.grown_copy(source, opts)?;
        for record in &self.records {
            write_at(&mut image, record.offset, |slot| {
                record.data.write_into(slot)
            });
        }
        Ok(image)
    }

    /// Restores the original image from a patched one with the undo data of
    /// a PPF 3.0 patch. The size stays that of the patched image: PPF does
    /// not record how long the original was. The image must hold the
    /// patched bytes at every record, unless checksums are ignored.
    pub fn revert(&self, patched: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if !self.has_undo {
            return Err(PatchError::Unsupported {
                format: NAME,
                detail: format!(
                    "this PPF {} patch carries no undo data, so it cannot be reverted (only a PPF 3.0 made with undo data can be); keep the original ROM",
                    self.version.number()
                ),
            });
        }
        if !opts.ignore_checksums && !self.patched_bytes_present(patched) {
            return Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "at its records",
                expected: "the bytes it writes (a file it patched)".to_string(),
                actual: "other bytes there".to_string(),
            });
        }
        let mut image = self.grown_copy(patched, opts)?;
        // Backwards, so that overlapping records restore the oldest bytes.
        for record in self.records.iter().rev() {
            let undo = record.undo.unwrap_or_default();
            write_at(&mut image, record.offset, |slot| {
                for (target, original) in slot.iter_mut().zip(undo.iter()) {
                    *target = *original;
                }
            });
        }
        if !opts.ignore_checksums {
            self.verify_block_check(&image)?;
        }
        Ok(image)
    }

    /// Whether `image` is one this patch made and its undo data can undo:
    /// it holds the patched bytes at every record (where records overlap,
    /// the last one's), and some record changed something.
    pub fn holds_patched_bytes(&self, image: &[u8]) -> bool {
        let changes_something =
            self.records
                .iter()
                .any(|record| match (record.data, record.undo) {
                    (RecordBytes::Literal(data), Some(undo)) => data != undo,
                    _ => false,
                });
        self.has_undo && changes_something && self.patched_bytes_present(image)
    }

    /// Whether `image` holds the bytes every record writes (the last one's
    /// where records overlap), within its length.
    fn patched_bytes_present(&self, image: &[u8]) -> bool {
        if self.output_size(image.len() as u64) != image.len() as u64 {
            return false;
        }
        let mut final_bytes = std::collections::BTreeMap::new();
        let in_order = self
            .records
            .windows(2)
            .all(|pair| pair[0].end() <= pair[1].offset);
        for record in &self.records {
            let mut written = vec![0u8; record.data.len()];
            record.data.write_into(&mut written);
            let start = usize::try_from(record.offset).unwrap_or(usize::MAX);
            if in_order {
                // Records that never overlap: compare in place.
                if image.get(start..start.saturating_add(written.len())) != Some(&written[..]) {
                    return false;
                }
                continue;
            }
            for (at, byte) in (record.offset..).zip(written) {
                final_bytes.insert(at, byte);
            }
        }
        final_bytes.into_iter().all(|(at, byte)| {
            usize::try_from(at)
                .ok()
                .and_then(|at| image.get(at))
                .is_some_and(|held| *held == byte)
        })
    }

    fn grown_copy(&self, image: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let size = opts
            .limits
            .check(NAME, self.output_size(image.len() as u64))?;
        let mut copy = Vec::with_capacity(size);
        copy.extend_from_slice(image);
        copy.resize(size, 0);
        Ok(copy)
    }

    /// Compares the stored block with the image; bytes the image lacks count
    /// as zero, which is what the tools store for an image that short.
    fn verify_block_check(&self, image: &[u8]) -> Result<(), PatchError> {
        let Some(block) = &self.block_check else {
            return Ok(());
        };
        let start = usize::try_from(block.image_offset).unwrap_or(usize::MAX);
        let matches = block.data.iter().enumerate().all(|(index, expected)| {
            let actual = start
                .checked_add(index)
                .and_then(|position| image.get(position))
                .copied()
                .unwrap_or(0);
            actual == *expected
        });
        if matches {
            return Ok(());
        }
        Err(PatchError::ChecksumMismatch {
            format: NAME,
            what: "block check",
            expected: format!(
                "of the 1024 bytes at offset {:#x} as the patch holds them",
                block.image_offset
            ),
            actual: "other bytes there".to_string(),
        })
    }
}

/// Runs `write` on the part of `image` starting at `offset`; the image was
/// already grown to hold every record, so the slice is never cut short.
fn write_at(image: &mut [u8], offset: u64, write: impl FnOnce(&mut [u8])) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if let Some(slot) = image.get_mut(start..) {
        write(slot);
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| char::from(*byte)).collect()
}

/// Makes a PPF 3.0 patch (BIN image type, no undo data) turning `source`
/// into `target`. The block check is included when the source reaches past
/// the checked block. PPF cannot shrink a file, so a shorter target is
/// refused.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    if target.len() < source.len() {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!(
                "PPF cannot shrink a file ({} bytes to {} bytes)",
                source.len(),
                target.len()
            ),
        });
    }
    let block_start = BLOCK_CHECK_OFFSET_BIN as usize;
    let block = source.get(block_start..block_start + BLOCK_CHECK_LEN);

    let mut patch = Vec::with_capacity(COMMON_HEADER_LEN + 4 + BLOCK_CHECK_LEN);
    patch.extend_from_slice(MAGIC_V3);
    patch.push(2); // encoding byte PPF 3.0 tools write
    patch.extend_from_slice(&[b' '; DESCRIPTION_LEN]);
    patch.push(0); // image type BIN
    patch.push(u8::from(block.is_some()));
    patch.push(0); // no undo data
    patch.push(0);
    if let Some(block) = block {
        patch.extend_from_slice(block);
    }

    let mut position = 0usize;
    while position < target.len() {
        if source.get(position) == target.get(position) {
            position += 1;
            continue;
        }
        // Past the source's end every byte must be written, so that the
        // image grows to the target's length.
        let run_start = position;
        while position < target.len()
            && position - run_start < MAX_RECORD_LEN
            && (position >= source.len() || source.get(position) != target.get(position))
        {
            position += 1;
        }
        let run = target.get(run_start..position).unwrap_or_default();
        patch.extend_from_slice(&(run_start as u64).to_le_bytes());
        patch.push(run.len() as u8);
        patch.extend_from_slice(run);
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn options() -> ApplyOptions {
        ApplyOptions::default()
    }

    fn ppf1(records: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC_V1.to_vec();
        bytes.push(0);
        bytes.extend_from_slice(&[b' '; DESCRIPTION_LEN]);
        bytes.extend_from_slice(records);
        bytes
    }

    fn ppf2(size: u32, block: &[u8; BLOCK_CHECK_LEN], records: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC_V2.to_vec();
        bytes.push(1);
        bytes.extend_from_slice(&[b' '; DESCRIPTION_LEN]);
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(block);
        bytes.extend_from_slice(records);
        bytes
    }

    fn ppf3_header(block_check: bool, undo: bool) -> Vec<u8> {
        let mut bytes = MAGIC_V3.to_vec();
        bytes.push(2);
        bytes.extend_from_slice(b"test patch");
        bytes.resize(COMMON_HEADER_LEN, 0);
        bytes.extend_from_slice(&[0, u8::from(block_check), u8::from(undo), 0]);
        bytes
    }

    #[test]
    fn ppf1_records_overwrite_and_grow() {
        let patch_bytes = ppf1(&[1, 0, 0, 0, 2, 0xAA, 0xBB, 5, 0, 0, 0, 1, 0xCC]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(patch.version, PpfVersion::V1);
        assert_eq!(patch.records.len(), 2);
        assert_eq!(patch.output_size(4), 6);
        let output = patch.apply(&[0, 1, 2, 3], &options()).unwrap();
        assert_eq!(output, vec![0, 0xAA, 0xBB, 3, 0, 0xCC]);
    }

    #[test]
    fn ppf1_run_record_repeats_a_byte() {
        let patch_bytes = ppf1(&[2, 0, 0, 0, 0, 0x77, 3]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(
            patch.records[0].data,
            RecordBytes::Repeat {
                byte: 0x77,
                count: 3
            }
        );
        let output = patch.apply(&[9; 4], &options()).unwrap();
        assert_eq!(output, vec![9, 9, 0x77, 0x77, 0x77]);
    }

    #[test]
    fn truncated_record_is_refused() {
        let patch_bytes = ppf1(&[1, 0, 0, 0, 3, 0xAA]);
        assert!(matches!(
            parse(&patch_bytes, &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
        let short_header = b"PPF30\x02desc".to_vec();
        assert!(matches!(
            parse(&short_header, &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
    }

    #[test]
    fn other_magic_is_not_ppf() {
        assert!(!matches(b"PATCH"));
        assert!(matches!(
            parse(b"PPF40\xff", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
    }

    #[test]
    fn record_past_the_limit_is_refused_at_parse() {
        let patch_bytes = ppf1(&[0xFF, 0xFF, 0xFF, 0x7F, 1, 0]);
        let limits = Limits {
            max_image_size: 1 << 20,
        };
        assert_eq!(
            parse(&patch_bytes, &limits),
            Err(PatchError::TooLarge {
                format: NAME,
                size: 0x8000_0000,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn ppf2_checks_size_and_block() {
        let mut source = vec![0u8; 0x9320 + BLOCK_CHECK_LEN + 16];
        source[0x9320] = 0x42;
        let mut block = [0u8; BLOCK_CHECK_LEN];
        block[0] = 0x42;
        let patch_bytes = ppf2(source.len() as u32, &block, &[0, 0, 0, 0, 1, 0x99]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(patch.summary().source_size, Some(source.len() as u64));
        assert_eq!(patch.summary().target_size, Some(source.len() as u64));
        let output = patch.apply(&source, &options()).unwrap();
        assert_eq!(output[0], 0x99);

        let shorter = &source[..source.len() - 1];
        assert!(matches!(
            patch.apply(shorter, &options()),
            Err(PatchError::ChecksumMismatch {
                what: "file size",
                ..
            })
        ));
        let mut other = source.clone();
        other[0x9321] = 1;
        assert!(matches!(
            patch.apply(&other, &options()),
            Err(PatchError::ChecksumMismatch {
                what: "block check",
                ..
            })
        ));
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..options()
        };
        assert_eq!(patch.apply(&other, &forced).unwrap()[0], 0x99);
    }

    #[test]
    fn ppf2_file_id_diz_is_not_read_as_records() {
        let mut records = vec![3, 0, 0, 0, 1, 0x55];
        records.extend_from_slice(DIZ_BEGIN);
        records.extend_from_slice(b"hello");
        records.extend_from_slice(DIZ_END);
        records.extend_from_slice(&5u32.to_le_bytes());
        let patch_bytes = ppf2(4, &[0; BLOCK_CHECK_LEN], &records);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(patch.records.len(), 1);
        assert_eq!(patch.file_id_diz, Some(&b"hello"[..]));
        assert_eq!(
            patch.apply(&[1, 2, 3, 4], &options()).unwrap(),
            vec![1, 2, 3, 0x55]
        );
    }

    #[test]
    fn ppf3_file_id_diz_with_a_wrong_length_is_still_found() {
        let mut patch_bytes = ppf3_header(false, false);
        patch_bytes.extend_from_slice(&1u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[1, 0x10]);
        patch_bytes.extend_from_slice(DIZ_BEGIN);
        patch_bytes.extend_from_slice(b"text");
        patch_bytes.extend_from_slice(DIZ_END);
        patch_bytes.extend_from_slice(&999u16.to_le_bytes());
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(patch.records.len(), 1);
        assert_eq!(patch.file_id_diz, Some(&b"text"[..]));
        assert_eq!(patch.description_text(), "test patch");
    }

    #[test]
    fn ppf3_undo_reverts_a_patched_image() {
        let mut patch_bytes = ppf3_header(false, true);
        patch_bytes.extend_from_slice(&2u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[2, 0xA0, 0xA1, 2, 3]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert!(patch.has_undo);
        let patched = patch.apply(&[0, 1, 2, 3, 4], &options()).unwrap();
        assert_eq!(patched, vec![0, 1, 0xA0, 0xA1, 4]);
        assert_eq!(
            patch.revert(&patched, &options()).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn only_an_image_with_every_record_patched_holds_the_patched_bytes() {
        let mut patch_bytes = ppf3_header(false, true);
        patch_bytes.extend_from_slice(&1u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[2, 0xA0, 0xA1, 1, 2]);
        patch_bytes.extend_from_slice(&4u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[1, 0xB0, 4]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        let original = [0, 1, 2, 3, 4, 5];
        let patched = patch.apply(&original, &options()).unwrap();
        assert!(patch.holds_patched_bytes(&patched));
        assert!(!patch.holds_patched_bytes(&original));
        // One record patched, the other not: not this patch's result.
        let mut half = patched.clone();
        half[4] = 4;
        assert!(!patch.holds_patched_bytes(&half));
        // Too short for the last record.
        assert!(!patch.holds_patched_bytes(&patched[..4]));
    }

    #[test]
    fn overlapping_records_are_judged_by_the_last_one() {
        let mut patch_bytes = ppf3_header(false, true);
        patch_bytes.extend_from_slice(&2u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[2, 0xA0, 0xA1, 2, 3]);
        patch_bytes.extend_from_slice(&1u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[2, 0xC1, 0xC2, 1, 0xA0]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        let original = [0, 1, 2, 3, 4];
        let patched = patch.apply(&original, &options()).unwrap();
        assert_eq!(patched, vec![0, 0xC1, 0xC2, 0xA1, 4]);
        assert!(patch.holds_patched_bytes(&patched));
        assert_eq!(patch.revert(&patched, &options()).unwrap(), original);
        // Without undo data nothing can be undone, patched or not.
        let mut no_undo = ppf3_header(false, false);
        no_undo.extend_from_slice(&0u64.to_le_bytes());
        no_undo.extend_from_slice(&[1, 7]);
        assert!(
            !parse(&no_undo, &Limits::default())
                .unwrap()
                .holds_patched_bytes(&[7])
        );
    }

    #[test]
    fn revert_without_undo_is_refused() {
        let mut patch_bytes = ppf3_header(false, false);
        patch_bytes.extend_from_slice(&0u64.to_le_bytes());
        patch_bytes.extend_from_slice(&[1, 7]);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(
            patch.revert(&[7], &options()).unwrap_err().to_string(),
            "PPF patch cannot be used here: this PPF 3.0 patch carries no undo data, so it cannot be reverted (only a PPF 3.0 made with undo data can be); keep the original ROM"
        );
    }

    #[test]
    fn ppf3_gi_block_check_is_read_from_its_own_offset() {
        let mut patch_bytes = ppf3_header(true, false);
        patch_bytes[0x38] = 1;
        let mut block = [0u8; BLOCK_CHECK_LEN];
        block[1] = 0xEE;
        patch_bytes.extend_from_slice(&block);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(patch.image_type, ImageType::Gi);
        let mut image = vec![0u8; 0x80A0 + BLOCK_CHECK_LEN];
        image[0x80A1] = 0xEE;
        assert_eq!(patch.apply(&image, &options()).unwrap(), image);
        image[0x80A1] = 0;
        assert!(patch.apply(&image, &options()).is_err());
    }

    #[test]
    fn create_writes_exact_ppf3_records() {
        let patch_bytes = create(&[1, 2, 3, 4], &[1, 9, 9, 4, 0, 5]).unwrap();
        let mut expected = ppf3_header(false, false);
        expected[DESCRIPTION_OFFSET..COMMON_HEADER_LEN].fill(b' ');
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&[2, 9, 9]);
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&[2, 0, 5]);
        assert_eq!(patch_bytes, expected);
        assert!(matches!(
            create(&[1, 2], &[1]),
            Err(PatchError::Unsupported { .. })
        ));
    }

    #[test]
    fn create_splits_long_runs() {
        let source = vec![0u8; 600];
        let target = vec![1u8; 600];
        let patch_bytes = create(&source, &target).unwrap();
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        let lengths: Vec<usize> = patch.records.iter().map(|r| r.data.len()).collect();
        assert_eq!(lengths, vec![255, 255, 90]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..2048),
                              version in 0usize..4) {
            let mut bytes = match version {
                0 => MAGIC_V1.to_vec(),
                1 => MAGIC_V2.to_vec(),
                2 => MAGIC_V3.to_vec(),
                _ => Vec::new(),
            };
            bytes.extend_from_slice(&tail);
            let limits = Limits { max_image_size: 1 << 16 };
            if let Ok(patch) = parse(&bytes, &limits) {
                let opts = ApplyOptions { limits, ignore_checksums: true };
                let source = [0u8; 64];
                if let Ok(output) = patch.apply(&source, &opts) {
                    prop_assert_eq!(output.len() as u64, patch.output_size(64));
                }
                let _ = patch.revert(&source, &opts);
            }
        }

        #[test]
        fn ppf3_header_with_random_records_never_panics(
            flags in proptest::collection::vec(0u8..3, 4),
            tail in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let mut bytes = ppf3_header(false, false);
            bytes.truncate(COMMON_HEADER_LEN);
            bytes.extend_from_slice(&flags);
            bytes.extend_from_slice(&tail);
            let limits = Limits { max_image_size: 1 << 16 };
            if let Ok(patch) = parse(&bytes, &limits) {
                let opts = ApplyOptions { limits, ignore_checksums: true };
                let _ = patch.apply(&[1, 2, 3], &opts);
                let _ = patch.revert(&[1, 2, 3], &opts);
            }
        }

        #[test]
        fn mutated_patches_never_panic(
            source in proptest::collection::vec(any::<u8>(), 0..300),
            extra in proptest::collection::vec(any::<u8>(), 0..300),
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>()) {
            let mut target: Vec<u8> = source.iter().map(|byte| byte.wrapping_add(1)).collect();
            target.extend_from_slice(&extra);
            let mut bytes = create(&source, &target).unwrap();
            let len = bytes.len();
            for (index, value) in mutations {
                bytes[index % len] = value;
            }
            bytes.truncate(cut % (len + 1));
            let limits = Limits { max_image_size: 1 << 16 };
            if let Ok(patch) = parse(&bytes, &limits) {
                let opts = ApplyOptions { limits, ignore_checksums: true };
                let _ = patch.apply(&source, &opts);
                let _ = patch.revert(&target, &opts);
            }
        }

        #[test]
        fn create_then_apply_round_trips(
            source in proptest::collection::vec(any::<u8>(), 0..2048),
            extra in proptest::collection::vec(any::<u8>(), 0..600),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..64)) {
            let mut target = source.clone();
            for (index, value) in flips {
                if !target.is_empty() {
                    let len = target.len();
                    target[index % len] = value;
                }
            }
            target.extend_from_slice(&extra);
            let patch_bytes = create(&source, &target).unwrap();
            let patch = parse(&patch_bytes, &Limits::default()).unwrap();
            prop_assert_eq!(patch.output_size(source.len() as u64), target.len() as u64);
            prop_assert_eq!(patch.apply(&source, &options()).unwrap(), target);
        }
    }
}
