//! UPS (byuu's "universal patching system"): XOR hunks between a source
//! and a target, with both sizes and CRC32s in the patch. Because XOR is its
//! own inverse, one patch turns the source into the target and back.
//!
//! This module also holds the bounds-checked byte reader and the
//! variable-length number (VLV) coding that BPS shares with UPS.

use super::reader::ByteReader;
use super::{ApplyOptions, Checksum, Limits, PatchError, PatchSummary};

pub const NAME: &str = "UPS";

const MAGIC: &[u8] = b"UPS1";
/// Source CRC32, target CRC32 and patch CRC32, little-endian, at the end.
const FOOTER_LEN: usize = 12;

/// True when `bytes` starts with the UPS magic.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A parsed UPS patch. Hunk offsets are absolute positions in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsPatch<'a> {
    pub source_size: u64,
    pub target_size: u64,
    pub hunks: Vec<UpsHunk<'a>>,
    pub source_crc32: u32,
    pub target_crc32: u32,
    pub patch_crc32: u32,
}

/// Bytes to XOR into the image starting at `offset` (the zero terminator
/// that ends a hunk in the file is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsHunk<'a> {
    pub offset: u64,
    pub xor: &'a [u8],
}

/// Which way an input goes through a UPS patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsDirection {
    /// Source to target.
    Forward,
    /// Target back to source (un-patching).
    Reverse,
}

/// Parses and fully validates a UPS patch, including its own CRC32.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<UpsPatch<'a>, PatchError> {
    let Header {
        mut reader,
        source_size,
        target_size,
        crc32s: [source_crc32, target_crc32, patch_crc32],
    } = read_header(NAME, MAGIC, bytes, limits)?;
    // Hunks cover the larger image: that is what makes the patch reversible.
    let image_span = source_size.max(target_size);

    let mut hunks = Vec::new();
    let mut position: u64 = 0;
    while !reader.is_empty() {
        let skip = reader.vlv("hunk offset")?;
        position = position
            .checked_add(skip)
            .ok_or_else(|| corrupt(NAME, "a hunk offset overflows 64 bits"))?;
        let rest = reader.rest();
        let xor_len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| PatchError::Truncated {
                format: NAME,
                what: format!("the hunk at offset {position} has no terminating zero byte"),
            })?;
        let xor = reader.take(xor_len, "hunk data")?;
        reader.take(1, "hunk terminator")?;
        let hunk_end = position.saturating_add(xor_len as u64);
        if hunk_end > image_span {
            return Err(corrupt(
                NAME,
                format!(
                    "a hunk at offset {position} ends at {hunk_end}, past both the source ({source_size} bytes) and the target ({target_size} bytes)"
                ),
            ));
        }
        if !xor.is_empty() {
            hunks.push(UpsHunk {
                offset: position,
                xor,
            });
        }
        // The terminator stands for one unchanged byte.
        position = hunk_end.saturating_add(1);
    }

    Ok(UpsPatch {
        source_size,
        target_size,
        hunks,
        source_crc32,
        target_crc32,
        patch_crc32,
    })
}

impl UpsPatch<'_> {
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: Some(self.source_size),
            target_size: Some(self.target_size),
            source_checksum: Some(Checksum::Crc32(self.source_crc32)),
            target_checksum: Some(Checksum::Crc32(self.target_crc32)),
        }
    }

    /// The direction chosen by size alone, as `output_size` must without
    /// the data: an input of the target's size (and not the source's) is
    /// being un-patched.
    fn direction_by_size(&self, input_len: u64) -> UpsDirection {
        if input_len != self.source_size && input_len == self.target_size {
            UpsDirection::Reverse
        } else {
            UpsDirection::Forward
        }
    }

    /// The length `apply` returns for an input of `source_len` bytes.
    pub fn output_size(&self, source_len: u64) -> u64 {
        match self.direction_by_size(source_len) {
            UpsDirection::Forward => self.target_size,
            UpsDirection::Reverse => self.source_size,
        }
    }

    /// Which way `input` would go: forward when it is the source, reverse
    /// when it is the target. Without checksum checks, the sizes decide.
    pub fn direction(&self, input: &[u8], opts: &ApplyOptions) -> Result<UpsDirection, PatchError> {
        let input_len = input.len() as u64;
        let input_crc = crc32fast::hash(input);
        if input_len == self.source_size && input_crc == self.source_crc32 {
            return Ok(UpsDirection::Forward);
        }
        if input_len == self.target_size && input_crc == self.target_crc32 {
            return Ok(UpsDirection::Reverse);
        }
        if opts.ignore_checksums {
            return Ok(self.direction_by_size(input_len));
        }
        // The target is taken too (to undo the patch), so the user is told.
        Err(PatchError::ChecksumMismatch {
            format: NAME,
            what: "source",
            expected: format!(
                "{} (or a target with {}, to undo it)",
                Checksum::Crc32(self.source_crc32),
                Checksum::Crc32(self.target_crc32)
            ),
            actual: Checksum::Crc32(input_crc).to_string(),
        })
    }

    /// Applies the patch forward to the source, or in reverse when `input`
    /// is the patch's target (giving the source back).
    pub fn apply(&self, input: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let direction = self.direction(input, opts)?;
        self.apply_in(input, direction, opts)
    }

    /// Undoes the patch: `patched` must be its target (size and CRC32,
    /// unless checksums are ignored), and the result is its source.
    pub fn revert(&self, patched: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let input_crc = crc32fast::hash(patched);
        let is_target = patched.len() as u64 == self.target_size && input_crc == self.target_crc32;
        if !is_target && !opts.ignore_checksums {
            return Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "target",
                expected: Checksum::Crc32(self.target_crc32).to_string(),
                actual: Checksum::Crc32(input_crc).to_string(),
            });
        }
        self.apply_in(patched, UpsDirection::Reverse, opts)
    }

    fn apply_in(
        &self,
        input: &[u8],
        direction: UpsDirection,
        opts: &ApplyOptions,
    ) -> Result<Vec<u8>, PatchError> {
        let (output_size, output_crc) = match direction {
            UpsDirection::Forward => (self.target_size, self.target_crc32),
            UpsDirection::Reverse => (self.source_size, self.source_crc32),
        };
        let output_len = opts.limits.check(NAME, output_size)?;
        let mut output = vec![0u8; output_len];
        let kept = input.len().min(output_len);
        if let (Some(dest), Some(src)) = (output.get_mut(..kept), input.get(..kept)) {
            dest.copy_from_slice(src);
        }
        for hunk in &self.hunks {
            let Ok(start) = usize::try_from(hunk.offset) else {
                continue;
            };
            // Bytes past the output only describe the other direction.
            let Some(dest) = output.get_mut(start..) else {
                continue;
            };
            for (byte, xor) in dest.iter_mut().zip(hunk.xor) {
                *byte ^= xor;
            }
        }
        if !opts.ignore_checksums {
            let actual = crc32fast::hash(&output);
            if actual != output_crc {
                return Err(wrong_result(NAME, output_crc, actual));
            }
        }
        Ok(output)
    }
}

/// Creates a UPS patch from `source` to `target`.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let mut patch = Vec::with_capacity(64);
    patch.extend_from_slice(MAGIC);
    write_vlv(&mut patch, source.len() as u64);
    write_vlv(&mut patch, target.len() as u64);

    let span = source.len().max(target.len());
    let xor_at =
        |i: usize| source.get(i).copied().unwrap_or(0) ^ target.get(i).copied().unwrap_or(0);
    let mut position = 0;
    let mut previous_end = 0;
    while position < span {
        if xor_at(position) == 0 {
            position += 1;
            continue;
        }
        write_vlv(&mut patch, (position - previous_end) as u64);
        while position < span {
            let xor = xor_at(position);
            if xor == 0 {
                break;
            }
            patch.push(xor);
            position += 1;
        }
        patch.push(0);
        position += 1;
        previous_end = position;
    }

    patch.extend_from_slice(&crc32fast::hash(source).to_le_bytes());
    patch.extend_from_slice(&crc32fast::hash(target).to_le_bytes());
    let patch_crc = crc32fast::hash(&patch);
    patch.extend_from_slice(&patch_crc.to_le_bytes());
    Ok(patch)
}

// ---- helpers shared with BPS ----

/// Splits off the 12-byte CRC footer that UPS and BPS end with.
/// What UPS and BPS patches share before their records: the magic, the
/// three CRC32s of the footer (the patch's own checked), and the source and
/// target sizes (the target checked against the limits before anything is
/// allocated for it).
pub(crate) struct Header<'a> {
    /// Positioned after the two sizes.
    pub reader: ByteReader<'a>,
    pub source_size: u64,
    pub target_size: u64,
    /// Source, target and patch CRC32, in footer order.
    pub crc32s: [u32; 3],
}

pub(crate) fn read_header<'a>(
    format: &'static str,
    magic: &[u8],
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<Header<'a>, PatchError> {
    if !bytes.starts_with(magic) {
        return Err(PatchError::NotThisFormat {
            format,
            reason: format!(
                "it does not start with \"{}\"",
                String::from_utf8_lossy(magic)
            ),
        });
    }
    let (body, crc32s) = split_footer(format, bytes)?;
    verify_patch_crc(format, bytes, crc32s[2])?;
    let mut reader = ByteReader::new(format, body);
    reader.take(magic.len(), "magic")?;
    let source_size = reader.vlv("source size")?;
    let target_size = reader.vlv("target size")?;
    limits.check(format, target_size)?;
    Ok(Header {
        reader,
        source_size,
        target_size,
        crc32s,
    })
}

pub(crate) fn split_footer<'a>(
    format: &'static str,
    bytes: &'a [u8],
) -> Result<(&'a [u8], [u32; 3]), PatchError> {
    let body_len = bytes
        .len()
        .checked_sub(FOOTER_LEN)
        .filter(|&len| len >= MAGIC.len())
        .ok_or_else(|| PatchError::Truncated {
            format,
            what: format!(
                "{} bytes is too short for the header and checksums",
                bytes.len()
            ),
        })?;
    let (body, footer) = bytes.split_at(body_len);
    let mut crcs = [0u32; 3];
    for (crc, chunk) in crcs.iter_mut().zip(footer.chunks_exact(4)) {
        let mut le = [0u8; 4];
        le.copy_from_slice(chunk);
        *crc = u32::from_le_bytes(le);
    }
    Ok((body, crcs))
}

/// The last four bytes are the CRC32 of everything before them.
pub(crate) fn verify_patch_crc(
    format: &'static str,
    bytes: &[u8],
    stored: u32,
) -> Result<(), PatchError> {
    let covered = bytes
        .get(..bytes.len().saturating_sub(4))
        .unwrap_or_default();
    let actual = crc32fast::hash(covered);
    if actual != stored {
        return Err(PatchError::Damaged {
            format,
            checksum: "CRC32",
            stored: format!("{stored:08x}"),
            actual: format!("{actual:08x}"),
        });
    }
    Ok(())
}

/// The source given is not the patch's: `expected` is its CRC32.
pub(crate) fn source_mismatch(format: &'static str, expected: u32, actual: u32) -> PatchError {
    PatchError::ChecksumMismatch {
        format,
        what: "source",
        expected: Checksum::Crc32(expected).to_string(),
        actual: Checksum::Crc32(actual).to_string(),
    }
}

/// The source matched but the output's CRC32 is not the one promised.
pub(crate) fn wrong_result(format: &'static str, expected: u32, actual: u32) -> PatchError {
    PatchError::WrongResult {
        format,
        expected: Checksum::Crc32(expected).to_string(),
        actual: Checksum::Crc32(actual).to_string(),
    }
}

pub(crate) fn corrupt(format: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError::Corrupt {
        format,
        detail: detail.into(),
    }
}

/// UPS and BPS numbers, read with the shared checked reader.
impl ByteReader<'_> {
    /// Reads a UPS/BPS variable-length number: seven bits per byte, least
    /// significant first, the high bit marking the last byte, and each
    /// continuation adding one more step so that no number has two codings.
    pub(crate) fn vlv(&mut self, what: &str) -> Result<u64, PatchError> {
        let start = self.position();
        let format = self.format();
        let overflow = || {
            corrupt(
                format,
                format!("the {what} at byte {start} does not fit in 64 bits"),
            )
        };
        let mut value: u64 = 0;
        let mut scale: u64 = 1;
        loop {
            let byte = self.byte(what)?;
            value = u64::from(byte & 0x7f)
                .checked_mul(scale)
                .and_then(|part| value.checked_add(part))
                .ok_or_else(overflow)?;
            if byte & 0x80 != 0 {
                return Ok(value);
            }
            scale = scale.checked_mul(0x80).ok_or_else(overflow)?;
            value = value.checked_add(scale).ok_or_else(overflow)?;
        }
    }
}

/// Appends `value` as a UPS/BPS variable-length number.
pub(crate) fn write_vlv(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(0x80 | low);
            return;
        }
        out.push(low);
        value -= 1;
    }
}

/// How many bytes `write_vlv` uses for `value`.
pub(crate) fn vlv_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value = (value >> 7) - 1;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    fn read_vlv(bytes: &[u8]) -> Result<u64, PatchError> {
        ByteReader::new(NAME, bytes).vlv("number")
    }

    #[test]
    fn vlv_known_codings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x80]),
            (1, &[0x81]),
            (127, &[0xff]),
            (128, &[0x00, 0x80]),
            (255, &[0x7f, 0x80]),
            (16511, &[0x7f, 0xff]),
            (16512, &[0x00, 0x00, 0x80]),
        ];
        for &(value, coding) in cases {
            let mut out = Vec::new();
            write_vlv(&mut out, value);
            assert_eq!(out, coding, "coding of {value}");
            assert_eq!(vlv_len(value), coding.len());
            assert_eq!(read_vlv(coding), Ok(value));
        }
    }

    #[test]
    fn vlv_extremes() {
        let mut out = Vec::new();
        write_vlv(&mut out, u64::MAX);
        assert_eq!(out.len(), vlv_len(u64::MAX));
        assert_eq!(read_vlv(&out), Ok(u64::MAX));
        // Eleven continuation bytes cannot be a 64-bit number.
        let too_long = [0x7fu8; 11];
        assert!(matches!(
            read_vlv(&too_long),
            Err(PatchError::Corrupt { .. })
        ));
        let mut max_plus = out.clone();
        // Bump the last byte: one more than u64::MAX.
        if let Some(last) = max_plus.last_mut() {
            *last += 1;
        }
        assert!(matches!(
            read_vlv(&max_plus),
            Err(PatchError::Corrupt { .. })
        ));
        assert!(matches!(
            read_vlv(&[0x00, 0x00]),
            Err(PatchError::Truncated { .. })
        ));
    }

    #[test]
    fn create_exact_bytes() {
        let patch = create(b"ABCD", b"ABXDE").unwrap();
        let mut expected = b"UPS1".to_vec();
        expected.extend_from_slice(&[0x84, 0x85]); // sizes 4 and 5
        // skip 2, XOR 'C'^'X', terminator; skip 0, XOR 0^'E', terminator
        expected.extend_from_slice(&[0x82, b'C' ^ b'X', 0x00, 0x80, b'E', 0x00]);
        expected.extend_from_slice(&crc32fast::hash(b"ABCD").to_le_bytes());
        expected.extend_from_slice(&crc32fast::hash(b"ABXDE").to_le_bytes());
        let crc = crc32fast::hash(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(patch, expected);

        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(
            parsed.hunks,
            vec![
                UpsHunk {
                    offset: 2,
                    xor: &[b'C' ^ b'X']
                },
                UpsHunk {
                    offset: 4,
                    xor: b"E"
                }
            ]
        );
        assert_eq!(parsed.apply(b"ABCD", &opts()).unwrap(), b"ABXDE");
        assert_eq!(parsed.output_size(4), 5);
    }

    #[test]
    fn reverse_apply_restores_source() {
        let source = b"hello world, this is the source";
        let target = b"HELLO";
        let patch = create(source, target).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.apply(source, &opts()).unwrap(), target);
        assert_eq!(parsed.direction(target, &opts()), Ok(UpsDirection::Reverse));
        assert_eq!(parsed.apply(target, &opts()).unwrap(), source);
        assert_eq!(parsed.output_size(target.len() as u64), source.len() as u64);
        assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
    }

    #[test]
    fn revert_takes_only_the_target() {
        let source = b"hello world, this is the source";
        let target = b"HELLO";
        let parsed_bytes = create(source, target).unwrap();
        let parsed = parse(&parsed_bytes, &Limits::default()).unwrap();
        assert_eq!(parsed.revert(target, &opts()).unwrap(), source);
        // The source is not a patched image: nothing to undo.
        assert_eq!(
            parsed.revert(source, &opts()),
            Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "target",
                expected: format!("CRC32 {:08x}", crc32fast::hash(target)),
                actual: format!("CRC32 {:08x}", crc32fast::hash(source)),
            })
        );
    }

    #[test]
    fn wrong_source_is_refused_unless_ignored() {
        let patch = create(b"abcd", b"abce").unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        let err = parsed.apply(b"zzzz", &opts()).unwrap_err();
        assert!(matches!(
            err,
            PatchError::ChecksumMismatch { what: "source", .. }
        ));
        let lenient = ApplyOptions {
            ignore_checksums: true,
            ..opts()
        };
        assert_eq!(parsed.apply(b"zzzz", &lenient).unwrap(), b"zzz{");
    }

    #[test]
    fn corrupted_patch_crc_is_refused() {
        let mut patch = create(b"abcd", b"abce").unwrap();
        patch[6] ^= 1;
        assert!(matches!(
            parse(&patch, &Limits::default()),
            Err(PatchError::Damaged {
                checksum: "CRC32",
                ..
            })
        ));
    }

    /// Builds a patch from a body (after the magic) with a valid patch CRC.
    fn with_footer(body: &[u8]) -> Vec<u8> {
        let mut patch = b"UPS1".to_vec();
        patch.extend_from_slice(body);
        patch.extend_from_slice(&[0; 8]);
        let crc = crc32fast::hash(&patch);
        patch.extend_from_slice(&crc.to_le_bytes());
        patch
    }

    #[test]
    fn huge_target_is_too_large_before_allocating() {
        let mut body = Vec::new();
        write_vlv(&mut body, 0);
        write_vlv(&mut body, 1 << 60);
        let patch = with_footer(&body);
        assert_eq!(
            parse(&patch, &Limits::default()),
            Err(PatchError::TooLarge {
                format: NAME,
                size: 1 << 60,
                max: Limits::DEFAULT_MAX_IMAGE_SIZE
            })
        );
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            parse(b"UPS1", &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"PATCH", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        // Hunk without terminator.
        assert!(matches!(
            parse(&with_footer(&[0x84, 0x84, 0x80, 1, 2]), &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
        // Hunk past both images.
        assert!(matches!(
            parse(&with_footer(&[0x84, 0x84, 0x84, 1, 0]), &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        // Overflowing skip.
        let mut body = vec![0x84, 0x84];
        body.extend_from_slice(&[0x7f; 11]);
        assert!(matches!(
            parse(&with_footer(&body), &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes, &Limits::default());
            let mut with_magic = b"UPS1".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse(&with_magic, &Limits::default());
        }

        #[test]
        fn valid_crc_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256),
                                          input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let patch = with_footer(&body);
            if let Ok(parsed) = parse(&patch, &Limits { max_image_size: 1 << 16 }) {
                let lenient = ApplyOptions { ignore_checksums: true, limits: Limits { max_image_size: 1 << 16 } };
                if let Ok(out) = parsed.apply(&input, &lenient) {
                    prop_assert_eq!(out.len() as u64, parsed.output_size(input.len() as u64));
                }
            }
        }

        #[test]
        fn create_apply_round_trip(source in proptest::collection::vec(any::<u8>(), 0..2048),
                                   target in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let patch = create(&source, &target).unwrap();
            let parsed = parse(&patch, &Limits::default()).unwrap();
            prop_assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
            prop_assert_eq!(&parsed.apply(&source, &opts()).unwrap(), &target);
            if source != target {
                prop_assert_eq!(&parsed.apply(&target, &opts()).unwrap(), &source);
            }
        }

        #[test]
        fn round_trip_of_similar_images(source in proptest::collection::vec(0u8..4, 0..2048),
                                        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..32),
                                        new_len in 0usize..2200) {
            let mut target = source.clone();
            target.resize(new_len, 0);
            for (at, value) in edits {
                if let Some(byte) = target.get_mut(at % new_len.max(1)) { *byte = value; }
            }
            let patch = create(&source, &target).unwrap();
            let parsed = parse(&patch, &Limits::default()).unwrap();
            prop_assert_eq!(&parsed.apply(&source, &opts()).unwrap(), &target);
        }
    }
}
