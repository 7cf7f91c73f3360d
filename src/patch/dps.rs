//! DPS, Deufeufeu's patch format for Nintendo DS translations (the "DS
//! Patch System" of Marc de Falco).
//!
//! A 198-byte header: three 64-byte text fields (patch name, author,
//! version), a flag byte (1 marks an unstable patch), the format version (1,
//! the only one defined) and the original ROM's size as a little-endian
//! word. Then records until the end of the file, each `u8 mode, u32 output
//! offset` followed by, for mode 0, `u32 original offset, u32 length` (bytes
//! copied from the original) or, for mode 1, `u32 length` and that many
//! bytes of data. All integers are little-endian.
//!
//! The patch rebuilds the whole output: the reference patcher writes the
//! records into a new, empty file, so the output is as long as the furthest
//! record reaches and any byte no record writes is zero. (igir starts from a
//! copy of the original instead; both agree on every patch DPS's own tool
//! makes, which covers the whole output.)

use super::reader::ByteReader;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "DPS";

const TEXT_FIELD_LEN: usize = 64;
const FLAG_AT: usize = 3 * TEXT_FIELD_LEN;
const VERSION_AT: usize = FLAG_AT + 1;
pub const HEADER_LEN: usize = VERSION_AT + 1 + 4;
const DPS_VERSION: u8 = 1;
const MODE_COPY: u8 = 0;
const MODE_DATA: u8 = 1;
/// Offsets are words: nothing a DPS patch writes lies past 4 GiB.
const ADDRESSABLE: u64 = 1 << 32;

/// A parsed DPS patch; its text fields are the raw bytes up to the first NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpsPatch<'a> {
    pub name: &'a [u8],
    pub author: &'a [u8],
    pub version: &'a [u8],
    /// 1 when the author marked the patch unstable.
    pub flag: u8,
    pub original_size: u32,
    pub records: Vec<DpsRecord<'a>>,
    /// Where the furthest record ends: the output's length.
    pub output_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpsRecord<'a> {
    /// Copy `length` bytes of the original from `source_offset`.
    Copy {
        output_offset: u32,
        source_offset: u32,
        length: u32,
    },
    /// Write the bytes the patch carries.
    Data { output_offset: u32, bytes: &'a [u8] },
}

impl DpsRecord<'_> {
    fn output_offset(&self) -> u32 {
        match self {
            DpsRecord::Copy { output_offset, .. } | DpsRecord::Data { output_offset, .. } => {
                *output_offset
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            DpsRecord::Copy { length, .. } => u64::from(*length),
            DpsRecord::Data { bytes, .. } => bytes.len() as u64,
        }
    }
}

/// Whether `bytes` look like a DPS patch: DPS has no magic, so only a whole
/// header with the one defined version byte says so.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes.get(VERSION_AT) == Some(&DPS_VERSION)
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<DpsPatch<'a>, PatchError> {
    let mut cursor = ByteReader::new(NAME, bytes);
    let name = text_field(cursor.take(TEXT_FIELD_LEN, "the patch name")?);
    let author = text_field(cursor.take(TEXT_FIELD_LEN, "the author")?);
    let version = text_field(cursor.take(TEXT_FIELD_LEN, "the patch version")?);
    let flag = cursor.byte("the patch flag")?;
    let format_version = cursor.byte("the DPS version")?;
    if format_version != DPS_VERSION {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: format!(
                "its DPS version byte is {format_version}, and 1 is the only version there is"
            ),
        });
    }
    let original_size = cursor.u32_le("the original size")?;

    let mut records = Vec::new();
    let mut output_size = 0u64;
    while !cursor.is_empty() {
        let record_at = cursor.position();
        let mode = cursor.byte("a record mode")?;
        let output_offset = cursor.u32_le("a record's output offset")?;
        let record = match mode {
            MODE_COPY => DpsRecord::Copy {
                output_offset,
                source_offset: cursor.u32_le("a copy record's original offset")?,
                length: cursor.u32_le("a copy record's length")?,
            },
            MODE_DATA => {
                let length = cursor.u32_le("a data record's length")?;
                DpsRecord::Data {
                    output_offset,
                    bytes: cursor.take_u64(u64::from(length), "a data record's bytes")?,
                }
            }
            other => {
                return Err(PatchError::Corrupt {
                    format: NAME,
                    detail: format!(
                        "the record at byte {record_at} has mode {other} (0 copies from the original, 1 carries data)"
                    ),
                });
            }
        };
        let end = u64::from(output_offset) + record.len();
        if end > ADDRESSABLE {
            return Err(PatchError::Corrupt {
                format: NAME,
                detail: format!(
                    "the record at byte {record_at} writes up to byte {end:#x}, past the 4 GiB a DPS offset can reach"
                ),
            });
        }
        if let DpsRecord::Copy {
            source_offset,
            length,
            ..
        } = record
        {
            let source_end = u64::from(source_offset) + u64::from(length);
            if source_end > u64::from(original_size) {
                return Err(PatchError::Corrupt {
                    format: NAME,
                    detail: format!(
                        "the record at byte {record_at} copies up to byte {source_end:#x} of the original, which has {original_size} bytes"
                    ),
                });
            }
        }
        limits.check(NAME, end)?;
        output_size = output_size.max(end);
        records.push(record);
    }
    Ok(DpsPatch {
        name,
        author,
        version,
        flag,
        original_size,
        records,
        output_size,
    })
}

/// A fixed-size text field: its bytes up to the first NUL.
fn text_field(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field.get(..end).unwrap_or_default()
}

impl<'a> DpsPatch<'a> {
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: Some(u64::from(self.original_size)),
            target_size: Some(self.output_size),
            ..PatchSummary::default()
        }
    }

    /// The output's length does not depend on the original.
    pub fn output_size(&self, _source_len: u64) -> u64 {
        self.output_size
    }

    /// Builds the output from the records into a zeroed image. Unless
    /// `opts.ignore_checksums`, the original must have the size the header
    /// states; ignored, a copy reaching past the given image's end fails.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if !opts.ignore_checksums && source.len() as u64 != u64::from(self.original_size) {
            return Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "file size",
                expected: format!("{} bytes", self.original_size),
                actual: format!("{} bytes", source.len()),
            });
        }
        let size = opts.limits.check(NAME, self.output_size)?;
        let mut image = vec![0u8; size];
        for record in &self.records {
            let start = record.output_offset() as usize;
            let bytes = match record {
                DpsRecord::Data { bytes, .. } => *bytes,
                DpsRecord::Copy {
                    source_offset,
                    length,
                    ..
                } => {
                    let from = *source_offset as usize;
                    from.checked_add(*length as usize)
                        .and_then(|end| source.get(from..end))
                        .ok_or_else(|| PatchError::Corrupt {
                            format: NAME,
                            detail: format!(
                                "a record copies {length} bytes from byte {from:#x} of the original, past its end ({} bytes)",
                                source.len()
                            ),
                        })?
                }
            };
            // Parsing bounded every record by the output size.
            if let Some(window) = image.get_mut(start..start + bytes.len()) {
                window.copy_from_slice(bytes);
            }
        }
        Ok(image)
    }
}

/// Builds a DPS patch from its parts (tests and fixtures only: `create`
/// does not make DPS patches).
#[cfg(test)]
pub(crate) fn build(
    name: &str,
    author: &str,
    version: &str,
    original_size: u32,
    records: &[DpsRecord<'_>],
) -> Vec<u8> {
    let mut out = Vec::new();
    for text in [name, author, version] {
        let mut field = [0u8; TEXT_FIELD_LEN];
        field[..text.len()].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&field);
    }
    out.push(0);
    out.push(DPS_VERSION);
    out.extend_from_slice(&original_size.to_le_bytes());
    for record in records {
        match record {
            DpsRecord::Copy {
                output_offset,
                source_offset,
                length,
            } => {
                out.push(MODE_COPY);
                out.extend_from_slice(&output_offset.to_le_bytes());
                out.extend_from_slice(&source_offset.to_le_bytes());
                out.extend_from_slice(&length.to_le_bytes());
            }
            DpsRecord::Data {
                output_offset,
                bytes,
            } => {
                out.push(MODE_DATA);
                out.extend_from_slice(&output_offset.to_le_bytes());
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        build(
            "Translation",
            "Someone",
            "1.2",
            8,
            &[
                DpsRecord::Copy {
                    output_offset: 0,
                    source_offset: 4,
                    length: 4,
                },
                DpsRecord::Data {
                    output_offset: 4,
                    bytes: b"abcdef",
                },
            ],
        )
    }

    #[test]
    fn reads_the_header_and_rebuilds_the_output() {
        let bytes = sample();
        assert!(matches(&bytes));
        let patch = parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(patch.name, b"Translation");
        assert_eq!(patch.author, b"Someone");
        assert_eq!(patch.version, b"1.2");
        assert_eq!(patch.original_size, 8);
        assert_eq!(patch.records.len(), 2);
        assert_eq!(patch.output_size, 10);
        let source = [1, 2, 3, 4, 5, 6, 7, 8];
        let out = patch.apply(&source, &ApplyOptions::default()).unwrap();
        assert_eq!(out, b"\x05\x06\x07\x08abcdef");
        assert_eq!(patch.output_size(8), 10);
    }

    #[test]
    fn bytes_no_record_writes_are_zero_and_the_output_may_shrink() {
        let bytes = build(
            "",
            "",
            "",
            6,
            &[DpsRecord::Data {
                output_offset: 2,
                bytes: b"x",
            }],
        );
        let patch = parse(&bytes, &Limits::default()).unwrap();
        let out = patch.apply(b"ABCDEF", &ApplyOptions::default()).unwrap();
        assert_eq!(out, b"\0\0x");
    }

    #[test]
    fn the_original_must_have_the_stated_size() {
        let patch_bytes = sample();
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        assert_eq!(
            patch
                .apply(&[0; 9], &ApplyOptions::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is for another image: the patch expects a file size of 8 bytes, this one has 9 bytes"
        );
        // Ignored, a copy past the end of a shorter image is still refused.
        let lenient = ApplyOptions {
            ignore_checksums: true,
            ..ApplyOptions::default()
        };
        assert_eq!(
            patch.apply(&[0; 5], &lenient).unwrap_err().to_string(),
            "DPS patch is corrupt: a record copies 4 bytes from byte 0x4 of the original, past its end (5 bytes)"
        );
    }

    #[test]
    fn hostile_records_are_refused_before_allocating() {
        let past_4gib = build(
            "",
            "",
            "",
            8,
            &[DpsRecord::Copy {
                output_offset: 0xFFFF_FFFF,
                source_offset: 0,
                length: 2,
            }],
        );
        assert_eq!(
            parse(&past_4gib, &Limits::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is corrupt: the record at byte 198 writes up to byte 0x100000001, past the 4 GiB a DPS offset can reach"
        );
        let past_original = build(
            "",
            "",
            "",
            8,
            &[DpsRecord::Copy {
                output_offset: 0,
                source_offset: 6,
                length: 4,
            }],
        );
        assert_eq!(
            parse(&past_original, &Limits::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is corrupt: the record at byte 198 copies up to byte 0xa of the original, which has 8 bytes"
        );
        let huge = build(
            "",
            "",
            "",
            8,
            &[DpsRecord::Data {
                output_offset: 0xF000_0000,
                bytes: b"z",
            }],
        );
        assert_eq!(
            parse(&huge, &Limits::default()).unwrap_err().to_string(),
            "DPS patch would make a 4026531841-byte image, over the maximum of 1073741824 bytes (raise --max-size if the patch is genuine)"
        );
        let mut bad_mode = sample();
        bad_mode[HEADER_LEN] = 7;
        assert_eq!(
            parse(&bad_mode, &Limits::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is corrupt: the record at byte 198 has mode 7 (0 copies from the original, 1 carries data)"
        );
        let mut long_data = sample();
        let len_at = long_data.len() - 6 - 4;
        long_data[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&long_data, &Limits::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is truncated: a data record's bytes at byte 220 needs 4294967295 bytes, 6 are left"
        );
        let mut version_2 = sample();
        version_2[VERSION_AT] = 2;
        assert!(!matches(&version_2));
        assert_eq!(
            parse(&version_2, &Limits::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is corrupt: its DPS version byte is 2, and 1 is the only version there is"
        );
        assert_eq!(
            parse(&[0; 100], &Limits::default())
                .unwrap_err()
                .to_string(),
            "DPS patch is truncated: the author at byte 64 needs 64 bytes, 36 are left"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400),
                                       source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let limits = Limits { max_image_size: 1 << 16 };
            let _ = parse(&body, &limits);
            let mut with_header = sample()[..HEADER_LEN].to_vec();
            with_header.extend_from_slice(&body);
            if let Ok(patch) = parse(&with_header, &limits) {
                let lenient = ApplyOptions { limits, ignore_checksums: true };
                if let Ok(out) = patch.apply(&source, &lenient) {
                    prop_assert_eq!(out.len() as u64, patch.output_size(source.len() as u64));
                }
            }
        }
    }
}
