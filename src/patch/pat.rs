//! FireFlower PAT patches: the Japanese text patch convention read by the
//! FireFlower patcher (and NeZuPat, PatchManager): one change per line,
//! `OFFSET: OLD NEW` in hex, `*` comment lines, and `FILENAME name` lines
//! that say which file the following changes belong to.
//!
//! This module also holds the line reader shared with FireFlower FFP
//! (`ffp.rs`) and `fc /b` listings (`fc.rs`): NINJA 2.0 read all three with
//! one routine, and because every line records both the old and the new
//! byte, each can be applied and un-applied.
//!
//! What is certain: the record line (`0001234: 74 EB`, offset then original
//! byte then new byte, hex, case-insensitive), `*` comments and `FILENAME`.
//! What is not: whether FireFlower accepted other separators or multi-byte
//! lines. This reader accepts 4 to 16 offset digits, any run of spaces or tabs
//! between fields, and treats any other line as a comment, as NINJA did.

use std::borrow::Cow;

use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "PAT";

/// How far `matches` looks into a file before deciding.
const SNIFF_LEN: usize = 4096;
/// Offsets shorter than this are not taken for record lines, so that a
/// comment such as `ABC: notes` is not mistaken for a broken record.
const MIN_OFFSET_DIGITS: usize = 4;
const MAX_OFFSET_DIGITS: usize = 16;

/// One byte the patch changes, with the value it expects to find there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteChange {
    pub offset: u64,
    pub old: u8,
    pub new: u8,
}

/// The changes for one file: text patches for multi-file software name the
/// file before its changes; ROM patches usually name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSection<'a> {
    pub file_name: Option<&'a [u8]>,
    pub changes: Vec<ByteChange>,
}

/// A parsed text patch (PAT, FFP or `fc /b` listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPatch<'a> {
    format: &'static str,
    /// Every line that is neither a change nor a file name, in order, without
    /// line endings: author notes, `fc` headers. Often Shift-JIS.
    pub comments: Vec<&'a [u8]>,
    pub sections: Vec<TextSection<'a>>,
    /// `fc` says so when one file is longer: the listing then cannot rebuild
    /// the other file exactly.
    pub lengths_differ: bool,
}

/// Which lines a dialect understands besides change records and comments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    pub format: &'static str,
    pub file_names: bool,
    pub fc_headers: bool,
    /// Whether a file of only `*` comments is an empty patch.
    pub comment_only_is_empty: bool,
}

const PAT_DIALECT: Dialect = Dialect {
    format: NAME,
    file_names: true,
    fc_headers: false,
    comment_only_is_empty: true,
};

/// Cheap check: text (no NUL) with at least one change or `FILENAME` line
/// near the start. FFP and PAT cannot be told apart by content.
pub fn matches(bytes: &[u8]) -> bool {
    sniff(bytes, PAT_DIALECT)
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<TextPatch<'a>, PatchError> {
    parse_dialect(bytes, limits, PAT_DIALECT)
}

/// Writes a PAT patch: one line per changed byte, offsets in 8 hex digits
/// (the form NINJA 2.0 and `fc` both use). Text patches cannot change a
/// file's length.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    let mut text = b"* made by ninja-fs\r\n".to_vec();
    text.extend_from_slice(&change_lines(NAME, source, target)?);
    Ok(text)
}

pub(crate) fn sniff(bytes: &[u8], dialect: Dialect) -> bool {
    let head = bytes.get(..SNIFF_LEN).unwrap_or(bytes);
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    // The last line of the window may be cut short: leave it out.
    let complete = if head.len() < bytes.len() {
        match head.iter().rposition(|&b| b == b'\n') {
            Some(end) => head.get(..end).unwrap_or(head),
            None => return false,
        }
    } else {
        head
    };
    complete.split(|&b| b == b'\n').any(|raw| {
        let line = trim(raw);
        matches!(parse_change(line), Some(Ok(_)))
            || (dialect.file_names && file_name_line(line).is_some())
            || (dialect.fc_headers && fc_header(line).is_some())
    })
}

pub(crate) fn parse_dialect<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    dialect: Dialect,
) -> Result<TextPatch<'a>, PatchError> {
    let format = dialect.format;
    if bytes.contains(&0) {
        return Err(PatchError::NotThisFormat {
            format,
            reason: "it contains NUL bytes, so it is not a text listing".into(),
        });
    }
    let mut patch = TextPatch {
        format,
        comments: Vec::new(),
        sections: vec![TextSection {
            file_name: None,
            changes: Vec::new(),
        }],
        lengths_differ: false,
    };
    let mut awaiting_file_name = false;
    let mut saw_content = false;
    // A file of nothing but `*` comments is a PAT with no changes (what
    // `create` writes for identical files); other text is not a patch.
    let mut only_star_comments = true;
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = trim(raw);
        if line.is_empty() {
            continue;
        }
        let line_number = index + 1;
        only_star_comments &= line.starts_with(b"*");
        if awaiting_file_name && !line.starts_with(b"*") {
            awaiting_file_name = false;
            start_section(&mut patch, line);
            continue;
        }
        match parse_change(line) {
            Some(Ok(change)) => {
                // The offset must be addressable in an image we may build.
                limits.check(format, change.offset.saturating_add(1))?;
                saw_content = true;
                if let Some(section) = patch.sections.last_mut() {
                    section.changes.push(change);
                }
                continue;
            }
            Some(Err(problem)) => {
                return Err(PatchError::Corrupt {
                    format,
                    detail: format!("line {line_number}: {problem}"),
                });
            }
            None => {}
        }
        if dialect.file_names
            && let Some(name) = file_name_line(line)
        {
            saw_content = true;
            match name {
                Some(name) => start_section(&mut patch, name),
                None => awaiting_file_name = true,
            }
            continue;
        }
        if dialect.fc_headers
            && let Some(header) = fc_header(line)
        {
            saw_content = true;
            if header == FcHeader::LengthsDiffer {
                patch.lengths_differ = true;
            }
        }
        patch.comments.push(line);
    }
    if awaiting_file_name {
        return Err(PatchError::Truncated {
            format,
            what: "FILENAME is the last line and names no file".into(),
        });
    }
    let empty_but_commented =
        dialect.comment_only_is_empty && only_star_comments && !patch.comments.is_empty();
    if !(saw_content || empty_but_commented) {
        return Err(PatchError::NotThisFormat {
            format,
            reason: "no line of the form `OFFSET: OLD NEW`".into(),
        });
    }
    // A leading unnamed section only exists to catch changes before the
    // first FILENAME; drop it when there were none.
    if patch.sections.len() > 1
        && patch
            .sections
            .first()
            .is_some_and(|s| s.file_name.is_none() && s.changes.is_empty())
    {
        patch.sections.remove(0);
    }
    Ok(patch)
}

/// The change lines (`XXXXXXXX: OO NN`, CRLF) that turn `source` into
/// `target`; both must have the same length.
pub(crate) fn change_lines(
    format: &'static str,
    source: &[u8],
    target: &[u8],
) -> Result<Vec<u8>, PatchError> {
    if source.len() != target.len() {
        return Err(PatchError::Unsupported {
            format,
            detail: format!(
                "text patches change bytes in place and cannot turn a {}-byte file into a {}-byte one",
                source.len(),
                target.len()
            ),
        });
    }
    let mut text = Vec::new();
    for (offset, (old, new)) in source.iter().zip(target).enumerate() {
        if old != new {
            text.extend_from_slice(format!("{offset:08X}: {old:02X} {new:02X}\r\n").as_bytes());
        }
    }
    Ok(text)
}

impl<'a> TextPatch<'a> {
    /// The display name of the format this patch was read as.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The comment lines as text (lossy: many are Shift-JIS).
    pub fn comment_text(&self) -> Vec<Cow<'a, str>> {
        self.comments
            .iter()
            .map(|line| String::from_utf8_lossy(line))
            .collect()
    }

    /// Text patches carry neither sizes nor checksums; their old bytes are
    /// checked while applying.
    pub fn summary(&self) -> PatchSummary {
        PatchSummary::default()
    }

    /// Changing bytes in place never changes the length.
    pub fn output_size(&self, source_len: u64) -> u64 {
        source_len
    }

    /// Applies the patch's only file section: every old byte must be found
    /// unless `opts.ignore_checksums`.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let section = self.single_section()?;
        self.apply_section(section, source, opts)
    }

    /// Undoes the patch on an already patched file: every new byte must be
    /// found (unless `opts.ignore_checksums`) and is put back to the old one.
    pub fn revert(&self, patched: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let section = self.single_section()?;
        self.revert_section(section, patched, opts)
    }

    /// Applies the changes of `sections[index]` (for patches naming several files).
    pub fn apply_section(
        &self,
        index: usize,
        source: &[u8],
        opts: &ApplyOptions,
    ) -> Result<Vec<u8>, PatchError> {
        self.check_lengths(opts)?;
        let changes = self.section_changes(index)?;
        let mut image = self.copy_image(source, opts)?;
        for change in changes {
            self.swap_byte(&mut image, change.offset, change.old, change.new, opts)?;
        }
        Ok(image)
    }

    /// Reverts the changes of `sections[index]`, last change first.
    pub fn revert_section(
        &self,
        index: usize,
        patched: &[u8],
        opts: &ApplyOptions,
    ) -> Result<Vec<u8>, PatchError> {
        self.check_lengths(opts)?;
        let changes = self.section_changes(index)?;
        let mut image = self.copy_image(patched, opts)?;
        for change in changes.iter().rev() {
            self.swap_byte(&mut image, change.offset, change.new, change.old, opts)?;
        }
        Ok(image)
    }

    fn single_section(&self) -> Result<usize, PatchError> {
        let with_changes: Vec<usize> = self
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.changes.is_empty())
            .map(|(i, _)| i)
            .collect();
        match with_changes.as_slice() {
            [] => Ok(0),
            [only] => Ok(*only),
            several => Err(PatchError::Unsupported {
                format: self.format,
                detail: format!(
                    "it changes {} different files; apply each FILENAME section to its own file",
                    several.len()
                ),
            }),
        }
    }

    fn section_changes(&self, index: usize) -> Result<&[ByteChange], PatchError> {
        match self.sections.get(index) {
            Some(section) => Ok(&section.changes),
            // An empty patch (e.g. `FC: no differences encountered`) has
            // one empty section; any other index is the caller's mistake.
            None if index == 0 => Ok(&[]),
            None => Err(PatchError::Unsupported {
                format: self.format,
                detail: format!("it has no file section number {index}"),
            }),
        }
    }

    fn check_lengths(&self, opts: &ApplyOptions) -> Result<(), PatchError> {
        if self.lengths_differ && !opts.ignore_checksums {
            return Err(PatchError::Unsupported {
                format: self.format,
                detail: "the compared files differ in length and the listing lacks the extra bytes"
                    .into(),
            });
        }
        Ok(())
    }

    fn copy_image(&self, input: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        opts.limits.check(self.format, input.len() as u64)?;
        Ok(input.to_vec())
    }

    fn swap_byte(
        &self,
        image: &mut [u8],
        offset: u64,
        expected: u8,
        replacement: u8,
        opts: &ApplyOptions,
    ) -> Result<(), PatchError> {
        let image_len = image.len();
        let byte = usize::try_from(offset)
            .ok()
            .and_then(|at| image.get_mut(at))
            .ok_or_else(|| PatchError::ChecksumMismatch {
                format: self.format,
                what: "file size",
                expected: format!("at least {} bytes", offset.saturating_add(1)),
                actual: format!("{image_len} bytes"),
            })?;
        if *byte != expected && !opts.ignore_checksums {
            return Err(PatchError::ChecksumMismatch {
                format: self.format,
                what: "byte",
                expected: format!("{expected:02X} at offset 0x{offset:X}"),
                actual: format!("{:02X}", *byte),
            });
        }
        *byte = replacement;
        Ok(())
    }
}

fn start_section<'a>(patch: &mut TextPatch<'a>, name: &'a [u8]) {
    patch.sections.push(TextSection {
        file_name: Some(name),
        changes: Vec::new(),
    });
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// `None` when the line is not a change record at all; `Some(Err)` when it
/// starts like one (hex offset and colon) but the rest is malformed.
fn parse_change(line: &[u8]) -> Option<Result<ByteChange, String>> {
    let colon = line.iter().position(|&b| b == b':')?;
    let offset_digits = line.get(..colon)?;
    if offset_digits.len() < MIN_OFFSET_DIGITS || !offset_digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    Some(parse_change_fields(offset_digits, line.get(colon + 1..)?))
}

fn parse_change_fields(offset_digits: &[u8], rest: &[u8]) -> Result<ByteChange, String> {
    if offset_digits.len() > MAX_OFFSET_DIGITS {
        return Err("offset has more than 16 hex digits".into());
    }
    let offset = hex_value(offset_digits).ok_or("offset is not hex")?;
    let mut fields = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut byte_field = |which: &str| -> Result<u8, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("the {which} byte is missing"))?;
        if field.len() != 2 {
            return Err(format!("the {which} byte is not two hex digits"));
        }
        hex_value(field)
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| format!("the {which} byte is not hex"))
    };
    let old = byte_field("original")?;
    let new = byte_field("new")?;
    if fields.next().is_some() {
        return Err("unexpected text after the new byte".into());
    }
    Ok(ByteChange { offset, old, new })
}

fn hex_value(digits: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// `Some(Some(name))` for `FILENAME name`, `Some(None)` for a bare
/// `FILENAME` (the name follows on the next line).
fn file_name_line(line: &[u8]) -> Option<Option<&[u8]>> {
    const KEYWORD: &[u8] = b"FILENAME";
    let head = line.get(..KEYWORD.len())?;
    if !head.eq_ignore_ascii_case(KEYWORD) {
        return None;
    }
    let rest = line.get(KEYWORD.len()..)?;
    if rest.is_empty() {
        return Some(None);
    }
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    Some(Some(trim(rest)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FcHeader {
    Comparing,
    NoDifferences,
    LengthsDiffer,
}

/// The lines the English `fc` prints around a binary comparison.
pub(crate) fn fc_header(line: &[u8]) -> Option<FcHeader> {
    let text = std::str::from_utf8(line).ok()?;
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("comparing files ") {
        Some(FcHeader::Comparing)
    } else if lower == "fc: no differences encountered" {
        Some(FcHeader::NoDifferences)
    } else if lower.starts_with("fc: ") && lower.contains(" longer than ") {
        Some(FcHeader::LengthsDiffer)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    const SAMPLE: &[u8] = b"* PATNAME : AAA v1.00\r\n\
* AUTHOR : someone\r\n\
0000002: 74 EB\r\n\
00000004: 00 ff\r\n";

    #[test]
    fn parses_records_and_comments() {
        let patch = parse(SAMPLE, &Limits::default()).unwrap();
        assert_eq!(
            patch.comments,
            vec![&b"* PATNAME : AAA v1.00"[..], &b"* AUTHOR : someone"[..]]
        );
        assert_eq!(patch.sections.len(), 1);
        assert_eq!(
            patch.sections[0].changes,
            vec![
                ByteChange {
                    offset: 2,
                    old: 0x74,
                    new: 0xEB
                },
                ByteChange {
                    offset: 4,
                    old: 0x00,
                    new: 0xFF
                },
            ]
        );
        assert_eq!(patch.format(), "PAT");
    }

    #[test]
    fn applies_and_reverts_exact_bytes() {
        let patch = parse(SAMPLE, &Limits::default()).unwrap();
        let source = [1, 2, 0x74, 3, 0x00, 5];
        let patched = patch.apply(&source, &opts()).unwrap();
        assert_eq!(patched, vec![1, 2, 0xEB, 3, 0xFF, 5]);
        assert_eq!(patch.revert(&patched, &opts()).unwrap(), source.to_vec());
        assert_eq!(patch.output_size(6), 6);
    }

    #[test]
    fn wrong_old_byte_is_a_mismatch_unless_ignored() {
        let patch = parse(SAMPLE, &Limits::default()).unwrap();
        let source = [1, 2, 0x75, 3, 0x00, 5];
        assert_eq!(
            patch.apply(&source, &opts()),
            Err(PatchError::ChecksumMismatch {
                format: "PAT",
                what: "byte",
                expected: "74 at offset 0x2".into(),
                actual: "75".into(),
            })
        );
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..opts()
        };
        assert_eq!(
            patch.apply(&source, &forced).unwrap(),
            vec![1, 2, 0xEB, 3, 0xFF, 5]
        );
    }

    #[test]
    fn change_past_the_end_is_refused_even_when_forced() {
        let patch = parse(b"00000010: 00 01\n", &Limits::default()).unwrap();
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..opts()
        };
        assert_eq!(
            patch.apply(&[0; 4], &forced),
            Err(PatchError::ChecksumMismatch {
                format: "PAT",
                what: "file size",
                expected: "at least 17 bytes".into(),
                actual: "4 bytes".into(),
            })
        );
    }

    #[test]
    fn malformed_record_is_corrupt() {
        assert_eq!(
            parse(b"* ok\n00000010: 0G 01\n", &Limits::default()),
            Err(PatchError::Corrupt {
                format: "PAT",
                detail: "line 2: the original byte is not hex".into(),
            })
        );
        assert!(matches!(
            parse(b"00000010: 00\n", &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        assert!(matches!(
            parse(b"00000010: 00 01 02\n", &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn file_name_sections() {
        let text = b"FILENAME a.exe\r\n00000001: 01 02\r\nFILENAME\r\nb.exe\r\n00000003: 03 04\r\n";
        let patch = parse(text, &Limits::default()).unwrap();
        assert_eq!(patch.sections.len(), 2);
        assert_eq!(patch.sections[0].file_name, Some(&b"a.exe"[..]));
        assert_eq!(patch.sections[1].file_name, Some(&b"b.exe"[..]));
        assert!(matches!(
            patch.apply(&[0; 8], &opts()),
            Err(PatchError::Unsupported { .. })
        ));
        assert_eq!(
            patch.apply_section(1, &[0, 0, 0, 3], &opts()).unwrap(),
            vec![0, 0, 0, 4]
        );
        assert!(matches!(
            parse(b"00000001: 01 02\nFILENAME\n", &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
    }

    #[test]
    fn not_text_or_no_records() {
        assert!(matches!(
            parse(b"just some notes\n", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        assert!(matches!(
            parse(b"0000\0: 00 01", &Limits::default()),
            Err(PatchError::NotThisFormat { .. })
        ));
        assert!(matches(SAMPLE));
        assert!(!matches(b"PATCH\x00\x00\x01EOF"));
        assert!(!matches(b"hello world\n"));
    }

    #[test]
    fn offset_beyond_limits_is_too_large() {
        let limits = Limits { max_image_size: 16 };
        assert!(matches!(
            parse(b"00000010: 00 01\n", &limits),
            Err(PatchError::TooLarge { .. })
        ));
    }

    #[test]
    fn create_writes_eight_digit_lines() {
        let made = create(&[0, 1, 2], &[0, 9, 2]).unwrap();
        assert_eq!(made, b"* made by ninja-fs\r\n00000001: 01 09\r\n".to_vec());
        assert!(matches!(
            create(&[0], &[0, 1]),
            Err(PatchError::Unsupported { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = matches(&bytes);
            if let Ok(patch) = parse(&bytes, &Limits::default()) {
                let _ = patch.apply(&bytes, &ApplyOptions::default());
                let _ = patch.revert(&bytes, &ApplyOptions::default());
            }
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec("[0-9A-Fa-f :*\tFILENAMEx]{0,24}", 0..40)) {
            let text = lines.join("\n");
            if let Ok(patch) = parse(text.as_bytes(), &Limits::default()) {
                let _ = patch.apply(&[0; 64], &ApplyOptions::default());
            }
        }

        #[test]
        fn create_apply_revert_round_trip(
            pair in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..1024)
        ) {
            let source: Vec<u8> = pair.iter().map(|p| p.0).collect();
            // Keep about half the bytes equal so patches are realistic.
            let target: Vec<u8> = pair.iter().map(|p| if p.1 % 2 == 0 { p.0 } else { p.1 }).collect();
            let made = create(&source, &target).unwrap();
            let patch = parse(&made, &Limits::default()).unwrap();
            let applied = patch.apply(&source, &ApplyOptions::default()).unwrap();
            prop_assert_eq!(&applied, &target);
            prop_assert_eq!(patch.revert(&applied, &ApplyOptions::default()).unwrap(), source);
        }
    }
}
