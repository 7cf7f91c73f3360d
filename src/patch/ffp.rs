//! FireFlower FFP patches: the text patches of Kuma's FireFlower patcher
//! (2000), popular for Neo Geo colour and graphics hacks. NINJA 2.0 read
//! them with the same routine as PAT and `fc /b` listings, and so does this
//! module: `OFFSET: OLD NEW` lines in hex, everything else a comment.
//!
//! Uncertain: no public description of FFP's own grammar was found. What is
//! implemented is the shared line form (see `pat.rs`); whether FireFlower
//! gave `.ffp` files any extra header or keyword is not known. `FILENAME`
//! lines are accepted as in PAT.

use super::pat::{self, Dialect, TextPatch};
use super::{Limits, PatchError};

pub const NAME: &str = "FFP";

/// An FFP patch has the same shape as a PAT patch.
pub type FfpPatch<'a> = TextPatch<'a>;

const FFP_DIALECT: Dialect = Dialect {
    format: NAME,
    file_names: true,
    fc_headers: false,
    comment_only_is_empty: true,
};

/// Cheap check: text with a change line near the start. FFP and PAT cannot
/// be told apart by content; the file extension decides.
pub fn matches(bytes: &[u8]) -> bool {
    pat::sniff(bytes, FFP_DIALECT)
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<FfpPatch<'a>, PatchError> {
    pat::parse_dialect(bytes, limits, FFP_DIALECT)
}

/// Writes an FFP patch (same-length files only): a comment line, then one
/// `XXXXXXXX: OO NN` line per changed byte.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let mut text = b"* FireFlower patch made by ninja-fs\r\n".to_vec();
    text.extend_from_slice(&pat::change_lines(NAME, source, target)?);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::ApplyOptions;
    use crate::patch::pat::ByteChange;
    use proptest::prelude::*;

    #[test]
    fn parses_with_its_own_name() {
        let patch = parse(
            b"* KOF colour edit\r\n0001F2A0: 79 27\r\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(patch.format(), "FFP");
        assert_eq!(
            patch.sections[0].changes,
            vec![ByteChange {
                offset: 0x1F2A0,
                old: 0x79,
                new: 0x27
            }]
        );
        assert!(matches!(
            parse(b"nothing here", &Limits::default()),
            Err(PatchError::NotThisFormat { format: "FFP", .. })
        ));
    }

    #[test]
    fn identical_files_make_an_empty_patch() {
        let made = create(&[1, 2, 3], &[1, 2, 3]).unwrap();
        assert_eq!(made, b"* FireFlower patch made by ninja-fs\r\n".to_vec());
        let patch = parse(&made, &Limits::default()).unwrap();
        assert_eq!(
            patch.apply(&[1, 2, 3], &ApplyOptions::default()).unwrap(),
            vec![1, 2, 3]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = matches(&bytes);
            let _ = parse(&bytes, &Limits::default());
        }

        #[test]
        fn create_apply_revert_round_trip(
            pair in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..1024)
        ) {
            let source: Vec<u8> = pair.iter().map(|p| p.0).collect();
            let target: Vec<u8> = pair.iter().map(|p| if p.1 % 3 == 0 { p.1 } else { p.0 }).collect();
            let patch_bytes = create(&source, &target).unwrap();
            let patch = parse(&patch_bytes, &Limits::default()).unwrap();
            let applied = patch.apply(&source, &ApplyOptions::default()).unwrap();
            prop_assert_eq!(&applied, &target);
            prop_assert_eq!(patch.revert(&applied, &ApplyOptions::default()).unwrap(), source);
        }
    }
}
