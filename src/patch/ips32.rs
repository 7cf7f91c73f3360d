//! IPS32: IPS with 32-bit offsets, for images past IPS's 16 MiB (GBA and
//! DS hacks, Switch executable patches): the magic "IPS32", records of a
//! 4-byte big-endian offset, a 2-byte size and the bytes (or, for size 0,
//! a 2-byte run length and the byte to repeat), and the end marker "EEOF".
//! Unlike IPS it has no truncation length, so it cannot shorten a file.
//! The records are IPS's, so [`super::ips`] reads, applies and writes them.

use super::ips::{self, Dialect, IpsPatch};
use super::{Limits, PatchError};

pub const NAME: &str = "IPS32";

pub(crate) const IPS32: Dialect = Dialect {
    name: NAME,
    magic: b"IPS32",
    end_marker: b"EEOF",
    truncation: false,
    instead: "use BPS or UPS",
};

/// True when `bytes` starts with the IPS32 magic (whatever the file's
/// name: IPS32 patches are often named `.ips`).
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(IPS32.magic)
}

/// Parses an IPS32 patch: every record complete and within `limits`, the
/// EEOF marker present and nothing after it.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<IpsPatch<'a>, PatchError> {
    ips::parse_dialect(&IPS32, bytes, limits)
}

/// Creates an IPS32 patch. Fails for a target shorter than the source,
/// which IPS32 cannot describe.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    ips::create_dialect(&IPS32, source, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::ApplyOptions;
    use crate::patch::ips::IpsData;
    use proptest::prelude::*;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
        let patch = create(source, target).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.format, NAME);
        assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
        assert!(parsed.apply(source, &opts()).unwrap() == target);
        patch
    }

    #[test]
    fn create_exact_bytes() {
        // Two changes four bytes apart merge into one record (a new record
        // header costs six bytes in IPS32).
        let patch = round_trip(b"abcdefghijk", b"aXcdefYhijk");
        assert_eq!(patch, b"IPS32\x00\x00\x00\x01\x00\x06XcdefYEEOF");
        let patch = round_trip(b"ab", b"abzzzzzzzzzzzzz");
        assert_eq!(patch, b"IPS32\x00\x00\x00\x02\x00\x00\x00\x0dzEEOF");
        assert_eq!(round_trip(b"", b""), b"IPS32EEOF");
        assert_eq!(round_trip(b"same", b"same"), b"IPS32EEOF");
    }

    #[test]
    fn rle_only_where_shorter() {
        let source = [0u8; 40];
        let mut target = [0u8; 40];
        // Inside a block a run pays for itself past 9 + 6 = 15 bytes.
        target[0] = 1;
        target[1..16].fill(7);
        target[16] = 2;
        let patch = round_trip(&source, &target);
        assert_eq!(parse(&patch, &Limits::default()).unwrap().records.len(), 1);
        target[16] = 7;
        target[17] = 2;
        let patch = round_trip(&source, &target);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(
            parsed.records[1].data,
            IpsData::Run {
                length: 16,
                value: 7
            }
        );
    }

    #[test]
    fn reaches_past_16_mib() {
        let mut patch = b"IPS32".to_vec();
        patch.extend_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x00, 0x02, 0xAA, 0xBB]);
        patch.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x5A]);
        patch.extend_from_slice(b"EEOF");
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.records[0].offset, 0x0123_4567);
        assert_eq!(parsed.output_size(16), 0x0123_4569);
        let out = parsed.apply(&[1; 16], &opts()).unwrap();
        assert_eq!(out.len(), 0x0123_4569);
        assert_eq!(&out[..17], &[[1; 16].as_slice(), &[0]].concat()[..]);
        assert_eq!(&out[0x0100_0000..0x0100_0004], &[0x5A, 0x5A, 0x5A, 0]);
        assert_eq!(&out[0x0123_4567..], &[0xAA, 0xBB]);
        // And a target past 16 MiB round-trips, which IPS refuses.
        let source = vec![0u8; 0x0100_0010];
        let mut target = source.clone();
        target[0x0100_0008] = 9;
        target.extend_from_slice(b"tail");
        let patch = round_trip(&source, &target);
        assert_eq!(
            patch,
            b"IPS32\x01\x00\x00\x08\x00\x01\x09\x01\x00\x00\x10\x00\x04tailEEOF"
        );
    }

    #[test]
    fn cannot_shorten() {
        assert_eq!(
            create(b"abcdef", b"abc").unwrap_err().to_string(),
            "IPS32 patch cannot be used here: the target (3 bytes) is shorter than the source \
             (6 bytes) and IPS32 cannot shorten a file; use BPS or UPS"
        );
    }

    #[test]
    fn hostile_and_damaged_patches_are_refused() {
        let limits = Limits::default();
        let error = |bytes: &[u8], limits: &Limits| parse(bytes, limits).unwrap_err().to_string();
        assert_eq!(
            error(b"PATCHEOF", &limits),
            "not a IPS32 patch: it does not start with \"IPS32\""
        );
        assert_eq!(
            error(b"IPS32", &limits),
            "IPS32 patch is truncated: the EEOF marker is missing"
        );
        // A record cut short, and an EEOF cut short (read as an offset).
        assert_eq!(
            error(b"IPS32\x00\x00\x00\x01\x00\x05abc", &limits),
            "IPS32 patch is truncated: record data at byte 11 needs 5 bytes, 3 are left"
        );
        assert_eq!(
            error(b"IPS32\x00\x00\x00\x01\x00\x01aEEO", &limits),
            "IPS32 patch is truncated: record offset at byte 12 needs 4 bytes, 3 are left"
        );
        assert_eq!(
            error(b"IPS32\x00\x00\x00\x01\x00\x00\x00", &limits),
            "IPS32 patch is truncated: RLE length at byte 11 needs 2 bytes, 1 is left"
        );
        // The IPS end marker does not end an IPS32 patch.
        assert_eq!(
            error(b"IPS32EOF", &limits),
            "IPS32 patch is truncated: record offset at byte 5 needs 4 bytes, 3 are left"
        );
        // IPS's truncation length is not IPS32's.
        assert_eq!(
            error(b"IPS32EEOF\x00\x00\x03", &limits),
            "IPS32 patch is corrupt: 3 unexpected bytes after the EEOF marker (nothing may follow it)"
        );
        // An RLE record and a literal one ending past --max-size, found
        // while parsing, before any image is allocated.
        let small = Limits {
            max_image_size: 0x1000,
        };
        assert_eq!(
            error(b"IPS32\x00\x00\x0f\xff\x00\x00\x00\x02\x00EEOF", &small),
            "IPS32 patch would make a 4097-byte image, over the maximum of 4096 bytes \
             (raise --max-size if the patch is genuine)"
        );
        assert_eq!(
            error(b"IPS32\xff\xff\xff\xff\x00\x00\xff\xff\x00EEOF", &limits),
            format!(
                "IPS32 patch would make a {}-byte image, over the maximum of {} bytes \
                 (raise --max-size if the patch is genuine)",
                0xFFFF_FFFFu64 + 0xFFFF,
                Limits::DEFAULT_MAX_IMAGE_SIZE
            )
        );
        assert_eq!(
            error(b"IPS32\x00\x00\x10\x00\x00\x01aEEOF", &small),
            "IPS32 patch would make a 4097-byte image, over the maximum of 4096 bytes \
             (raise --max-size if the patch is genuine)"
        );
        // Within the parse limit but over a smaller apply limit.
        let patch = parse(b"IPS32\x00\x00\x10\x00\x00\x01aEEOF", &limits).unwrap();
        let apply_opts = ApplyOptions {
            limits: small,
            ..ApplyOptions::default()
        };
        assert_eq!(
            patch.apply(b"", &apply_opts).unwrap_err().to_string(),
            "IPS32 patch would make a 4097-byte image, over the maximum of 4096 bytes \
             (raise --max-size if the patch is genuine)"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                              source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut patch = b"IPS32".to_vec();
            patch.extend_from_slice(&bytes);
            let limits = Limits { max_image_size: 1 << 20 };
            let _ = parse(&bytes, &limits);
            if let Ok(parsed) = parse(&patch, &limits) {
                let out = parsed.apply(&source, &opts()).unwrap();
                prop_assert_eq!(out.len() as u64, parsed.output_size(source.len() as u64));
            }
        }

        #[test]
        fn create_apply_round_trip(source in proptest::collection::vec(any::<u8>(), 0..2048),
                                   extra in proptest::collection::vec(any::<u8>(), 0..2048),
                                   keep in 0usize..2048) {
            // IPS32 cannot shorten: the target keeps at least the source's length.
            let mut target = source.clone();
            let keep = keep.min(target.len());
            target[keep..].iter_mut().zip(&extra).for_each(|(b, e)| *b = *e);
            target.extend_from_slice(&extra);
            round_trip(&source, &target);
        }

        #[test]
        fn round_trip_of_similar_images(source in proptest::collection::vec(0u8..3, 0..2048),
                                        edits in proptest::collection::vec((any::<usize>(), 0u8..3, 0usize..40), 0..24),
                                        grow in 0usize..200) {
            let mut target = source.clone();
            target.resize(source.len() + grow, 0);
            let len = target.len();
            for (at, value, run) in edits {
                let at = at % len.max(1);
                for byte in target.iter_mut().skip(at).take(run) { *byte = value; }
            }
            round_trip(&source, &target);
        }
    }
}
