//! What collectors write about a patch's source ROM outside the patch
//! itself, for formats that carry no checksum (IPS, PPF 1, GDIFF, VCDIFF):
//! a CRC32 in the patch's file name (`Game (T-En) [47E70E08].ips`, igir's
//! convention), and the "ROM / ISO Information" block of a readme beside it
//! (`CRC32: 47E70E08`, `SHA-1: ...`).

use std::sync::OnceLock;

use regex::bytes::Regex;

/// A digest of the source ROM a hint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SourceDigest {
    Crc32(u32),
    Md5([u8; 16]),
    Sha1([u8; 20]),
}

impl std::fmt::Display for SourceDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceDigest::Crc32(crc) => write!(f, "CRC32 {crc:08x}"),
            SourceDigest::Md5(md5) => write!(f, "MD5 {}", crate::digest::hex(md5)),
            SourceDigest::Sha1(sha1) => write!(f, "SHA-1 {}", crate::digest::hex(sha1)),
        }
    }
}

/// The CRC32 a patch's file name carries in brackets or parentheses, as
/// exactly eight hex digits (`[47E70E08]`, `(47e70e08)`); the last one if
/// several do.
pub fn crc32_in_name(file_name: &str) -> Option<u32> {
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"[\[(]([0-9A-Fa-f]{8})[\])]").expect("a fixed, valid pattern")
    });
    pattern
        .captures_iter(file_name)
        .last()
        .and_then(|found| u32::from_str_radix(&found[1], 16).ok())
}

/// Whether a file beside patches may be a readme that names their ROM.
pub fn is_note(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    lower.starts_with("readme")
        || [".txt", ".nfo", ".md", ".diz"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The most of a readme that is read: the ROM information sits near the top.
pub const NOTE_BYTES: u64 = 256 << 10;

/// The source ROM a readme names, by the strongest digest it states (SHA-1,
/// then MD5, then CRC32), if it names exactly one: a line with the digest's
/// name and its hex value counts, unless it speaks of the patched result
/// (`Patched ROM CRC32`, `Output`, `Target`). Two different values of the
/// same kind mean the text is about several ROMs, and it names none.
pub fn source_in_note(text: &[u8]) -> Option<SourceDigest> {
    static PATTERNS: OnceLock<[Regex; 3]> = OnceLock::new();
    let [sha1, md5, crc32] = PATTERNS.get_or_init(|| {
        let with_value = |names: &str, digits: usize| {
            Regex::new(&format!(
                r"(?im)^(?P<before>[^\n]*?)\b(?:{names})\b[^\n]{{0,40}}?(?:0x|\b)(?P<value>[0-9A-Fa-f]{{{digits}}})\b"
            ))
            .expect("a fixed, valid pattern")
        };
        [
            with_value(r"sha-?1", 40),
            with_value(r"md5", 32),
            with_value(r"crc-?32|crc", 8),
        ]
    });
    let about_result = |line: &[u8]| {
        let line = String::from_utf8_lossy(line).to_ascii_lowercase();
        ["patched", "output", "target", "result", "modified", "after"]
            .iter()
            .any(|word| line.contains(word))
    };
    let only = |pattern: &Regex| -> Option<Vec<u8>> {
        let mut found: Option<Vec<u8>> = None;
        for captures in pattern.captures_iter(text) {
            let (Some(before), Some(value)) = (captures.name("before"), captures.name("value"))
            else {
                continue;
            };
            if about_result(before.as_bytes()) {
                continue;
            }
            let value = value.as_bytes().to_ascii_lowercase();
            match &found {
                Some(seen) if *seen != value => return Some(Vec::new()),
                _ => found = Some(value),
            }
        }
        found
    };
    let decode = |hex: &[u8]| -> Option<Vec<u8>> {
        let hex = std::str::from_utf8(hex).ok()?;
        (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
            .collect()
    };
    // The strongest kind stated decides; several values of it: nothing.
    for (kind, pattern) in [(0, sha1), (1, md5), (2, crc32)] {
        let Some(value) = only(pattern) else {
            continue;
        };
        let bytes = decode(&value)?;
        return match kind {
            0 => bytes.try_into().ok().map(SourceDigest::Sha1),
            1 => bytes.try_into().ok().map(SourceDigest::Md5),
            _ => {
                let bytes: [u8; 4] = bytes.try_into().ok()?;
                Some(SourceDigest::Crc32(u32::from_be_bytes(bytes)))
            }
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32_in_brackets_or_parentheses() {
        assert_eq!(
            crc32_in_name("Game (T-En) [47E70E08].ips"),
            Some(0x47E7_0E08)
        );
        assert_eq!(crc32_in_name("Game (47e70e08).ips"), Some(0x47E7_0E08));
        assert_eq!(crc32_in_name("Game [T+Eng1.00].ips"), None);
        assert_eq!(crc32_in_name("Game (1998).ips"), None);
        assert_eq!(crc32_in_name("Game [47E70E0].ips"), None);
        assert_eq!(crc32_in_name("Game [47E70E089].ips"), None);
        assert_eq!(crc32_in_name("Game 47E70E08.ips"), None);
    }

    #[test]
    fn a_rom_information_block() {
        let readme = b"Super Hack v1.1\r\n\r\n\
            ROM / ISO Information:\r\n\
            Database match: Game (USA)\r\n\
            File/ROM SHA-1: 3E1D9C4C6A7B2B5F5C9D3B2B8D8A6E8F0F1E2D3C\r\n\
            File/ROM CRC32: 47E70E08\r\n";
        assert_eq!(
            source_in_note(readme),
            Some(SourceDigest::Sha1([
                0x3E, 0x1D, 0x9C, 0x4C, 0x6A, 0x7B, 0x2B, 0x5F, 0x5C, 0x9D, 0x3B, 0x2B, 0x8D, 0x8A,
                0x6E, 0x8F, 0x0F, 0x1E, 0x2D, 0x3C
            ]))
        );
        let crc_only =
            b"Apply to the headerless ROM.\nCRC32: 47e70e08\nPatched ROM CRC32: 12345678\n";
        assert_eq!(
            source_in_note(crc_only),
            Some(SourceDigest::Crc32(0x47E7_0E08))
        );
        let md5 = b"Original MD5 = 0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            source_in_note(md5),
            Some(SourceDigest::Md5([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef
            ]))
        );
    }

    #[test]
    fn several_roms_or_none_name_nothing() {
        assert_eq!(
            source_in_note(b"USA CRC32: 47E70E08\nEurope CRC32: 11223344\n"),
            None
        );
        assert_eq!(source_in_note(b"Thanks to everyone who tested.\n"), None);
        assert_eq!(source_in_note(b"CRC32: not known\n"), None);
        assert_eq!(source_in_note(b"Output CRC32: 47E70E08\n"), None);
        // The same value twice is one ROM.
        assert_eq!(
            source_in_note(b"CRC32: 47E70E08\nCRC: 47e70e08\n"),
            Some(SourceDigest::Crc32(0x47E7_0E08))
        );
    }

    #[test]
    fn notes_by_name() {
        assert!(is_note("README"));
        assert!(is_note("readme.1st"));
        assert!(is_note("Hack v1.1.TXT"));
        assert!(is_note("info.nfo"));
        assert!(!is_note("Game.ips"));
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_panic(text in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = source_in_note(&text);
        }

        #[test]
        fn any_name_is_read_without_panic(name in ".{0,80}") {
            let _ = crc32_in_name(&name);
        }

        #[test]
        fn a_stated_crc32_is_found(crc in any::<u32>(), pad in "[a-z ]{0,20}") {
            let text = format!("{pad}\nCRC32: {crc:08X}\n{pad}\n");
            prop_assert_eq!(source_in_note(text.as_bytes()), Some(SourceDigest::Crc32(crc)));
        }
    }
}
