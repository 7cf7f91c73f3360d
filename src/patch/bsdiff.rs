//! BSDIFF40 (`.bdf`, `.bsdiff`): Colin Percival's bsdiff 4 format, used by
//! many modern ROM hacks. A 32-byte header (the magic "BSDIFF40", then the
//! control block's length, the diff block's length and the new file's
//! size, each an 8-byte little-endian sign-and-magnitude number) and three
//! bzip2 streams. The control block is a list of (add, copy, seek)
//! entries: `add` new bytes are the diff block's next bytes added to the
//! source's bytes at the read position, `copy` more come from the extra
//! block as they are, and the read position then moves by `seek`. The
//! format carries no checksum, so any source of the right shape applies.
//!
//! Applying is written here rather than taken from `qbsdiff`, whose patcher
//! trusts the header (a negative length wraps to a huge one, the new size
//! is never checked and a bzip2 stream is read as far as it goes): here
//! every length is checked against the new size and `Limits` before it is
//! used, each stream is decompressed only as far as the entries need, and
//! nothing is allocated past the declared, checked new size. Creating uses
//! `qbsdiff`'s suffix-array diff, which writes the format Debian's
//! `bspatch` reads.

use std::io::{self, Read};

use bzip2::bufread::BzDecoder;

use super::reader::ByteReader;
use super::ups::corrupt;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "BSDIFF40";

const MAGIC: &[u8] = b"BSDIFF40";
/// Every bzip2 stream starts "BZh" and its block size digit.
const BZIP2_MAGIC: &[u8] = b"BZh";
/// Control entries that write nothing (bsdiff ends with one, qbsdiff puts
/// one between the parts it diffs in parallel) allowed beyond one per entry
/// that writes: enough for any real patch, and a bound on how much of a
/// control block made of nothing else is ever decompressed.
const SPARE_EMPTY_ENTRIES: u64 = 64;

/// True when `bytes` starts with the BSDIFF40 magic.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A parsed BSDIFF40 patch: its header checked and its three blocks found.
/// The blocks stay compressed until `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsdiffPatch<'a> {
    pub target_size: u64,
    pub control: &'a [u8],
    pub diff: &'a [u8],
    pub extra: &'a [u8],
}

/// One control entry, its lengths checked not to be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Control {
    add: u64,
    copy: u64,
    seek: i64,
}

/// bsdiff's "offtin": 63 bits of magnitude, the top bit the sign.
fn decode_number(bytes: [u8; 8]) -> i64 {
    let raw = u64::from_le_bytes(bytes);
    let magnitude = (raw & !(1 << 63)) as i64;
    if raw >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// Parses the header and finds the three blocks; every length is checked
/// against the patch and the new size against `limits`.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<BsdiffPatch<'a>, PatchError> {
    if !matches(bytes) {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with \"BSDIFF40\"".into(),
        });
    }
    let mut reader = ByteReader::at(NAME, bytes, MAGIC.len());
    let mut length = |what: &str| -> Result<u64, PatchError> {
        let value = decode_number(reader.array(what)?);
        u64::try_from(value).map_err(|_| corrupt(NAME, format!("the {what} is negative ({value})")))
    };
    let control_len = length("control block length")?;
    let diff_len = length("diff block length")?;
    let target_size = length("new file size")?;
    limits.check(NAME, target_size)?;
    let control = reader.take_u64(control_len, "the control block")?;
    let diff = reader.take_u64(diff_len, "the diff block")?;
    let extra = reader.rest();
    for (block, what) in [(control, "control"), (diff, "diff"), (extra, "extra")] {
        if !block.starts_with(BZIP2_MAGIC) {
            return Err(corrupt(
                NAME,
                format!("its {what} block is not bzip2 data (it does not start with \"BZh\")"),
            ));
        }
    }
    Ok(BsdiffPatch {
        target_size,
        control,
        diff,
        extra,
    })
}

/// A bzip2 block read as far as the control entries need, with errors
/// that say which block failed.
struct Block<'a> {
    what: &'static str,
    decoder: BzDecoder<&'a [u8]>,
}

impl<'a> Block<'a> {
    fn new(what: &'static str, compressed: &'a [u8]) -> Self {
        Block {
            what,
            decoder: BzDecoder::new(compressed),
        }
    }

    /// Fills `into` from the block; `needed_by` says what wanted the bytes.
    fn read(&mut self, into: &mut [u8], needed_by: &str) -> Result<(), PatchError> {
        self.decoder.read_exact(into).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                PatchError::Truncated {
                    format: NAME,
                    what: format!(
                        "the {} block ends after {} bytes, before all the {} bytes {needed_by} needs",
                        self.what,
                        self.decoder.total_out(),
                        into.len()
                    ),
                }
            } else {
                corrupt(
                    NAME,
                    format!(
                        "its {} block is damaged bzip2 data ({}; download it again)",
                        self.what,
                        error.to_string().trim_start_matches("bzip2: ")
                    ),
                )
            }
        })
    }
}

impl BsdiffPatch<'_> {
    /// BSDIFF40 knows the new size, and nothing of the source.
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            target_size: Some(self.target_size),
            ..PatchSummary::default()
        }
    }

    /// The new file's size, whatever the source.
    pub fn output_size(&self, _source_len: u64) -> u64 {
        self.target_size
    }

    /// Runs the control entries until the new file is complete, as bspatch
    /// does (entries and block bytes after that are never read). An entry
    /// that would write past the new size, or read source bytes the source
    /// does not have, is refused.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let target_len = opts.limits.check(NAME, self.target_size)?;
        let mut control = Block::new("control", self.control);
        let mut diff = Block::new("diff", self.diff);
        let mut extra = Block::new("extra", self.extra);
        let mut output: Vec<u8> = Vec::with_capacity(target_len);
        let mut read_position: i64 = 0;
        let (mut writing_entries, mut empty_entries) = (0u64, 0u64);
        let mut number = 0u64;
        while output.len() < target_len {
            number += 1;
            let entry = read_control(&mut control, number, output.len(), target_len)?;
            let left = (target_len - output.len()) as u64;
            if entry.add.saturating_add(entry.copy) > left {
                return Err(corrupt(
                    NAME,
                    format!(
                        "control entry {number} writes {} bytes at byte {} of the new file, past its end ({target_len} bytes)",
                        entry.add.saturating_add(entry.copy),
                        output.len()
                    ),
                ));
            }
            if entry.add == 0 && entry.copy == 0 {
                empty_entries += 1;
                if empty_entries > writing_entries + SPARE_EMPTY_ENTRIES {
                    return Err(corrupt(
                        NAME,
                        format!(
                            "{empty_entries} of its first {number} control entries write nothing (a real patch has a few)"
                        ),
                    ));
                }
            } else {
                writing_entries += 1;
            }
            // Both lengths are within the new size, so within usize.
            let (add, copy) = (entry.add as usize, entry.copy as usize);
            if add > 0 {
                let old = source_range(source, read_position, add, number)?;
                let start = output.len();
                output.resize(start + add, 0);
                let new = &mut output[start..];
                diff.read(new, &format!("control entry {number}"))?;
                for (byte, old) in new.iter_mut().zip(old) {
                    *byte = byte.wrapping_add(*old);
                }
            }
            if copy > 0 {
                let start = output.len();
                output.resize(start + copy, 0);
                extra.read(&mut output[start..], &format!("control entry {number}"))?;
            }
            read_position = (entry.add as i64)
                .checked_add(entry.seek)
                .and_then(|moved| read_position.checked_add(moved))
                .ok_or_else(|| {
                    corrupt(
                        NAME,
                        format!("control entry {number} moves the source position out of range"),
                    )
                })?;
        }
        Ok(output)
    }
}

/// Reads control entry `number`, made when `written` of `target_len` new
/// bytes are done.
fn read_control(
    control: &mut Block<'_>,
    number: u64,
    written: usize,
    target_len: usize,
) -> Result<Control, PatchError> {
    let mut bytes = [0u8; 24];
    control.read(
        &mut bytes,
        &format!("control entry {number} (the new file has {written} of its {target_len} bytes)"),
    )?;
    let number_at = |at: usize| {
        let mut field = [0u8; 8];
        field.copy_from_slice(&bytes[at..at + 8]);
        decode_number(field)
    };
    let (add, copy, seek) = (number_at(0), number_at(8), number_at(16));
    let length = |value: i64, what: &str| {
        u64::try_from(value).map_err(|_| {
            corrupt(
                NAME,
                format!("control entry {number} has a negative {what} length ({value})"),
            )
        })
    };
    Ok(Control {
        add: length(add, "diff")?,
        copy: length(copy, "extra")?,
        seek,
    })
}

/// The `len` source bytes at `position` that control entry `number` adds
/// to, or why the source does not have them.
fn source_range(
    source: &[u8],
    position: i64,
    len: usize,
    number: u64,
) -> Result<&[u8], PatchError> {
    let start = usize::try_from(position).map_err(|_| {
        corrupt(
            NAME,
            format!("control entry {number} reads the source at {position}, before its start"),
        )
    })?;
    let end = start.saturating_add(len);
    source
        .get(start..end)
        .ok_or_else(|| PatchError::ChecksumMismatch {
            format: NAME,
            what: "a source of at least",
            expected: format!("{end} bytes"),
            actual: format!("{} bytes", source.len()),
        })
}

/// Creates a BSDIFF40 patch with `qbsdiff`'s suffix-array diff.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    if source.len() > qbsdiff::bsdiff::MAX_LENGTH {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!(
                "the source is {} bytes; the diff indexes at most {} bytes, use xdelta (vcdiff) instead",
                source.len(),
                qbsdiff::bsdiff::MAX_LENGTH
            ),
        });
    }
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(source, target)
        .compare(io::Cursor::new(&mut patch))
        .map_err(|error| PatchError::Unsupported {
            format: NAME,
            detail: format!("the diff failed: {error}"),
        })?;
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bzip2::Compression;
    use bzip2::write::BzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    /// bsdiff's "offtout", the inverse of [`decode_number`].
    fn encode_number(value: i64) -> [u8; 8] {
        let magnitude = value.unsigned_abs();
        let sign = if value < 0 { 1 << 63 } else { 0 };
        (magnitude | sign).to_le_bytes()
    }

    fn bzip2(data: &[u8]) -> Vec<u8> {
        let mut encoder = BzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn controls(entries: &[(i64, i64, i64)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(add, copy, seek)| {
                [encode_number(add), encode_number(copy), encode_number(seek)].concat()
            })
            .collect()
    }

    /// A patch from its parts, each block compressed.
    fn assemble(target_size: i64, control: &[u8], diff: &[u8], extra: &[u8]) -> Vec<u8> {
        let (control, diff, extra) = (bzip2(control), bzip2(diff), bzip2(extra));
        assemble_compressed(target_size, &control, &diff, &extra)
    }

    /// A patch from its blocks as they are.
    fn assemble_compressed(target_size: i64, control: &[u8], diff: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut patch = MAGIC.to_vec();
        patch.extend_from_slice(&encode_number(control.len() as i64));
        patch.extend_from_slice(&encode_number(diff.len() as i64));
        patch.extend_from_slice(&encode_number(target_size));
        patch.extend_from_slice(control);
        patch.extend_from_slice(diff);
        patch.extend_from_slice(extra);
        patch
    }

    fn apply(patch: &[u8], source: &[u8]) -> Result<Vec<u8>, PatchError> {
        parse(patch, &Limits::default())?.apply(source, &opts())
    }

    fn error(patch: &[u8], source: &[u8]) -> String {
        apply(patch, source).unwrap_err().to_string()
    }

    fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
        let patch = create(source, target).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
        assert!(parsed.apply(source, &opts()).unwrap() == target);
        patch
    }

    #[test]
    fn numbers_are_sign_and_magnitude() {
        assert_eq!(decode_number([5, 0, 0, 0, 0, 0, 0, 0]), 5);
        assert_eq!(decode_number([5, 0, 0, 0, 0, 0, 0, 0x80]), -5);
        // "Minus zero" is zero.
        assert_eq!(decode_number([0, 0, 0, 0, 0, 0, 0, 0x80]), 0);
        assert_eq!(decode_number([0xFF; 8]), -i64::MAX);
        for value in [0, 1, -1, 300, -300, i64::MAX, -i64::MAX] {
            assert_eq!(decode_number(encode_number(value)), value);
        }
        assert_eq!(encode_number(-2), [2, 0, 0, 0, 0, 0, 0, 0x80]);
    }

    #[test]
    fn applies_add_copy_and_seek() {
        // "xy" from the extra block, the source moved to 2; old[2..5] + 1;
        // back to 0 and old[0..2] as it is.
        let source = b"abcdef";
        let patch = assemble(
            7,
            &controls(&[(0, 2, 2), (3, 0, -5), (2, 0, 0)]),
            &[1, 1, 1, 0, 0],
            b"xy",
        );
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.summary().target_size, Some(7));
        assert_eq!(apply(&patch, source).unwrap(), b"xydefab");
        // Wrapping addition.
        let patch = assemble(1, &controls(&[(1, 0, 0)]), &[0xFF], b"");
        assert_eq!(apply(&patch, b"\x02").unwrap(), b"\x01");
        // Entries after the new file is complete are never read.
        let mut control = controls(&[(0, 1, 0)]);
        control.extend_from_slice(&[0xAB; 10]);
        let patch = assemble(1, &control, b"", b"z");
        assert_eq!(apply(&patch, b"").unwrap(), b"z");
        // An empty new file reads no entry at all.
        assert_eq!(apply(&assemble(0, b"", b"", b""), b"abc").unwrap(), b"");
    }

    #[test]
    fn create_round_trips() {
        let source: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut target = source.clone();
        target[1000..1010].copy_from_slice(b"0123456789");
        target.drain(20_000..20_100);
        target.extend_from_slice(b"the end");
        let patch = round_trip(&source, &target);
        assert!(patch.starts_with(MAGIC));
        assert!(patch.len() < 2000, "{}", patch.len());
        round_trip(b"", b"");
        round_trip(b"", b"new");
        round_trip(b"old", b"");
    }

    #[test]
    fn damaged_headers_are_refused() {
        let limits = Limits::default();
        let parse_error = |bytes: &[u8]| parse(bytes, &limits).unwrap_err().to_string();
        assert_eq!(
            parse_error(b"BSDIFF4"),
            "not a BSDIFF40 patch: it does not start with \"BSDIFF40\""
        );
        assert_eq!(
            parse_error(b"BSDIFF40\x00\x00\x00\x00"),
            "BSDIFF40 patch is truncated: control block length at byte 8 needs 8 bytes, 4 are left"
        );
        let good = assemble(3, &controls(&[(0, 3, 0)]), b"", b"abc");
        let with = |at: usize, value: i64| {
            let mut bytes = good.clone();
            bytes[at..at + 8].copy_from_slice(&encode_number(value));
            bytes
        };
        assert_eq!(
            parse_error(&with(8, -14)),
            "BSDIFF40 patch is corrupt: the control block length is negative (-14)"
        );
        assert_eq!(
            parse_error(&with(16, -1)),
            "BSDIFF40 patch is corrupt: the diff block length is negative (-1)"
        );
        assert_eq!(
            parse_error(&with(24, i64::MIN + 1)),
            format!(
                "BSDIFF40 patch is corrupt: the new file size is negative ({})",
                i64::MIN + 1
            )
        );
        assert_eq!(
            parse_error(&with(8, i64::MAX)),
            format!(
                "BSDIFF40 patch is truncated: the control block at byte 32 needs {} bytes, {} are left",
                i64::MAX,
                good.len() - 32
            )
        );
        // A new size past --max-size, refused before anything is allocated.
        assert_eq!(
            parse_error(&with(24, i64::MAX)),
            format!(
                "BSDIFF40 patch would make a {}-byte image, over the maximum of {} bytes \
                 (raise --max-size if the patch is genuine)",
                i64::MAX,
                Limits::DEFAULT_MAX_IMAGE_SIZE
            )
        );
        let small = Limits { max_image_size: 2 };
        assert_eq!(
            parse(&good, &small).unwrap_err().to_string(),
            "BSDIFF40 patch would make a 3-byte image, over the maximum of 2 bytes \
             (raise --max-size if the patch is genuine)"
        );
        let apply_opts = ApplyOptions {
            limits: small,
            ..ApplyOptions::default()
        };
        assert_eq!(
            parse(&good, &limits)
                .unwrap()
                .apply(b"", &apply_opts)
                .unwrap_err()
                .to_string(),
            "BSDIFF40 patch would make a 3-byte image, over the maximum of 2 bytes \
             (raise --max-size if the patch is genuine)"
        );
        // A block that is no bzip2 stream at all.
        let mut not_bzip2 = good.clone();
        not_bzip2[32] = b'X';
        assert_eq!(
            parse_error(&not_bzip2),
            "BSDIFF40 patch is corrupt: its control block is not bzip2 data (it does not start with \"BZh\")"
        );
    }

    #[test]
    fn hostile_control_entries_are_refused() {
        let source = b"abcdef";
        assert_eq!(
            error(&assemble(4, &controls(&[(0, 5, 0)]), b"", b"12345"), source),
            "BSDIFF40 patch is corrupt: control entry 1 writes 5 bytes at byte 0 of the new file, past its end (4 bytes)"
        );
        assert_eq!(
            error(
                &assemble(
                    4,
                    &controls(&[(2, 0, 0), (i64::MAX, i64::MAX, 0)]),
                    &[0, 0],
                    b""
                ),
                source
            ),
            format!(
                "BSDIFF40 patch is corrupt: control entry 2 writes {} bytes at byte 2 of the new file, past its end (4 bytes)",
                2 * i64::MAX as u64
            )
        );
        assert_eq!(
            error(&assemble(4, &controls(&[(-3, 0, 0)]), b"", b""), source),
            "BSDIFF40 patch is corrupt: control entry 1 has a negative diff length (-3)"
        );
        assert_eq!(
            error(&assemble(4, &controls(&[(0, -1, 0)]), b"", b""), source),
            "BSDIFF40 patch is corrupt: control entry 1 has a negative extra length (-1)"
        );
        // Reading the source before its start, or past its end.
        assert_eq!(
            error(
                &assemble(4, &controls(&[(0, 1, -2), (3, 0, 0)]), &[0; 3], b"x"),
                source
            ),
            "BSDIFF40 patch is corrupt: control entry 2 reads the source at -2, before its start"
        );
        assert_eq!(
            error(&assemble(8, &controls(&[(8, 0, 0)]), &[0; 8], b""), source),
            "BSDIFF40 patch is for another image: the patch expects a source of at least 8 bytes, this one has 6 bytes"
        );
        assert_eq!(
            error(
                &assemble(4, &controls(&[(0, 1, i64::MAX), (0, 1, 1)]), b"", b"xy"),
                source
            ),
            "BSDIFF40 patch is corrupt: control entry 2 moves the source position out of range"
        );
        // Entries or blocks that end before the new file is complete.
        assert_eq!(
            error(&assemble(4, &controls(&[(0, 2, 0)]), b"", b"12"), source),
            "BSDIFF40 patch is truncated: the control block ends after 24 bytes, before all the 24 bytes \
             control entry 2 (the new file has 2 of its 4 bytes) needs"
        );
        assert_eq!(
            error(&assemble(4, &controls(&[(4, 0, 0)]), &[1, 1], b""), source),
            "BSDIFF40 patch is truncated: the diff block ends after 2 bytes, before all the 4 bytes control entry 1 needs"
        );
        assert_eq!(
            error(&assemble(4, &controls(&[(0, 4, 0)]), b"", b"123"), source),
            "BSDIFF40 patch is truncated: the extra block ends after 3 bytes, before all the 4 bytes control entry 1 needs"
        );
        // A bzip2 stream cut short (only its stream and block headers are
        // left), and one whose block is damaged.
        let (control, diff) = (bzip2(&controls(&[(0, 3, 0)])), bzip2(b""));
        let extra = bzip2(b"abc");
        let cut = assemble_compressed(3, &control, &diff, &extra[..10]);
        assert_eq!(
            error(&cut, source),
            "BSDIFF40 patch is truncated: the extra block ends after 0 bytes, before all the 3 bytes control entry 1 needs"
        );
        let mut damaged = extra[..10].to_vec();
        damaged.extend_from_slice(&[0; 30]);
        assert_eq!(
            error(&assemble_compressed(3, &control, &diff, &damaged), source),
            "BSDIFF40 patch is corrupt: its extra block is damaged bzip2 data (invalid data; download it again)"
        );
    }

    #[test]
    fn a_bzip2_bomb_is_decompressed_only_as_far_as_needed() {
        // 64 MiB of zeros in the diff block compress to a few dozen bytes;
        // the new file is 16 bytes, so only 16 of them are ever made.
        let bomb = {
            let mut encoder = BzEncoder::new(Vec::new(), Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                encoder.write_all(&zeros).unwrap();
            }
            encoder.finish().unwrap()
        };
        assert!(bomb.len() < 1000, "{}", bomb.len());
        let control = bzip2(&controls(&[(16, 0, 0)]));
        let mut patch = MAGIC.to_vec();
        patch.extend_from_slice(&encode_number(control.len() as i64));
        patch.extend_from_slice(&encode_number(bomb.len() as i64));
        patch.extend_from_slice(&encode_number(16));
        patch.extend_from_slice(&control);
        patch.extend_from_slice(&bomb);
        patch.extend_from_slice(&bzip2(b""));
        let parsed = parse(&patch, &Limits::default()).unwrap();
        let mut diff = Block::new("diff", parsed.diff);
        let mut first = [1u8; 16];
        diff.read(&mut first, "a test").unwrap();
        // The decoder stops within its first bzip2 block (at most 900 kB).
        assert!(
            diff.decoder.total_out() <= 900_000,
            "{}",
            diff.decoder.total_out()
        );
        assert_eq!(apply(&patch, &[7; 16]).unwrap(), [7; 16]);
        // A control block of nothing but empty entries stops after a few.
        let empty = controls(&vec![(0, 0, 0); 100_000]);
        let patch = assemble(16, &empty, b"", b"");
        assert_eq!(
            error(&patch, b""),
            "BSDIFF40 patch is corrupt: 65 of its first 65 control entries write nothing (a real patch has a few)"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                       source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let limits = Limits { max_image_size: 1 << 16 };
            let _ = parse(&bytes, &limits);
            let mut patch = MAGIC.to_vec();
            patch.extend_from_slice(&bytes);
            if let Ok(parsed) = parse(&patch, &limits) {
                let _ = parsed.apply(&source, &opts());
            }
        }

        #[test]
        fn arbitrary_entries_never_panic(entries in proptest::collection::vec((-40i64..40, -40i64..40, -60i64..60), 0..12),
                                         diff in proptest::collection::vec(any::<u8>(), 0..100),
                                         extra in proptest::collection::vec(any::<u8>(), 0..100),
                                         target_size in 0i64..200,
                                         source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let patch = assemble(target_size, &controls(&entries), &diff, &extra);
            if let Ok(out) = apply(&patch, &source) {
                prop_assert_eq!(out.len() as i64, target_size);
            }
        }

        #[test]
        fn create_apply_round_trip(source in proptest::collection::vec(any::<u8>(), 0..2048),
                                   target in proptest::collection::vec(any::<u8>(), 0..2048)) {
            round_trip(&source, &target);
        }

        #[test]
        fn round_trip_of_similar_images(source in proptest::collection::vec(0u8..3, 0..4096),
                                        edits in proptest::collection::vec((any::<usize>(), 0u8..3, 0usize..40), 0..24),
                                        new_len in 0usize..4400) {
            let mut target = source.clone();
            target.resize(new_len, 0);
            for (at, value, len) in edits {
                let at = at % new_len.max(1);
                for byte in target.iter_mut().skip(at).take(len) { *byte = value; }
            }
            round_trip(&source, &target);
        }
    }
}
