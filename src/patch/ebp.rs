//! EBP, the EarthBound patch format of EBPatcher and CoilSnake: an IPS patch
//! (`PATCH`, records of a 24-bit big-endian offset and a 16-bit size, size 0
//! meaning a run of a 16-bit count and a value, then `EOF`) followed by a
//! JSON object of metadata, e.g.
//! `{"patcher": "EBPatcher", "author": "…", "title": "…", "description": "…"}`.
//! EBP has no truncation record.
//!
//! Every EBP patch is made against the clean, headerless EarthBound (USA)
//! ROM, which EBPatcher checks by MD5 before applying; so does `apply`
//! unless `ignore_checksums`. EBPatcher's repairs of known bad dumps and of
//! expanded ROMs are not done here.

use md5::{Digest, Md5};

use super::{ApplyOptions, Checksum, Limits, PatchError, PatchSummary};

pub const NAME: &str = "EBP";

/// MD5 of the clean, headerless, unexpanded EarthBound (USA) ROM.
pub const EARTHBOUND_CLEAN_MD5: [u8; 16] = [
    0xa8, 0x64, 0xb2, 0xe5, 0xc1, 0x41, 0xd2, 0xde, 0xc1, 0xc4, 0xcb, 0xed, 0x75, 0xa4, 0x2a, 0x85,
];
/// Size of that ROM: 24 Mbit.
pub const EARTHBOUND_CLEAN_SIZE: u64 = 0x30_0000;

const MAGIC: &[u8] = b"PATCH";
const END_MARKER: [u8; 3] = *b"EOF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EbpRecord<'a> {
    Data { offset: u32, bytes: &'a [u8] },
    Run { offset: u32, count: u16, value: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpPatch<'a> {
    pub records: Vec<EbpRecord<'a>>,
    /// The metadata block exactly as stored (empty when there is none).
    pub metadata_raw: &'a [u8],
    /// The metadata, parsed; `None` when the patch ends at `EOF`.
    pub metadata: Option<serde_json::Value>,
}

/// Cheap check: an IPS body whose `EOF` is followed by a JSON object. A
/// plain IPS patch (nothing or a truncation after `EOF`) does not match.
pub fn matches(bytes: &[u8]) -> bool {
    read_records(bytes).is_ok_and(|(_, trailer)| trailer.first() == Some(&b'{'))
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<EbpPatch<'a>, PatchError> {
    let (records, trailer) = read_records(bytes)?;
    let mut furthest: u64 = 0;
    for record in &records {
        let (offset, len) = record_span(record);
        furthest = furthest.max(u64::from(offset) + len);
    }
    limits.check(NAME, furthest)?;
    let metadata = if trailer.is_empty() {
        None
    } else if trailer.first() == Some(&b'{') {
        let text = trailer.trim_ascii_end();
        let text = text.strip_suffix(b"\0").unwrap_or(text);
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| PatchError::Corrupt {
                format: NAME,
                detail: format!("the metadata after EOF is not valid JSON: {e}"),
            })?;
        Some(value)
    } else {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: format!(
                "{} bytes after EOF are not a JSON metadata block",
                trailer.len()
            ),
        });
    };
    Ok(EbpPatch {
        records,
        metadata_raw: trailer,
        metadata,
    })
}

/// Walks the IPS records; returns them and whatever follows `EOF`.
fn read_records(bytes: &[u8]) -> Result<(Vec<EbpRecord<'_>>, &[u8]), PatchError> {
    let mut rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with PATCH".into(),
        })?;
    let mut records = Vec::new();
    loop {
        let at = bytes.len() - rest.len();
        let offset_bytes: [u8; 3] = take_array(&mut rest, at, "a record offset (or EOF)")?;
        if offset_bytes == END_MARKER {
            return Ok((records, rest));
        }
        let offset = u32::from_be_bytes([0, offset_bytes[0], offset_bytes[1], offset_bytes[2]]);
        let size = u16::from_be_bytes(take_array(&mut rest, at, "a record size")?);
        let record = if size == 0 {
            let count = u16::from_be_bytes(take_array(&mut rest, at, "a run length")?);
            let [value] = take_array(&mut rest, at, "a run value")?;
            EbpRecord::Run {
                offset,
                count,
                value,
            }
        } else {
            let (data, after) = rest
                .split_at_checked(usize::from(size))
                .ok_or_else(|| truncated(at, "record data"))?;
            rest = after;
            EbpRecord::Data {
                offset,
                bytes: data,
            }
        };
        records.push(record);
    }
}

fn take_array<const N: usize>(
    rest: &mut &[u8],
    record_at: usize,
    what: &str,
) -> Result<[u8; N], PatchError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or_else(|| truncated(record_at, what))?;
    *rest = tail;
    Ok(*head)
}

fn truncated(record_at: usize, what: &str) -> PatchError {
    PatchError::Truncated {
        format: NAME,
        what: format!("{what} of the record at byte {record_at} is cut short"),
    }
}

fn record_span(record: &EbpRecord<'_>) -> (u32, u64) {
    match record {
        EbpRecord::Data { offset, bytes } => (*offset, bytes.len() as u64),
        EbpRecord::Run { offset, count, .. } => (*offset, u64::from(*count)),
    }
}

impl<'a> EbpPatch<'a> {
    /// A metadata string field (`"title"`, `"author"`, `"description"`,
    /// `"patcher"`), when present and a string.
    pub fn metadata_field(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// EBP patches are for the clean EarthBound (USA) ROM.
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: Some(EARTHBOUND_CLEAN_SIZE),
            target_size: Some(self.output_size(EARTHBOUND_CLEAN_SIZE)),
            source_checksum: Some(Checksum::Md5(EARTHBOUND_CLEAN_MD5)),
            target_checksum: None,
        }
    }

    /// The source grows to cover the furthest record; it never shrinks.
    pub fn output_size(&self, source_len: u64) -> u64 {
        self.records
            .iter()
            .map(|record| {
                let (offset, len) = record_span(record);
                u64::from(offset) + len
            })
            .fold(source_len, u64::max)
    }

    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if !opts.ignore_checksums {
            let digest: [u8; 16] = Md5::digest(source).into();
            if digest != EARTHBOUND_CLEAN_MD5 {
                return Err(PatchError::ChecksumMismatch {
                    format: NAME,
                    what: "source",
                    expected: format!(
                        "{} (the clean headerless EarthBound (USA) ROM)",
                        Checksum::Md5(EARTHBOUND_CLEAN_MD5)
                    ),
                    actual: Checksum::Md5(digest).to_string(),
                });
            }
        }
        self.apply_records(source, opts)
    }

    fn apply_records(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let size = opts
            .limits
            .check(NAME, self.output_size(source.len() as u64))?;
        let mut image = source.to_vec();
        image.resize(size, 0);
        for record in &self.records {
            let (offset, len) = record_span(record);
            let window = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(len).ok())
                .and_then(|(start, len)| image.get_mut(start..start.checked_add(len)?))
                .ok_or_else(|| PatchError::Corrupt {
                    format: NAME,
                    detail: format!("a record at 0x{offset:X} writes past the output"),
                })?;
            match record {
                EbpRecord::Data { bytes, .. } => window.copy_from_slice(bytes),
                EbpRecord::Run { value, .. } => window.fill(*value),
            }
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &[u8] = b"PATCH\x00\x00\x01\x00\x02\xAA\xBB\x00\x00\x05\x00\x00\x00\x03\x77EOF{\"patcher\": \"EBPatcher\", \"author\": \"A\", \"title\": \"T\", \"description\": \"D\"}";

    fn forced() -> ApplyOptions {
        ApplyOptions {
            ignore_checksums: true,
            ..ApplyOptions::default()
        }
    }

    #[test]
    fn parses_records_and_metadata() {
        assert!(matches(SAMPLE));
        let patch = parse(SAMPLE, &Limits::default()).unwrap();
        assert_eq!(
            patch.records,
            vec![
                EbpRecord::Data {
                    offset: 1,
                    bytes: &[0xAA, 0xBB]
                },
                EbpRecord::Run {
                    offset: 5,
                    count: 3,
                    value: 0x77
                },
            ]
        );
        assert_eq!(patch.metadata_field("title"), Some("T"));
        assert_eq!(patch.metadata_field("patcher"), Some("EBPatcher"));
        assert_eq!(patch.metadata_field("missing"), None);
        assert_eq!(patch.output_size(4), 8);
        assert_eq!(patch.output_size(10), 10);
        assert_eq!(patch.summary().source_size, Some(0x300000));
        assert_eq!(
            patch.summary().source_checksum,
            Some(Checksum::Md5(EARTHBOUND_CLEAN_MD5))
        );
    }

    #[test]
    fn applies_growing_the_image() {
        let patch = parse(SAMPLE, &Limits::default()).unwrap();
        assert_eq!(
            patch.apply(&[9, 9, 9], &forced()).unwrap(),
            vec![9, 0xAA, 0xBB, 0, 0, 0x77, 0x77, 0x77]
        );
    }

    #[test]
    fn wrong_rom_is_refused() {
        let patch = parse(SAMPLE, &Limits::default()).unwrap();
        assert_eq!(
            patch.apply(&[], &ApplyOptions::default()),
            Err(PatchError::ChecksumMismatch {
                format: "EBP",
                what: "source",
                expected: "MD5 a864b2e5c141d2dec1c4cbed75a42a85 (the clean headerless EarthBound (USA) ROM)".into(),
                actual: "MD5 d41d8cd98f00b204e9800998ecf8427e".into(),
            })
        );
    }

    #[test]
    fn structure_errors() {
        assert!(!matches(b"PATCH\x00\x00\x01\x00\x01\xAAEOF"));
        let plain = parse(b"PATCH\x00\x00\x01\x00\x01\xAAEOF", &Limits::default()).unwrap();
        assert_eq!(plain.metadata, None);
        assert!(matches!(
            parse(
                b"PATCH\x00\x00\x01\x00\x01\xAAEOF\x00\x10\x00",
                &Limits::default()
            ),
            Err(PatchError::Corrupt { .. })
        ));
        assert!(matches!(
            parse(
                b"PATCH\x00\x00\x01\x00\x01\xAAEOF{\"a\":",
                &Limits::default()
            ),
            Err(PatchError::Corrupt { .. })
        ));
        assert_eq!(
            parse(b"PATCH\x00\x00\x01\x00\x05\xAA", &Limits::default()),
            Err(PatchError::Truncated {
                format: "EBP",
                what: "record data of the record at byte 5 is cut short".into()
            })
        );
        assert!(matches!(
            parse(b"PATCH\x00\x00", &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"NOPE", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        assert!(matches!(
            parse(
                b"PATCH\xFF\x00\x00\x00\x00\xFF\xFF\x01EOF",
                &Limits {
                    max_image_size: 1024
                }
            ),
            Err(PatchError::TooLarge { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut bytes = b"PATCH".to_vec();
            bytes.extend_from_slice(&tail);
            let _ = matches(&bytes);
            if let Ok(patch) = parse(&bytes, &Limits::default()) {
                let _ = patch.apply(&tail, &forced());
                let _ = patch.summary();
            }
        }

        #[test]
        fn records_apply_like_a_byte_map(
            source in proptest::collection::vec(any::<u8>(), 0..512),
            writes in proptest::collection::vec((0u32..700, proptest::collection::vec(any::<u8>(), 1..20)), 0..10),
        ) {
            // Build a patch by hand and compare with writing the bytes directly.
            let mut bytes = b"PATCH".to_vec();
            let mut expected = source.clone();
            for (offset, data) in &writes {
                bytes.extend_from_slice(&offset.to_be_bytes()[1..]);
                bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
                bytes.extend_from_slice(data);
                let end = *offset as usize + data.len();
                if expected.len() < end {
                    expected.resize(end, 0);
                }
                expected[*offset as usize..end].copy_from_slice(data);
            }
            bytes.extend_from_slice(b"EOF{}");
            let patch = parse(&bytes, &Limits::default()).unwrap();
            prop_assert_eq!(patch.apply(&source, &forced()).unwrap(), expected);
        }
    }
}
