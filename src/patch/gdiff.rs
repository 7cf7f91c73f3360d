//! GDIFF, the Generic Diff Format (W3C NOTE-gdiff-19970901, Marimba 1997):
//! magic `D1 FF D1 FF`, version 4, then commands that build the new file
//! in order, integers big-endian (Java `DataOutputStream` order):
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | end of file |
//! | 1–246 | DATA: that many bytes follow |
//! | 247 / 248 | DATA: ushort / int length, then the bytes |
//! | 249–251 | COPY: ushort offset, then ubyte / ushort / int length |
//! | 252–254 | COPY: int offset, then ubyte / ushort / int length |
//! | 255 | COPY: long offset, int length |
//!
//! `int` and `long` are signed: negative values are corrupt. NINJA 2.0's
//! PHP applier read these integers little-endian, against the note; this
//! module follows the note.

use rustc_hash::FxHashMap;

use super::reader::ByteReader;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "GDIFF";

const MAGIC: [u8; 4] = [0xD1, 0xFF, 0xD1, 0xFF];
const VERSION: u8 = 4;
const END: u8 = 0;
const DATA_INLINE_MAX: u8 = 246;
const DATA_USHORT: u8 = 247;
const DATA_INT: u8 = 248;
const COPY_USHORT_UBYTE: u8 = 249;
const COPY_USHORT_USHORT: u8 = 250;
const COPY_USHORT_INT: u8 = 251;
const COPY_INT_UBYTE: u8 = 252;
const COPY_INT_USHORT: u8 = 253;
const COPY_INT_INT: u8 = 254;
const COPY_LONG_INT: u8 = 255;

/// Block size of the matcher in `create`: source blocks at multiples of
/// this are indexed, so copies shorter than it are not found.
const MATCH_BLOCK: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GdiffCommand<'a> {
    /// Append these bytes from the patch.
    Data(&'a [u8]),
    /// Append `length` bytes of the old file starting at `offset`.
    Copy { offset: u64, length: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdiffPatch<'a> {
    pub commands: Vec<GdiffCommand<'a>>,
    output_size: u64,
    /// The old file must be at least this long for every COPY to read.
    min_source_size: u64,
}

pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<GdiffPatch<'a>, PatchError> {
    if !matches(bytes) {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with D1 FF D1 FF".into(),
        });
    }
    let mut cursor = ByteReader::at(NAME, bytes, MAGIC.len());
    let version = cursor.byte("the version")?;
    if version != VERSION {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!("version {version} (only version 4 is defined)"),
        });
    }
    let mut commands = Vec::new();
    let mut output_size: u64 = 0;
    let mut min_source_size: u64 = 0;
    loop {
        let command_at = cursor.position();
        let code = cursor.byte("the next command or the end marker")?;
        let command = match code {
            END => break,
            1..=DATA_INLINE_MAX => {
                GdiffCommand::Data(cursor.take_u64(u64::from(code), "DATA bytes")?)
            }
            DATA_USHORT => {
                let length = u64::from(u16_be(&mut cursor, "a DATA length")?);
                GdiffCommand::Data(cursor.take_u64(length, "DATA bytes")?)
            }
            DATA_INT => {
                let length = i32_length(&mut cursor, command_at)?;
                GdiffCommand::Data(cursor.take_u64(length, "DATA bytes")?)
            }
            _ => {
                let offset = match code {
                    COPY_USHORT_UBYTE..=COPY_USHORT_INT => {
                        u64::from(u16_be(&mut cursor, "a COPY offset")?)
                    }
                    COPY_INT_UBYTE..=COPY_INT_INT => i32_length(&mut cursor, command_at)?,
                    _ => i64_offset(&mut cursor, command_at)?,
                };
                let length = match code {
                    COPY_USHORT_UBYTE | COPY_INT_UBYTE => u64::from(cursor.byte("a COPY length")?),
                    COPY_USHORT_USHORT | COPY_INT_USHORT => {
                        u64::from(u16_be(&mut cursor, "a COPY length")?)
                    }
                    _ => i32_length(&mut cursor, command_at)?,
                };
                let end = offset
                    .checked_add(length)
                    .ok_or_else(|| PatchError::Corrupt {
                        format: NAME,
                        detail: format!("the COPY at byte {command_at} overflows"),
                    })?;
                min_source_size = min_source_size.max(end);
                GdiffCommand::Copy { offset, length }
            }
        };
        output_size = output_size.saturating_add(command_len(&command));
        limits.check(NAME, output_size)?;
        commands.push(command);
    }
    if cursor.position() < bytes.len() {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: format!(
                "{} bytes follow the end marker at byte {}",
                bytes.len() - cursor.position(),
                cursor.position() - 1
            ),
        });
    }
    Ok(GdiffPatch {
        commands,
        output_size,
        min_source_size,
    })
}

fn command_len(command: &GdiffCommand<'_>) -> u64 {
    match command {
        GdiffCommand::Data(bytes) => bytes.len() as u64,
        GdiffCommand::Copy { length, .. } => *length,
    }
}

fn u16_be(reader: &mut ByteReader<'_>, what: &str) -> Result<u16, PatchError> {
    Ok(u16::from_be_bytes(reader.array(what)?))
}

/// A signed 32-bit length or offset; negative is corrupt.
fn i32_length(reader: &mut ByteReader<'_>, command_at: usize) -> Result<u64, PatchError> {
    let value = i32::from_be_bytes(reader.array("a 32-bit field")?);
    u64::try_from(value).map_err(|_| negative(command_at))
}

fn i64_offset(reader: &mut ByteReader<'_>, command_at: usize) -> Result<u64, PatchError> {
    let value = i64::from_be_bytes(reader.array("a 64-bit offset")?);
    u64::try_from(value).map_err(|_| negative(command_at))
}

fn negative(command_at: usize) -> PatchError {
    PatchError::Corrupt {
        format: NAME,
        detail: format!("the command at byte {command_at} has a negative offset or length"),
    }
}

impl<'a> GdiffPatch<'a> {
    /// GDIFF carries no checksums; the output size is the sum of the commands.
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            target_size: Some(self.output_size),
            ..PatchSummary::default()
        }
    }

    pub fn output_size(&self, _source_len: u64) -> u64 {
        self.output_size
    }

    /// The old file must reach every COPY; there is nothing else to verify.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let size = opts.limits.check(NAME, self.output_size)?;
        if (source.len() as u64) < self.min_source_size {
            return Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "file size",
                expected: format!("at least {} bytes", self.min_source_size),
                actual: format!("{} bytes", source.len()),
            });
        }
        let mut image = Vec::with_capacity(size);
        for command in &self.commands {
            match *command {
                GdiffCommand::Data(bytes) => image.extend_from_slice(bytes),
                GdiffCommand::Copy { offset, length } => {
                    let copied = usize::try_from(offset)
                        .ok()
                        .zip(usize::try_from(length).ok())
                        .and_then(|(start, len)| source.get(start..start.checked_add(len)?))
                        .ok_or_else(|| PatchError::Corrupt {
                            format: NAME,
                            detail: format!("a COPY of {length} bytes at {offset} is out of range"),
                        })?;
                    image.extend_from_slice(copied);
                }
            }
        }
        Ok(image)
    }
}

/// Creates a GDIFF patch: copies of runs found in the old file (matched
/// block by block, then extended), literal data elsewhere.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let mut patch = MAGIC.to_vec();
    patch.push(VERSION);

    // First position of each block of the old file, at block boundaries.
    // A 16-byte block is one u128 key with a cheap hash: the lookup runs at
    // every unmatched position of the new file.
    let key = |block: &[u8]| -> Option<u128> { Some(u128::from_le_bytes(block.try_into().ok()?)) };
    let mut block_starts: FxHashMap<u128, usize> = FxHashMap::default();
    for (index, block) in source.chunks_exact(MATCH_BLOCK).enumerate() {
        if let Some(block) = key(block) {
            block_starts.entry(block).or_insert(index * MATCH_BLOCK);
        }
    }

    let mut literal_start = 0;
    let mut at = 0;
    while at < target.len() {
        let found = target
            .get(at..at + MATCH_BLOCK)
            .and_then(key)
            .and_then(|block| block_starts.get(&block))
            .copied();
        let Some(mut source_at) = found else {
            at += 1;
            continue;
        };
        // Grow the match backwards into pending literal bytes, then forwards.
        let mut start = at;
        while start > literal_start
            && source_at > 0
            && source.get(source_at - 1) == target.get(start - 1)
        {
            start -= 1;
            source_at -= 1;
        }
        let mut end = at + MATCH_BLOCK;
        while end < target.len() && source.get(source_at + end - start) == target.get(end) {
            end += 1;
        }
        write_data(&mut patch, target.get(literal_start..start).unwrap_or(&[]));
        write_copy(&mut patch, source_at as u64, (end - start) as u64);
        at = end;
        literal_start = end;
    }
    write_data(&mut patch, target.get(literal_start..).unwrap_or(&[]));
    patch.push(END);
    Ok(patch)
}

fn write_data(patch: &mut Vec<u8>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let len = bytes.len().min(i32::MAX as usize);
        let (chunk, rest) = bytes.split_at(len);
        if len <= usize::from(DATA_INLINE_MAX) {
            patch.push(len as u8);
        } else if let Ok(short) = u16::try_from(len) {
            patch.push(DATA_USHORT);
            patch.extend_from_slice(&short.to_be_bytes());
        } else {
            patch.push(DATA_INT);
            patch.extend_from_slice(&(len as u32).to_be_bytes());
        }
        patch.extend_from_slice(chunk);
        bytes = rest;
    }
}

fn write_copy(patch: &mut Vec<u8>, mut offset: u64, mut length: u64) {
    const INT_MAX: u64 = i32::MAX as u64;
    while length > 0 {
        let len = length.min(INT_MAX);
        let (offset_code, offset_bytes): (u8, Vec<u8>) = if let Ok(short) = u16::try_from(offset) {
            (COPY_USHORT_UBYTE, short.to_be_bytes().to_vec())
        } else if offset <= INT_MAX {
            (COPY_INT_UBYTE, (offset as u32).to_be_bytes().to_vec())
        } else {
            (COPY_LONG_INT, offset.to_be_bytes().to_vec())
        };
        // Within an offset width the codes go ubyte, ushort, int.
        let (length_step, length_bytes): (u8, Vec<u8>) = if offset_code == COPY_LONG_INT {
            (0, (len as u32).to_be_bytes().to_vec())
        } else if let Ok(byte) = u8::try_from(len) {
            (0, vec![byte])
        } else if let Ok(short) = u16::try_from(len) {
            (1, short.to_be_bytes().to_vec())
        } else {
            (2, (len as u32).to_be_bytes().to_vec())
        };
        patch.push(offset_code + length_step);
        patch.extend_from_slice(&offset_bytes);
        patch.extend_from_slice(&length_bytes);
        offset += len;
        length -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Vec<u8> {
        vec![0xD1, 0xFF, 0xD1, 0xFF, 4]
    }

    #[test]
    fn every_command_form() {
        let source: Vec<u8> = (0..=255).collect();
        let mut bytes = header();
        bytes.extend_from_slice(&[2, b'h', b'i']); // inline DATA
        bytes.extend_from_slice(&[DATA_USHORT, 0, 1, b'!']);
        bytes.extend_from_slice(&[DATA_INT, 0, 0, 0, 1, b'?']);
        bytes.extend_from_slice(&[COPY_USHORT_UBYTE, 0, 10, 2]);
        bytes.extend_from_slice(&[COPY_USHORT_USHORT, 0, 20, 0, 1]);
        bytes.extend_from_slice(&[COPY_USHORT_INT, 0, 30, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[COPY_INT_UBYTE, 0, 0, 0, 40, 1]);
        bytes.extend_from_slice(&[COPY_INT_USHORT, 0, 0, 0, 50, 0, 1]);
        bytes.extend_from_slice(&[COPY_INT_INT, 0, 0, 0, 60, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[COPY_LONG_INT, 0, 0, 0, 0, 0, 0, 0, 70, 0, 0, 0, 2]);
        bytes.push(END);
        let patch = parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(patch.commands.len(), 10);
        assert_eq!(patch.output_size(0), 13);
        assert_eq!(patch.summary().target_size, Some(13));
        assert_eq!(
            patch.apply(&source, &ApplyOptions::default()).unwrap(),
            vec![b'h', b'i', b'!', b'?', 10, 11, 20, 30, 40, 50, 60, 70, 71]
        );
        assert_eq!(
            patch.apply(&source[..71], &ApplyOptions::default()),
            Err(PatchError::ChecksumMismatch {
                format: "GDIFF",
                what: "file size",
                expected: "at least 72 bytes".into(),
                actual: "71 bytes".into(),
            })
        );
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            parse(b"PATCH", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        assert!(matches!(
            parse(&[0xD1, 0xFF, 0xD1, 0xFF, 5, 0], &Limits::default()),
            Err(PatchError::Unsupported { .. })
        ));
        let mut no_end = header();
        no_end.extend_from_slice(&[1, b'x']);
        assert_eq!(
            parse(&no_end, &Limits::default()),
            Err(PatchError::Truncated {
                format: "GDIFF",
                what: "the next command or the end marker at byte 7 is missing".into(),
            })
        );
        let mut negative_len = header();
        negative_len.extend_from_slice(&[DATA_INT, 0xFF, 0xFF, 0xFF, 0xFF, END]);
        assert!(matches!(
            parse(&negative_len, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        let mut trailing = header();
        trailing.extend_from_slice(&[END, 0]);
        assert!(matches!(
            parse(&trailing, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        let mut huge = header();
        huge.extend_from_slice(&[COPY_INT_INT, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, END]);
        assert!(matches!(
            parse(
                &huge,
                &Limits {
                    max_image_size: 1 << 20
                }
            ),
            Err(PatchError::TooLarge { .. })
        ));
    }

    #[test]
    fn create_uses_copies() {
        let source: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut target = source.clone();
        target[2000] ^= 0xFF;
        let made = create(&source, &target).unwrap();
        assert!(made.len() < 40, "{} bytes", made.len());
        let patch = parse(&made, &Limits::default()).unwrap();
        assert_eq!(
            patch.apply(&source, &ApplyOptions::default()).unwrap(),
            target
        );
        assert_eq!(
            create(&[], &[]).unwrap(),
            vec![0xD1, 0xFF, 0xD1, 0xFF, 4, 0]
        );
    }

    #[test]
    fn long_copy_forms_encode() {
        let mut patch = Vec::new();
        write_copy(&mut patch, 0x1_0000_0000, 3);
        assert_eq!(
            patch,
            vec![COPY_LONG_INT, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]
        );
        patch.clear();
        write_copy(&mut patch, 0x10000, 0x10000);
        assert_eq!(patch, vec![COPY_INT_INT, 0, 1, 0, 0, 0, 1, 0, 0]);
        patch.clear();
        write_data(&mut patch, &[7; 300]);
        assert_eq!(&patch[..3], &[DATA_USHORT, 1, 44]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut bytes = header();
            bytes.extend_from_slice(&tail);
            if let Ok(patch) = parse(&bytes, &Limits { max_image_size: 1 << 20 }) {
                let _ = patch.apply(&tail, &ApplyOptions::default());
            }
        }

        #[test]
        fn create_apply_round_trip(
            source in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..6),
            insert in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            // Targets built from moved and duplicated source pieces plus new data.
            let mut target = Vec::new();
            for (a, b) in cuts {
                let len = source.len().max(1);
                let (start, end) = (usize::from(a) % len, usize::from(b) % len);
                target.extend_from_slice(source.get(start.min(end)..start.max(end)).unwrap_or(&[]));
                target.extend_from_slice(&insert);
            }
            let made = create(&source, &target).unwrap();
            let patch = parse(&made, &Limits::default()).unwrap();
            prop_assert_eq!(patch.apply(&source, &ApplyOptions::default()).unwrap(), target);
        }

        #[test]
        fn create_apply_unrelated(
            source in proptest::collection::vec(any::<u8>(), 0..600),
            target in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let made = create(&source, &target).unwrap();
            let patch = parse(&made, &Limits::default()).unwrap();
            prop_assert_eq!(patch.apply(&source, &ApplyOptions::default()).unwrap(), target);
        }
    }
}
