//! PMSR, the mod package Star Rod (the Paper Mario modding tool) writes as
//! `<mod>.mod`.
//!
//! `PMSR`, a big-endian word with the number of records, then each record
//! as `u32 offset, u32 length` and that many bytes, written over the base
//! ROM at that offset (past its end for appended data, the gap zero-filled).
//! The base ROM is always Paper Mario (USA) 1.0 as a big-endian `.z64`
//! image: 40 MiB, CRC32 a7f5cd7e. Star Rod can compress a package with
//! Yay0, Nintendo's LZ format; such a file starts `Yay0` and unpacks to the
//! `PMSR` stream.

use super::reader::ByteReader;
use super::{ApplyOptions, Checksum, Limits, PatchError, PatchSummary};

pub const NAME: &str = "PMSR";

const MAGIC: &[u8; 4] = b"PMSR";
const YAY0_MAGIC: &[u8; 4] = b"Yay0";
const RECORD_HEADER_LEN: u64 = 8;
/// Paper Mario (USA) 1.0, the one ROM Star Rod modifies.
pub const BASE_ROM_SIZE: u64 = 40 << 20;
pub const BASE_ROM_CRC32: u32 = 0xA7F5_CD7E;
pub const BASE_ROM_NAME: &str = "Paper Mario (USA) 1.0, big-endian (.z64)";
/// Offsets are words: nothing a package writes lies past 4 GiB.
const ADDRESSABLE: u64 = 1 << 32;

/// A parsed PMSR package. A Yay0-compressed one owns its unpacked bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmsrPatch<'a> {
    pub compressed: bool,
    pub records: Vec<PmsrRecord>,
    data: std::borrow::Cow<'a, [u8]>,
    /// The base ROM's size or where the furthest record ends, if further.
    pub output_size: u64,
}

/// One record: `len` bytes at `data_at` in the (unpacked) package, written
/// at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmsrRecord {
    pub offset: u32,
    data_at: usize,
    pub len: u32,
}

/// A `PMSR` package, or a Yay0 stream that unpacks to one.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
        || (bytes.starts_with(YAY0_MAGIC)
            && yay0::unpack(bytes, MAGIC.len() as u64).is_ok_and(|head| head == MAGIC))
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<PmsrPatch<'a>, PatchError> {
    let (data, compressed) = if bytes.starts_with(YAY0_MAGIC) {
        // The package is never larger than the image it makes.
        let stated = bytes.get(4..8).map_or(0, |size| {
            u64::from(u32::from_be_bytes([size[0], size[1], size[2], size[3]]))
        });
        limits.check(NAME, stated)?;
        (
            std::borrow::Cow::Owned(yay0::unpack(bytes, limits.max_image_size)?),
            true,
        )
    } else {
        (std::borrow::Cow::Borrowed(bytes), false)
    };
    let mut cursor = ByteReader::new(NAME, &data);
    if cursor.take(MAGIC.len(), "the PMSR magic")? != MAGIC {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: if compressed {
                "its Yay0 stream does not unpack to a PMSR package".into()
            } else {
                "it does not start with PMSR".into()
            },
        });
    }
    let count = cursor.big_endian(4, "the record count")?;
    // Each record takes at least its 8-byte header: a count the file cannot
    // hold is refused before anything is allocated for it.
    if count * RECORD_HEADER_LEN > cursor.remaining() as u64 {
        return Err(PatchError::Truncated {
            format: NAME,
            what: format!(
                "it claims {count} records, but {} bytes are left for them",
                cursor.remaining()
            ),
        });
    }
    let mut records = Vec::with_capacity(count as usize);
    let mut output_size = BASE_ROM_SIZE;
    for _ in 0..count {
        let record_at = cursor.position();
        let offset = cursor.big_endian(4, "a record offset")? as u32;
        let len = cursor.big_endian(4, "a record length")? as u32;
        let data_at = cursor.position();
        cursor.take_u64(u64::from(len), "a record's data")?;
        let end = u64::from(offset) + u64::from(len);
        if end > ADDRESSABLE {
            return Err(PatchError::Corrupt {
                format: NAME,
                detail: format!(
                    "the record at byte {record_at} writes up to byte {end:#x}, past the 4 GiB a PMSR offset can reach"
                ),
            });
        }
        limits.check(NAME, end)?;
        output_size = output_size.max(end);
        records.push(PmsrRecord {
            offset,
            data_at,
            len,
        });
    }
    if !cursor.is_empty() {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: match cursor.remaining() {
                1 => "1 byte follows its last record".to_string(),
                n => format!("{n} bytes follow its last record"),
            },
        });
    }
    Ok(PmsrPatch {
        compressed,
        records,
        data,
        output_size,
    })
}

impl<'a> PmsrPatch<'a> {
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: Some(BASE_ROM_SIZE),
            target_size: Some(self.output_size),
            source_checksum: Some(Checksum::Crc32(BASE_ROM_CRC32)),
            target_checksum: None,
        }
    }

    /// The base ROM, grown to the furthest record if that is further.
    pub fn output_size(&self, source_len: u64) -> u64 {
        let furthest = self
            .records
            .iter()
            .map(|r| u64::from(r.offset) + u64::from(r.len))
            .max()
            .unwrap_or(0);
        source_len.max(furthest)
    }

    /// A record's bytes.
    pub fn record_data(&self, record: &PmsrRecord) -> &[u8] {
        self.data
            .get(record.data_at..record.data_at + record.len as usize)
            .unwrap_or_default()
    }

    /// Writes every record over the image. Unless `opts.ignore_checksums`,
    /// the image must be Paper Mario (USA) 1.0 (size and CRC32).
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        if !opts.ignore_checksums {
            let actual = crc32fast::hash(source);
            if source.len() as u64 != BASE_ROM_SIZE || actual != BASE_ROM_CRC32 {
                return Err(PatchError::ChecksumMismatch {
                    format: NAME,
                    what: "source",
                    expected: Checksum::Crc32(BASE_ROM_CRC32).to_string(),
                    actual: Checksum::Crc32(actual).to_string(),
                });
            }
        }
        let size = opts
            .limits
            .check(NAME, self.output_size(source.len() as u64))?;
        let mut image = Vec::with_capacity(size);
        image.extend_from_slice(source);
        image.resize(size, 0);
        for record in &self.records {
            let start = record.offset as usize;
            let bytes = self.record_data(record);
            // `size` covers the furthest record.
            if let Some(window) = image.get_mut(start..start + bytes.len()) {
                window.copy_from_slice(bytes);
            }
        }
        Ok(image)
    }
}

/// Yay0, the LZ77 variant of Nintendo's N64 and GameCube games that Star
/// Rod packs mod packages with. No crate decodes it, and it is small.
///
/// Header (big-endian words): `Yay0`, the unpacked size, where the link
/// table starts, where the literal bytes start; the flag bits follow the
/// header, most significant first. A set bit copies one literal byte; a
/// clear bit reads a big-endian link halfword `LDDD`: copy from `D + 1`
/// bytes back, `L + 2` bytes, or, when `L` is 0, a literal-stream byte plus
/// 18 bytes.
pub mod yay0 {
    use super::{NAME, PatchError};

    const HEADER_LEN: usize = 16;

    fn corrupt(detail: String) -> PatchError {
        PatchError::Corrupt {
            format: NAME,
            detail: format!("its Yay0 compression is damaged: {detail}"),
        }
    }

    fn word(bytes: &[u8], at: usize) -> Result<u32, PatchError> {
        bytes
            .get(at..at + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(|| corrupt("the header is cut short".into()))
    }

    /// The first `most` bytes of the unpacked stream (all of it if shorter);
    /// an unpacked size over `most` is fine, and the rest is not decoded.
    /// Refuses, rather than allocates, a stated size over `max_size` when
    /// it would be decoded whole.
    pub fn unpack(bytes: &[u8], most: u64) -> Result<Vec<u8>, PatchError> {
        let unpacked_size = u64::from(word(bytes, 4)?);
        let mut links = word(bytes, 8)? as usize;
        let mut literals = word(bytes, 12)? as usize;
        let wanted = unpacked_size.min(most);
        // Every flag bit yields at least one byte and every literal or link
        // sits in the file: a stated size beyond what the file could
        // produce is refused before allocating it.
        let most_producible = (bytes.len() as u64).saturating_mul(8 * 273);
        if wanted > most_producible {
            return Err(corrupt(format!(
                "it claims {unpacked_size} bytes, more than its {} bytes can hold",
                bytes.len()
            )));
        }
        let wanted = wanted as usize;
        let mut out = Vec::with_capacity(wanted);
        let mut flags_at = HEADER_LEN;
        let mut flags = 0u32;
        let mut flags_left = 0u32;
        let take_byte = |at: &mut usize| -> Result<u8, PatchError> {
            let byte = bytes
                .get(*at)
                .copied()
                .ok_or_else(|| corrupt(format!("it reads past its end at byte {at}")))?;
            *at += 1;
            Ok(byte)
        };
        while out.len() < wanted {
            if flags_left == 0 {
                flags = word(bytes, flags_at)
                    .map_err(|_| corrupt(format!("its flag bits end at byte {flags_at}")))?;
                flags_at += 4;
                flags_left = 32;
            }
            let literal = flags & 0x8000_0000 != 0;
            flags <<= 1;
            flags_left -= 1;
            if literal {
                out.push(take_byte(&mut literals)?);
                continue;
            }
            let high = take_byte(&mut links)?;
            let low = take_byte(&mut links)?;
            let link = u16::from_be_bytes([high, low]);
            let distance = usize::from(link & 0x0FFF) + 1;
            let count = match link >> 12 {
                0 => usize::from(take_byte(&mut literals)?) + 18,
                n => usize::from(n) + 2,
            };
            let from = out.len().checked_sub(distance).ok_or_else(|| {
                corrupt(format!(
                    "a link reaches {distance} bytes back from byte {} of the output",
                    out.len()
                ))
            })?;
            for index in from..from + count {
                if out.len() == wanted {
                    break;
                }
                let byte = out[index];
                out.push(byte);
            }
        }
        Ok(out)
    }

    /// Packs `data` with literals only (tests and fixtures: every flag set).
    #[cfg(test)]
    pub(crate) fn pack_literal(data: &[u8]) -> Vec<u8> {
        let flag_words = data.len().div_ceil(32);
        let literals_at = HEADER_LEN + 4 * flag_words;
        let mut out = b"Yay0".to_vec();
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&(literals_at as u32).to_be_bytes());
        out.extend_from_slice(&(literals_at as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(0xFF, 4 * flag_words));
        out.extend_from_slice(data);
        out
    }
}

/// Builds a package from `(offset, data)` records (tests and fixtures).
#[cfg(test)]
pub(crate) fn build(records: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for (offset, data) in records {
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lenient() -> ApplyOptions {
        ApplyOptions {
            ignore_checksums: true,
            ..ApplyOptions::default()
        }
    }

    #[test]
    fn writes_records_over_the_image_and_grows_it() {
        let bytes = build(&[(1, b"ab"), (6, b"xyz")]);
        assert!(matches(&bytes));
        let patch = parse(&bytes, &Limits::default()).unwrap();
        assert!(!patch.compressed);
        assert_eq!(patch.records.len(), 2);
        assert_eq!(patch.output_size, BASE_ROM_SIZE);
        let out = patch.apply(b"012345", &lenient()).unwrap();
        assert_eq!(out, b"0ab345xyz");
        assert_eq!(patch.output_size(6), 9);
        assert_eq!(patch.output_size(20), 20);
    }

    #[test]
    fn only_paper_mario_usa_is_taken_unless_told() {
        let bytes = build(&[(0, b"x")]);
        let patch = parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(
            patch
                .apply(b"not paper mario", &ApplyOptions::default())
                .unwrap_err()
                .to_string(),
            "PMSR patch is for another image: the patch expects a source with CRC32 a7f5cd7e, this one has CRC32 c8200f44"
        );
        let summary = patch.summary();
        assert_eq!(summary.source_size, Some(41_943_040));
        assert_eq!(summary.source_checksum, Some(Checksum::Crc32(0xa7f5cd7e)));
    }

    #[test]
    fn yay0_packages_unpack() {
        let plain = build(&[(2, b"hello")]);
        let packed = yay0::pack_literal(&plain);
        assert!(matches(&packed));
        let patch = parse(&packed, &Limits::default()).unwrap();
        assert!(patch.compressed);
        assert_eq!(patch.apply(b"........", &lenient()).unwrap(), b"..hello.");
        // Links: "abc" then a 6-byte copy from 3 back, and a long copy.
        let mut stream = b"Yay0".to_vec();
        stream.extend_from_slice(&(9u32 + 30).to_be_bytes());
        stream.extend_from_slice(&20u32.to_be_bytes()); // links
        stream.extend_from_slice(&24u32.to_be_bytes()); // literals
        stream.extend_from_slice(&0b1110_0000_0000_0000_0000_0000_0000_0000u32.to_be_bytes());
        stream.extend_from_slice(&[0x40, 0x02, 0x00, 0x08]); // 6 from 3 back; long from 9 back
        stream.extend_from_slice(b"abc");
        stream.push(12); // the long link copies 12 + 18 bytes
        let unpacked = yay0::unpack(&stream, u64::MAX).unwrap();
        let expected: Vec<u8> = b"abc".iter().cycle().take(39).copied().collect();
        assert_eq!(unpacked, expected);
        assert_eq!(yay0::unpack(&stream, 4).unwrap(), b"abca");
        // A link before any output, and a size the file cannot hold.
        let mut bad = stream.clone();
        bad[16..20].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            yay0::unpack(&bad, u64::MAX).unwrap_err().to_string(),
            "PMSR patch is corrupt: its Yay0 compression is damaged: a link reaches 3 bytes back from byte 0 of the output"
        );
        let mut bomb = stream.clone();
        bomb[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            yay0::unpack(&bomb, u64::MAX).unwrap_err().to_string(),
            "PMSR patch is corrupt: its Yay0 compression is damaged: it claims 4294967295 bytes, more than its 28 bytes can hold"
        );
    }

    #[test]
    fn hostile_packages_are_refused_before_allocating() {
        let mut bomb = yay0::pack_literal(&build(&[(0, b"x")]));
        bomb[4..8].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        assert_eq!(
            parse(
                &bomb,
                &Limits {
                    max_image_size: 1 << 20
                }
            )
            .unwrap_err()
            .to_string(),
            "PMSR patch would make a 536870912-byte image, over the maximum of 1048576 bytes (raise --max-size if the patch is genuine)"
        );
        let mut many = MAGIC.to_vec();
        many.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            parse(&many, &Limits::default()).unwrap_err().to_string(),
            "PMSR patch is truncated: it claims 4294967295 records, but 0 bytes are left for them"
        );
        let past_4gib = build(&[(0xFFFF_FFFE, b"abc")]);
        assert_eq!(
            parse(&past_4gib, &Limits::default())
                .unwrap_err()
                .to_string(),
            "PMSR patch is corrupt: the record at byte 8 writes up to byte 0x100000001, past the 4 GiB a PMSR offset can reach"
        );
        let far = build(&[(0x8000_0000, b"abc")]);
        assert_eq!(
            parse(&far, &Limits::default()).unwrap_err().to_string(),
            "PMSR patch would make a 2147483651-byte image, over the maximum of 1073741824 bytes (raise --max-size if the patch is genuine)"
        );
        let mut long = build(&[(0, b"abc")]);
        long[12..16].copy_from_slice(&100u32.to_be_bytes());
        assert_eq!(
            parse(&long, &Limits::default()).unwrap_err().to_string(),
            "PMSR patch is truncated: a record's data at byte 16 needs 100 bytes, 3 are left"
        );
        let mut trailing = build(&[(0, b"abc")]);
        trailing.push(0);
        assert_eq!(
            parse(&trailing, &Limits::default())
                .unwrap_err()
                .to_string(),
            "PMSR patch is corrupt: 1 byte follows its last record"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300),
                                       source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let limits = Limits { max_image_size: 1 << 16 };
            for magic in [&b""[..], b"PMSR", b"Yay0"] {
                let mut bytes = magic.to_vec();
                bytes.extend_from_slice(&body);
                let _ = matches(&bytes);
                if let Ok(patch) = parse(&bytes, &limits) {
                    let opts = ApplyOptions { limits, ignore_checksums: true };
                    if let Ok(out) = patch.apply(&source, &opts) {
                        prop_assert_eq!(out.len() as u64, patch.output_size(source.len() as u64));
                    }
                }
            }
        }
    }
}
