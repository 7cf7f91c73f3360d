//! `fc /b` listings: the output of Windows' File Compare in binary mode,
//! which NINJA 2.0 accepted as a patch (`fc /b OLD NEW > out.pat`).
//!
//! ```text
//! Comparing files OLD.BIN and NEW.BIN
//! 00000010: 41 42
//! FC: no differences encountered
//! FC: OLD.BIN longer than NEW.BIN
//! ```
//!
//! Each difference line is `OFFSET: OLD NEW` in hex, so a listing can be
//! applied and reverted. `fc` only lists the bytes both files share: when it
//! reports one file longer, the listing cannot rebuild the other exactly, so
//! `apply` refuses unless `ignore_checksums` (then the length is kept).
//! Headers of localized `fc` builds are kept as comments.

use super::pat::{self, Dialect, TextPatch};
use super::{Limits, PatchError};

pub const NAME: &str = "fc /b";

/// An `fc /b` listing has the same shape as a PAT patch, without file names.
pub type FcPatch<'a> = TextPatch<'a>;

const FC_DIALECT: Dialect = Dialect {
    format: NAME,
    file_names: false,
    fc_headers: true,
    comment_only_is_empty: false,
};

/// Cheap check: text with a `Comparing files`/`FC:` header or a difference
/// line near the start.
pub fn matches(bytes: &[u8]) -> bool {
    pat::sniff(bytes, FC_DIALECT)
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<FcPatch<'a>, PatchError> {
    pat::parse_dialect(bytes, limits, FC_DIALECT)
}

/// Writes what `fc /b ORIGINAL MODIFIED` prints for two files of the same
/// length (CRLF line ends, upper-case hex).
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let lines = pat::change_lines(NAME, source, target)?;
    let mut text = b"Comparing files ORIGINAL and MODIFIED\r\n".to_vec();
    if lines.is_empty() {
        text.extend_from_slice(b"FC: no differences encountered\r\n");
    } else {
        text.extend_from_slice(&lines);
    }
    text.extend_from_slice(b"\r\n");
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::ApplyOptions;
    use crate::patch::pat::ByteChange;
    use proptest::prelude::*;

    const LISTING: &[u8] = b"Comparing files nes15-NTSC.nes and NES15-PAL.NES\r\n\
00000002: 41 42\r\n\
0000000A: FF 00\r\n\r\n";

    #[test]
    fn parses_a_listing() {
        let patch = parse(LISTING, &Limits::default()).unwrap();
        assert_eq!(patch.format(), "fc /b");
        assert_eq!(
            patch.comments,
            vec![&b"Comparing files nes15-NTSC.nes and NES15-PAL.NES"[..]]
        );
        assert_eq!(
            patch.sections[0].changes,
            vec![
                ByteChange {
                    offset: 2,
                    old: 0x41,
                    new: 0x42
                },
                ByteChange {
                    offset: 10,
                    old: 0xFF,
                    new: 0x00
                },
            ]
        );
        assert!(!patch.lengths_differ);
        assert!(matches(LISTING));
    }

    #[test]
    fn no_differences_is_an_empty_patch() {
        let text = b"Comparing files A and B\r\nFC: no differences encountered\r\n\r\n";
        let patch = parse(text, &Limits::default()).unwrap();
        assert_eq!(
            patch.apply(&[7, 8], &ApplyOptions::default()).unwrap(),
            vec![7, 8]
        );
        assert_eq!(
            create(&[7, 8], &[7, 8]).unwrap(),
            b"Comparing files ORIGINAL and MODIFIED\r\nFC: no differences encountered\r\n\r\n"
                .to_vec()
        );
    }

    #[test]
    fn length_difference_refused_unless_forced() {
        let text = b"Comparing files A and B\r\n00000000: 01 02\r\nFC: A longer than B\r\n";
        let patch = parse(text, &Limits::default()).unwrap();
        assert!(patch.lengths_differ);
        assert!(matches!(
            patch.apply(&[1, 5], &ApplyOptions::default()),
            Err(PatchError::Unsupported {
                format: "fc /b",
                ..
            })
        ));
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..ApplyOptions::default()
        };
        assert_eq!(patch.apply(&[1, 5], &forced).unwrap(), vec![2, 5]);
    }

    #[test]
    fn file_name_lines_are_comments_here() {
        let patch = parse(b"FILENAME x\n00000000: 01 02\n", &Limits::default()).unwrap();
        assert_eq!(patch.sections.len(), 1);
        assert_eq!(patch.comments, vec![&b"FILENAME x"[..]]);
    }

    #[test]
    fn create_matches_fc_output() {
        assert_eq!(
            create(&[0, 0x41, 2], &[0, 0x42, 2]).unwrap(),
            b"Comparing files ORIGINAL and MODIFIED\r\n00000001: 41 42\r\n\r\n".to_vec()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = matches(&bytes);
            if let Ok(patch) = parse(&bytes, &Limits::default()) {
                let _ = patch.apply(&bytes, &ApplyOptions::default());
            }
        }

        #[test]
        fn create_apply_revert_round_trip(
            pair in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..1024)
        ) {
            let source: Vec<u8> = pair.iter().map(|p| p.0).collect();
            let target: Vec<u8> = pair.iter().map(|p| if p.1 % 4 == 0 { p.1 } else { p.0 }).collect();
            let patch_bytes = create(&source, &target).unwrap();
            let patch = parse(&patch_bytes, &Limits::default()).unwrap();
            let applied = patch.apply(&source, &ApplyOptions::default()).unwrap();
            prop_assert_eq!(&applied, &target);
            prop_assert_eq!(patch.revert(&applied, &ApplyOptions::default()).unwrap(), source);
        }
    }
}
