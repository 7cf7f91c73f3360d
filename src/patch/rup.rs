//! NINJA 2.0 patches (`.rup`), the format layer: it works on NORMALIZED
//! images (the system layer strips headers and fixes layouts first).
//!
//! A patch is a 0x800-byte header (magic, text encoding, eight metadata
//! fields) and a command stream: OPEN starts an entry (name, system type,
//! sizes, MD5s, and the longer file's tail when sizes differ), XOR records
//! hold `source ^ target` for runs of differing bytes, END stops. Because
//! the records are XOR, the same entry patches forward or back; the input's
//! MD5 picks the direction.

mod md5_pair;

use md5::{Digest, Md5};

use super::reader::ByteReader;
use super::{ApplyOptions, Checksum, Limits, PatchError, PatchSummary};
use md5_pair::Md5Blocks;

pub const NAME: &str = "RUP";

const MAGIC: &[u8; 6] = b"NINJA2";
const OLDER_MAGIC: &[u8; 6] = b"NINJA1";
const HEADER_LEN: usize = 0x800;
const ENCODING_OFFSET: usize = 6;

const COMMAND_END: u8 = 0x00;
const COMMAND_OPEN: u8 = 0x01;
const COMMAND_XOR: u8 = 0x02;

const OVERFLOW_APPEND: u8 = b'A';
const OVERFLOW_MINUS: u8 = b'M';

/// Longest VLV byte count a reader accepts: a u64.
const MAX_VLV_BYTES: u8 = 8;

/// The metadata slots after the encoding byte: (offset, length).
const AUTHOR_SLOT: (usize, usize) = (0x007, 84);
const VERSION_SLOT: (usize, usize) = (0x05B, 11);
const TITLE_SLOT: (usize, usize) = (0x066, 256);
const GENRE_SLOT: (usize, usize) = (0x166, 48);
const LANGUAGE_SLOT: (usize, usize) = (0x196, 48);
const DATE_SLOT: (usize, usize) = (0x1C6, 8);
const WEBSITE_SLOT: (usize, usize) = (0x1CE, 512);
const DESCRIPTION_SLOT: (usize, usize) = (0x3CE, 1074);

/// How the header's text fields (and entry names) are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TextEncoding {
    /// Byte 0: a legacy single-byte code page, read as Latin-1.
    #[default]
    Legacy,
    /// Byte 1.
    Utf8,
}

impl TextEncoding {
    fn from_byte(byte: u8) -> Self {
        if byte == 1 {
            TextEncoding::Utf8
        } else {
            TextEncoding::Legacy
        }
    }

    fn byte(self) -> u8 {
        match self {
            TextEncoding::Legacy => 0,
            TextEncoding::Utf8 => 1,
        }
    }

    fn decode(self, bytes: &[u8]) -> String {
        match self {
            TextEncoding::Legacy => bytes.iter().map(|byte| char::from(*byte)).collect(),
            TextEncoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    fn encode(self, text: &str, what: &str) -> Result<Vec<u8>, PatchError> {
        match self {
            TextEncoding::Utf8 => Ok(text.as_bytes().to_vec()),
            TextEncoding::Legacy => text
                .chars()
                .map(|character| {
                    u8::try_from(u32::from(character)).map_err(|_| PatchError::Unsupported {
                        format: NAME,
                        detail: format!(
                            "the {what} contains {character:?}, which the legacy encoding cannot hold; choose UTF-8"
                        ),
                    })
                })
                .collect(),
        }
    }
}

/// The header's metadata. `description` is kept as stored: a line break is
/// the two characters `\` `n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RupInfo {
    pub author: String,
    pub version: String,
    pub title: String,
    pub genre: String,
    pub language: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub website: String,
    pub description: String,
    pub encoding: TextEncoding,
}

impl RupInfo {
    fn fields(&self) -> [(&str, &str, (usize, usize)); 8] {
        [
            ("author", &self.author, AUTHOR_SLOT),
            ("version", &self.version, VERSION_SLOT),
            ("title", &self.title, TITLE_SLOT),
            ("genre", &self.genre, GENRE_SLOT),
            ("language", &self.language, LANGUAGE_SLOT),
            ("date", &self.date, DATE_SLOT),
            ("website", &self.website, WEBSITE_SLOT),
            ("description", &self.description, DESCRIPTION_SLOT),
        ]
    }
}

/// Which way an entry was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The input was the source; the output is the target.
    Forward,
    /// The input was the target; the output is the source.
    Reverse,
}

/// What an entry's overflow block holds: the tail of the longer file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowKind {
    /// `A`: the target is larger; the target's tail.
    Append,
    /// `M`: the source is larger; the source's tail.
    Minus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow<'a> {
    pub kind: OverflowKind,
    /// As stored: every byte XOR 0xFF.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorRecord<'a> {
    pub offset: u64,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RupEntry<'a> {
    /// Relative path with `/` in a multi-file patch; `None` for a single file.
    pub name: Option<String>,
    /// NINJA's system type (0 = raw, 1 = NES, ... 9 = Lynx).
    pub system_type: u8,
    pub source_size: u64,
    pub target_size: u64,
    pub source_md5: [u8; 16],
    pub target_md5: [u8; 16],
    pub overflow: Option<Overflow<'a>>,
    pub records: Vec<XorRecord<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RupPatch<'a> {
    pub info: RupInfo,
    pub entries: Vec<RupEntry<'a>>,
}

/// One file to put in a patch made by [`create`]; both images normalized.
#[derive(Debug, Clone, Copy)]
pub struct CreateEntry<'a> {
    pub name: Option<&'a str>,
    pub system_type: u8,
    pub source: &'a [u8],
    pub target: &'a [u8],
}

/// A NINJA2 number: a count byte, then that many bytes little-endian.
fn read_number(reader: &mut ByteReader<'_>, what: &str) -> Result<u64, PatchError> {
    let count = reader.byte(what)?;
    if count > MAX_VLV_BYTES {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: format!(
                "{what} at byte {} claims {count} bytes; a number has at most 8",
                reader.position() - 1
            ),
        });
    }
    let value = reader
        .take(usize::from(count), what)?
        .iter()
        .rev()
        .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
    Ok(value)
}

/// A NINJA2 length, then that many bytes.
fn read_sized<'a>(reader: &mut ByteReader<'a>, what: &str) -> Result<&'a [u8], PatchError> {
    let length = read_number(reader, what)?;
    reader.take_u64(length, what)
}

pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<RupPatch<'a>, PatchError> {
    if !bytes.starts_with(MAGIC) {
        if bytes.starts_with(OLDER_MAGIC) {
            return Err(PatchError::Unsupported {
                format: NAME,
                detail: "this is a NINJA 1.x patch, an older and different format".to_string(),
            });
        }
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with NINJA2".to_string(),
        });
    }
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| PatchError::Truncated {
            format: NAME,
            what: format!(
                "the header is {} bytes, it should be {HEADER_LEN}",
                bytes.len()
            ),
        })?;
    let info = read_info(header);

    let mut cursor = ByteReader::at(NAME, bytes, HEADER_LEN);
    let mut entries: Vec<RupEntry<'a>> = Vec::new();
    loop {
        let command_at = cursor.position();
        let command = cursor
            .byte("the command stream")
            .map_err(|_| PatchError::Truncated {
                format: NAME,
                what: "the command stream ends without its END command".to_string(),
            })?;
        match command {
            COMMAND_END => break,
            COMMAND_OPEN => entries.push(read_open(&mut cursor, info.encoding, limits)?),
            COMMAND_XOR => {
                let entry = entries.last_mut().ok_or_else(|| PatchError::Corrupt {
                    format: NAME,
                    detail: format!("XOR record at byte {command_at} comes before any file"),
                })?;
                let record = read_xor(&mut cursor, entry)?;
                entry.records.push(record);
            }
            other => {
                return Err(PatchError::Corrupt {
                    format: NAME,
                    detail: format!("unknown command byte {other:#04x} at byte {command_at}"),
                });
            }
        }
    }
    Ok(RupPatch { info, entries })
}

fn read_info(header: &[u8]) -> RupInfo {
    let encoding = TextEncoding::from_byte(header.get(ENCODING_OFFSET).copied().unwrap_or(0));
    let field = |(offset, length): (usize, usize)| {
        let slot = header.get(offset..offset + length).unwrap_or_default();
        let text = slot.split(|byte| *byte == 0).next().unwrap_or_default();
        encoding.decode(text)
    };
    RupInfo {
        author: field(AUTHOR_SLOT),
        version: field(VERSION_SLOT),
        title: field(TITLE_SLOT),
        genre: field(GENRE_SLOT),
        language: field(LANGUAGE_SLOT),
        date: field(DATE_SLOT),
        website: field(WEBSITE_SLOT),
        description: field(DESCRIPTION_SLOT),
        encoding,
    }
}

fn read_open<'a>(
    cursor: &mut ByteReader<'a>,
    encoding: TextEncoding,
    limits: &Limits,
) -> Result<RupEntry<'a>, PatchError> {
    let name_bytes = read_sized(cursor, "a file name")?;
    let name = if name_bytes.is_empty() {
        None
    } else {
        let name = encoding.decode(name_bytes);
        check_relative_path(&name).map_err(|detail| PatchError::Corrupt {
            format: NAME,
            detail,
        })?;
        Some(name)
    };
    let system_type = cursor.byte("a system type")?;
    let source_size = read_number(cursor, "a source size")?;
    let target_size = read_number(cursor, "a target size")?;
    limits.check(NAME, source_size)?;
    limits.check(NAME, target_size)?;
    let source_md5 = cursor.array("the source MD5")?;
    let target_md5 = cursor.array("the target MD5")?;

    // Some hand-edited patches leave the block out; without it a size
    // change can only truncate, which the applier handles.
    let overflow = if source_size != target_size {
        let kind = match cursor.peek() {
            Some(OVERFLOW_APPEND) => Some(OverflowKind::Append),
            Some(OVERFLOW_MINUS) => Some(OverflowKind::Minus),
            _ => None,
        };
        match kind {
            Some(kind) => {
                cursor.byte("an overflow letter")?;
                let data = read_sized(cursor, "overflow data")?;
                let size_difference = source_size.abs_diff(target_size);
                if data.len() as u64 > size_difference {
                    return Err(PatchError::Corrupt {
                        format: NAME,
                        detail: format!(
                            "the overflow block holds {} bytes, more than the {size_difference}-byte size difference",
                            data.len()
                        ),
                    });
                }
                Some(Overflow { kind, data })
            }
            None => None,
        }
    } else {
        None
    };

    Ok(RupEntry {
        name,
        system_type,
        source_size,
        target_size,
        source_md5,
        target_md5,
        overflow,
        records: Vec::new(),
    })
}

fn read_xor<'a>(
    cursor: &mut ByteReader<'a>,
    entry: &RupEntry<'a>,
) -> Result<XorRecord<'a>, PatchError> {
    let offset = read_number(cursor, "an XOR offset")?;
    let data = read_sized(cursor, "XOR data")?;
    let larger_size = entry.source_size.max(entry.target_size);
    let end = offset.checked_add(data.len() as u64);
    if end.is_none_or(|end| end > larger_size) {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: format!(
                "an XOR record at offset {offset:#x} ({} bytes) passes the end of both files ({larger_size} bytes)",
                data.len()
            ),
        });
    }
    Ok(XorRecord { offset, data })
}

/// Refuses names that would leave the directory the patch is applied in.
fn check_relative_path(name: &str) -> Result<(), String> {
    let escapes = name.starts_with('/')
        || name.contains('\0')
        || name.split(['/', '\\']).any(|component| component == "..");
    if escapes {
        return Err(format!(
            "file name {name:?} is not a plain relative path inside the patched folder"
        ));
    }
    Ok(())
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

impl RupPatch<'_> {
    /// Sizes and MD5s for a single-entry patch; a multi-file patch has no
    /// single answer (look at `entries`).
    pub fn summary(&self) -> PatchSummary {
        match self.entries.as_slice() {
            [entry] => entry.summary(),
            _ => PatchSummary::default(),
        }
    }

    /// Applies to an input that needs no normalization (system type 0, or
    /// already normalized): among the unnamed entries, the one whose MD5
    /// matches the input, either way round.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let unnamed: Vec<&RupEntry<'_>> = self
            .entries
            .iter()
            .filter(|entry| entry.name.is_none())
            .collect();
        let digest = md5_of(source);
        let matching = unnamed
            .iter()
            .find(|entry| entry.direction_for_digest(&digest).is_some());
        match (matching, unnamed.as_slice()) {
            (Some(entry), _) | (None, [entry]) => Ok(entry
                .apply_normalized_with_digest(source, &digest, None, opts)?
                .0),
            (None, []) if self.entries.is_empty() => Err(PatchError::Unsupported {
                format: NAME,
                detail: "this patch holds no files".to_string(),
            }),
            (None, []) => Err(PatchError::Unsupported {
                format: NAME,
                detail: "every file in this patch is named: apply it to a folder".to_string(),
            }),
            (None, _) => Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "source",
                expected: unnamed
                    .iter()
                    .map(|entry| entry.expected_digests())
                    .collect::<Vec<_>>()
                    .join(", or "),
                actual: Checksum::Md5(digest).to_string(),
            }),
        }
    }
}

impl RupPatch<'_> {
    /// Undoes the patch on an input that needs no normalization: among the
    /// unnamed entries, the one whose target MD5 matches, in reverse.
    pub fn revert(&self, patched: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let unnamed: Vec<&RupEntry<'_>> = self
            .entries
            .iter()
            .filter(|entry| entry.name.is_none())
            .collect();
        let digest = md5_of(patched);
        let matching = unnamed.iter().find(|entry| entry.target_md5 == digest);
        match (matching, unnamed.as_slice()) {
            (Some(entry), _) | (None, [entry]) => Ok(entry
                .apply_normalized_with_digest(patched, &digest, Some(Direction::Reverse), opts)?
                .0),
            (None, []) => Err(PatchError::Unsupported {
                format: NAME,
                detail: "every file in this patch is named: apply it to a folder".to_string(),
            }),
            (None, _) => Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "target",
                expected: unnamed
                    .iter()
                    .map(|entry| Checksum::Md5(entry.target_md5).to_string())
                    .collect::<Vec<_>>()
                    .join(", or "),
                actual: Checksum::Md5(digest).to_string(),
            }),
        }
    }
}

impl RupEntry<'_> {
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: Some(self.source_size),
            target_size: Some(self.target_size),
            source_checksum: Some(Checksum::Md5(self.source_md5)),
            target_checksum: Some(Checksum::Md5(self.target_md5)),
        }
    }

    /// Which way this entry applies to a normalized input, if either.
    pub fn direction_for(&self, normalized_input: &[u8]) -> Option<Direction> {
        self.direction_for_digest(&md5_of(normalized_input))
    }

    /// [`RupEntry::direction_for`] for an input whose MD5 is already known.
    pub fn direction_for_digest(&self, digest: &[u8; 16]) -> Option<Direction> {
        if *digest == self.source_md5 {
            Some(Direction::Forward)
        } else if *digest == self.target_md5 {
            Some(Direction::Reverse)
        } else {
            None
        }
    }

    fn expected_digests(&self) -> String {
        format!(
            "{} (or a target with {}, to undo it)",
            Checksum::Md5(self.source_md5),
            Checksum::Md5(self.target_md5)
        )
    }

    /// Patches a normalized image, forward or back as its MD5 says, and
    /// checks the result's MD5. With `ignore_checksums`, an input matching
    /// neither digest is patched forward and the result is not checked.
    pub fn apply_normalized(
        &self,
        normalized_input: &[u8],
        opts: &ApplyOptions,
    ) -> Result<(Vec<u8>, Direction), PatchError> {
        self.apply_normalized_in(normalized_input, None, opts)
    }

    /// [`RupEntry::apply_normalized`] in the direction `wanted` only, when
    /// given: `Reverse` takes only the target (or, with `ignore_checksums`,
    /// anything) and gives the source back.
    pub fn apply_normalized_in(
        &self,
        normalized_input: &[u8],
        wanted: Option<Direction>,
        opts: &ApplyOptions,
    ) -> Result<(Vec<u8>, Direction), PatchError> {
        let input_digest = md5_of(normalized_input);
        self.apply_normalized_with_digest(normalized_input, &input_digest, wanted, opts)
    }

    /// [`RupEntry::apply_normalized_in`] for a caller that has hashed the
    /// input already (to pick the entry): MD5 is most of an apply's time,
    /// so each image is hashed once. `input_digest` must be the MD5 of
    /// `normalized_input`.
    pub fn apply_normalized_with_digest(
        &self,
        normalized_input: &[u8],
        input_digest: &[u8; 16],
        wanted: Option<Direction>,
        opts: &ApplyOptions,
    ) -> Result<(Vec<u8>, Direction), PatchError> {
        let input_digest = *input_digest;
        let found = self
            .direction_for_digest(&input_digest)
            .filter(|direction| wanted.is_none_or(|wanted| wanted == *direction));
        let direction = match found {
            Some(direction) => direction,
            None if opts.ignore_checksums => wanted.unwrap_or(Direction::Forward),
            None if wanted == Some(Direction::Reverse) => {
                return Err(PatchError::ChecksumMismatch {
                    format: NAME,
                    what: "target",
                    expected: Checksum::Md5(self.target_md5).to_string(),
                    actual: Checksum::Md5(input_digest).to_string(),
                });
            }
            None => {
                return Err(PatchError::ChecksumMismatch {
                    format: NAME,
                    what: "source",
                    expected: self.expected_digests(),
                    actual: Checksum::Md5(input_digest).to_string(),
                });
            }
        };
        let output_len = opts.limits.check(NAME, self.output_size(direction))?;
        let output = self.build(normalized_input, direction, output_len);
        if !opts.ignore_checksums {
            self.check_output(direction, &md5_of(&output))?;
        }
        Ok((output, direction))
    }

    /// Hashes `normalized_input` and, when its MD5 is one this entry
    /// patches from (in the direction `wanted`, when given), applies the
    /// entry and checks the result. The result is made first, on the guess
    /// that the input is the entry's source, so that both MD5s are computed
    /// in one loop ([`md5_pair`]); an input that is the target is patched
    /// again backwards. Nothing is applied to an input that matches neither
    /// digest.
    pub fn apply_if_matching(
        &self,
        normalized_input: &[u8],
        wanted: Option<Direction>,
        opts: &ApplyOptions,
    ) -> Result<Hashed, PatchError> {
        let guess = wanted.unwrap_or(Direction::Forward);
        let Ok(output_len) = opts.limits.check(NAME, self.output_size(guess)) else {
            // Too large to make: the input's digest alone decides the error.
            return Ok(Hashed {
                input_digest: md5_of(normalized_input),
                applied: None,
            });
        };
        let output = self.build(normalized_input, guess, output_len);
        let (input_digest, output_digest) = md5_pair::md5_pair(normalized_input, &output);
        let found = self
            .direction_for_digest(&input_digest)
            .filter(|direction| wanted.is_none_or(|wanted| wanted == *direction));
        match found {
            None => Ok(Hashed {
                input_digest,
                applied: None,
            }),
            Some(direction) if direction == guess => {
                if !opts.ignore_checksums {
                    self.check_output(direction, &output_digest)?;
                }
                Ok(Hashed {
                    input_digest,
                    applied: Some((output, direction)),
                })
            }
            Some(direction) => {
                drop(output);
                let applied = self.apply_normalized_with_digest(
                    normalized_input,
                    &input_digest,
                    Some(direction),
                    opts,
                )?;
                Ok(Hashed {
                    input_digest,
                    applied: Some(applied),
                })
            }
        }
    }

    fn output_size(&self, direction: Direction) -> u64 {
        match direction {
            Direction::Forward => self.target_size,
            Direction::Reverse => self.source_size,
        }
    }

    /// The entry applied to `input` in `direction`, `output_len` bytes.
    fn build(&self, input: &[u8], direction: Direction, output_len: usize) -> Vec<u8> {
        let mut output = Vec::with_capacity(output_len);
        super::prefault(&mut output);
        // The input's bytes and zeros written once, then the changes: a
        // zero-filled buffer filled again would cost a pass over the image.
        output.extend_from_slice(input.get(..output_len).unwrap_or(input));
        output.resize(output_len, 0);
        self.pieces(input, direction).change(0, &mut output);
        output
    }

    /// The entry's result made in pieces, front to back.
    fn pieces<'p>(&'p self, input: &'p [u8], direction: Direction) -> Pieces<'p> {
        let input_size = match direction {
            Direction::Forward => self.source_size,
            Direction::Reverse => self.target_size,
        };
        // The tail is stored for one case each way; the other two truncate.
        let output_size = self.output_size(direction);
        let wanted_kind = match direction {
            Direction::Forward if output_size > input_size => Some(OverflowKind::Append),
            Direction::Reverse if output_size > input_size => Some(OverflowKind::Minus),
            _ => None,
        };
        let tail = self
            .overflow
            .filter(|overflow| Some(overflow.kind) == wanted_kind)
            .map(|overflow| (input_size, overflow.data));
        let mut by_offset: Vec<&XorRecord<'_>> = self.records.iter().collect();
        by_offset.sort_by_key(|record| record.offset);
        Pieces {
            input,
            by_offset,
            next: 0,
            open: Vec::new(),
            tail,
        }
    }

    /// Which way this entry applies to `normalized_input` (in the direction
    /// `wanted`, when given), with the result's MD5 checked, all without
    /// keeping the result: it is made in pieces and hashed as it is made,
    /// the input alongside. `None` when the input matches neither digest,
    /// the result would pass the size limit, or checksums are ignored:
    /// [`RupEntry::apply_if_matching`] says what is wrong then.
    /// [`RupEntry::write_checked`] writes the result afterwards.
    pub fn check_in_pieces(
        &self,
        normalized_input: &[u8],
        wanted: Option<Direction>,
        opts: &ApplyOptions,
    ) -> Result<Option<Direction>, PatchError> {
        let guess = wanted.unwrap_or(Direction::Forward);
        if opts.ignore_checksums || opts.limits.check(NAME, self.output_size(guess)).is_err() {
            return Ok(None);
        }
        let (input_digest, output_digest) =
            self.digests_in_pieces(normalized_input, guess, true, PIECE);
        let found = input_digest
            .and_then(|digest| self.direction_for_digest(&digest))
            .filter(|direction| wanted.is_none_or(|wanted| wanted == *direction));
        let Some(direction) = found else {
            return Ok(None);
        };
        let output_digest = if direction == guess {
            output_digest
        } else if opts
            .limits
            .check(NAME, self.output_size(direction))
            .is_err()
        {
            return Ok(None);
        } else {
            self.digests_in_pieces(normalized_input, direction, false, PIECE)
                .1
        };
        self.check_output(direction, &output_digest)?;
        Ok(Some(direction))
    }

    /// Writes into `sink` the result [`RupEntry::check_in_pieces`] checked:
    /// only writing can fail.
    pub fn write_checked(
        &self,
        normalized_input: &[u8],
        direction: Direction,
        sink: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        self.write_in_pieces(normalized_input, direction, sink, PIECE)
    }

    fn write_in_pieces(
        &self,
        input: &[u8],
        direction: Direction,
        sink: &mut dyn std::io::Write,
        piece_len: usize,
    ) -> std::io::Result<()> {
        self.each_piece(input, direction, piece_len, |_, piece| {
            sink.write_all(piece)
        })
    }

    /// Makes the result in `direction` front to back in pieces of
    /// `piece_len` bytes (the last shorter), each given to `visit` with
    /// where it starts, in one buffer reused for all.
    fn each_piece<E>(
        &self,
        input: &[u8],
        direction: Direction,
        piece_len: usize,
        mut visit: impl FnMut(usize, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let output_len = usize::try_from(self.output_size(direction)).unwrap_or(usize::MAX);
        let mut pieces = self.pieces(input, direction);
        let mut buffer = vec![0u8; piece_len.min(output_len)];
        let mut at = 0;
        while at < output_len {
            let piece = &mut buffer[..piece_len.min(output_len - at)];
            pieces.fill(at, piece);
            visit(at, piece)?;
            at += piece.len();
        }
        Ok(())
    }

    /// The MD5 of the result in `direction` (made piece by piece, each
    /// piece hashed while it is in the cache and then overwritten) and,
    /// when `with_input`, that of the input, hashed in the same loop.
    /// `piece_len` is a whole number of MD5 blocks.
    fn digests_in_pieces(
        &self,
        input: &[u8],
        direction: Direction,
        with_input: bool,
        piece_len: usize,
    ) -> (Option<[u8; 16]>, [u8; 16]) {
        debug_assert_eq!(piece_len % md5_pair::BLOCK, 0, "pieces of whole blocks");
        let output_len = usize::try_from(self.output_size(direction)).unwrap_or(usize::MAX);
        let (mut input_md5, mut output_md5) = (Md5Blocks::new(), Md5Blocks::new());
        // The input's whole blocks that have a piece beside them are hashed
        // with it; the rest of the input after the loop.
        let paired_len = match with_input {
            true => input.len().min(output_len) / md5_pair::BLOCK * md5_pair::BLOCK,
            false => 0,
        };
        // Every piece but the last is whole blocks: only the last leaves a
        // tail (under 64 bytes) for `finish`.
        let mut tail = Vec::new();
        let hashed: Result<(), std::convert::Infallible> =
            self.each_piece(input, direction, piece_len, |at, piece| {
                let end = at + piece.len();
                let input_piece = &input[at.min(paired_len)..end.min(paired_len)];
                let whole = md5_pair::whole_len(piece);
                input_md5.update_pair(input_piece, &mut output_md5, &piece[..whole]);
                tail.clear();
                tail.extend_from_slice(&piece[whole..]);
                Ok(())
            });
        let Ok(()) = hashed;
        (
            with_input.then(|| input_md5.finish(&input[paired_len..])),
            output_md5.finish(&tail),
        )
    }

    /// Whether a result made in `direction` has the MD5 the entry promises.
    fn check_output(&self, direction: Direction, actual: &[u8; 16]) -> Result<(), PatchError> {
        let expected = match direction {
            Direction::Forward => self.target_md5,
            Direction::Reverse => self.source_md5,
        };
        if *actual == expected {
            Ok(())
        } else {
            Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "patched file MD5",
                expected: Checksum::Md5(expected).to_string(),
                actual: Checksum::Md5(*actual).to_string(),
            })
        }
    }
}

/// How much of a result [`RupEntry::check_in_pieces`] and
/// [`RupEntry::write_checked`] make at a time: small enough to stay in the
/// cache between making a piece and hashing or writing it, a whole number
/// of MD5 blocks.
const PIECE: usize = 2048 * md5_pair::BLOCK;

/// An entry's result made front to back, one piece at a time: the input's
/// bytes (zeros past its end), every XOR record over them, then the stored
/// tail. Records are taken in offset order and dropped once passed.
struct Pieces<'p> {
    input: &'p [u8],
    by_offset: Vec<&'p XorRecord<'p>>,
    /// The first record of `by_offset` not yet reached.
    next: usize,
    /// Records reached that reach past the last piece made.
    open: Vec<&'p XorRecord<'p>>,
    /// Where the stored tail goes (the input's declared size) and its bytes.
    tail: Option<(u64, &'p [u8])>,
}

impl Pieces<'_> {
    /// Makes the result's bytes from `start` into `piece`. Pieces must be
    /// asked for in order, each starting where the one before ended.
    fn fill(&mut self, start: usize, piece: &mut [u8]) {
        let from_input = self.input.get(start..).unwrap_or_default();
        let from_input = from_input.get(..piece.len()).unwrap_or(from_input);
        let (copied, past_input) = piece.split_at_mut(from_input.len());
        copied.copy_from_slice(from_input);
        past_input.fill(0);
        self.change(start, piece);
    }

    /// Applies the records and the stored tail to `piece`, the result's
    /// bytes from `start` as the input gives them (zeros past its end).
    /// Pieces must come in order, as for [`Pieces::fill`].
    fn change(&mut self, start: usize, piece: &mut [u8]) {
        let (start, end) = (start as u64, (start + piece.len()) as u64);
        while let Some(record) = self.by_offset.get(self.next) {
            if record.offset >= end {
                break;
            }
            self.open.push(record);
            self.next += 1;
        }
        for record in &self.open {
            xor_into(piece, start, record.offset, record.data, |byte, xor| {
                *byte ^= xor
            });
        }
        self.open
            .retain(|record| record.offset.saturating_add(record.data.len() as u64) > end);
        if let Some((offset, stored)) = self.tail {
            xor_into(piece, start, offset, stored, |byte, stored| {
                *byte = stored ^ 0xFF
            });
        }
    }
}

/// Combines the bytes of `data`, which start at `offset` of the result,
/// with those of `piece`, which starts at `start`, where the two overlap.
fn xor_into(piece: &mut [u8], start: u64, offset: u64, data: &[u8], combine: impl Fn(&mut u8, u8)) {
    let end = start + piece.len() as u64;
    let data_end = offset.saturating_add(data.len() as u64);
    if offset >= end || data_end <= start {
        return;
    }
    let from = offset.max(start);
    let to = data_end.min(end);
    let piece = &mut piece[(from - start) as usize..(to - start) as usize];
    let data = &data[(from - offset) as usize..(to - offset) as usize];
    for (byte, value) in piece.iter_mut().zip(data) {
        combine(byte, *value);
    }
}

/// What [`RupEntry::apply_if_matching`] found.
pub struct Hashed {
    /// The MD5 of the input.
    pub input_digest: [u8; 16],
    /// The checked result and its direction, for an input the entry
    /// patches.
    pub applied: Option<(Vec<u8>, Direction)>,
}

/// Makes a NINJA 2.0 patch; with empty `info` the bytes are those the
/// original program writes for the same normalized inputs and types. Every
/// entry given is written, even an unchanged one. Metadata longer than its
/// slot, or holding NUL, is refused.
pub fn create(entries: &[CreateEntry<'_>], info: &RupInfo) -> Result<Vec<u8>, PatchError> {
    let mut patch = Vec::with_capacity(HEADER_LEN + 64);
    patch.extend_from_slice(MAGIC);
    patch.resize(HEADER_LEN, 0);
    if let Some(slot) = patch.get_mut(ENCODING_OFFSET) {
        *slot = info.encoding.byte();
    }
    for (what, text, (offset, length)) in info.fields() {
        let encoded = encode_field(info.encoding, text, what, length)?;
        if let Some(slot) = patch.get_mut(offset..offset + encoded.len()) {
            slot.copy_from_slice(&encoded);
        }
    }

    for entry in entries {
        write_entry(&mut patch, entry, info.encoding)?;
    }
    patch.push(COMMAND_END);
    Ok(patch)
}

fn encode_field(
    encoding: TextEncoding,
    text: &str,
    what: &str,
    slot_len: usize,
) -> Result<Vec<u8>, PatchError> {
    let encoded = encoding.encode(text, what)?;
    if encoded.contains(&0) {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!("the {what} contains a NUL character, which ends the field"),
        });
    }
    if encoded.len() > slot_len {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!(
                "the {what} is {} bytes long; its field holds at most {slot_len}",
                encoded.len()
            ),
        });
    }
    Ok(encoded)
}

fn write_entry(
    patch: &mut Vec<u8>,
    entry: &CreateEntry<'_>,
    encoding: TextEncoding,
) -> Result<(), PatchError> {
    let name = match entry.name {
        Some(name) if !name.is_empty() => {
            check_relative_path(name).map_err(|detail| PatchError::Unsupported {
                format: NAME,
                detail,
            })?;
            encoding.encode(name, "file name")?
        }
        _ => Vec::new(),
    };
    let (source, target) = (entry.source, entry.target);

    patch.push(COMMAND_OPEN);
    write_vlv(patch, name.len() as u64);
    patch.extend_from_slice(&name);
    patch.push(entry.system_type);
    write_vlv(patch, source.len() as u64);
    write_vlv(patch, target.len() as u64);
    let (source_md5, target_md5) = md5_pair::md5_pair(source, target);
    patch.extend_from_slice(&source_md5);
    patch.extend_from_slice(&target_md5);

    let common_len = source.len().min(target.len());
    if source.len() != target.len() {
        let (letter, tail) = if target.len() > source.len() {
            (OVERFLOW_APPEND, target.get(common_len..))
        } else {
            (OVERFLOW_MINUS, source.get(common_len..))
        };
        let tail = tail.unwrap_or_default();
        patch.push(letter);
        write_vlv(patch, tail.len() as u64);
        patch.extend(tail.iter().map(|byte| byte ^ 0xFF));
    }

    let common_source = source.get(..common_len).unwrap_or_default();
    let common_target = target.get(..common_len).unwrap_or_default();
    let mut position = 0;
    while position < common_len {
        if common_source.get(position) == common_target.get(position) {
            position += 1;
            continue;
        }
        let run_start = position;
        while position < common_len && common_source.get(position) != common_target.get(position) {
            position += 1;
        }
        patch.push(COMMAND_XOR);
        if run_start == 0 {
            // The original writes offset 0 as one zero byte, not as an
            // empty number.
            patch.extend_from_slice(&[1, 0]);
        } else {
            write_vlv(patch, run_start as u64);
        }
        write_vlv(patch, (position - run_start) as u64);
        let run_source = common_source.get(run_start..position).unwrap_or_default();
        let run_target = common_target.get(run_start..position).unwrap_or_default();
        patch.extend(run_source.iter().zip(run_target).map(|(a, b)| a ^ b));
    }
    Ok(())
}

/// The shortest count-prefixed little-endian form; 0 is a lone count of 0.
fn write_vlv(patch: &mut Vec<u8>, value: u64) {
    let significant_bytes = (u64::BITS - value.leading_zeros()).div_ceil(8) as usize;
    patch.push(significant_bytes as u8);
    patch.extend_from_slice(
        value
            .to_le_bytes()
            .get(..significant_bytes)
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn options() -> ApplyOptions {
        ApplyOptions::default()
    }

    fn header() -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.resize(HEADER_LEN, 0);
        bytes
    }

    fn vlv(value: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_vlv(&mut bytes, value);
        bytes
    }

    #[test]
    fn vlv_is_minimal_and_little_endian() {
        assert_eq!(vlv(0), vec![0]);
        assert_eq!(vlv(0x10), vec![1, 0x10]);
        assert_eq!(vlv(0x1234), vec![2, 0x34, 0x12]);
        assert_eq!(vlv(0x1_0000_0000), vec![5, 0, 0, 0, 0, 1]);
        assert_eq!(
            vlv(u64::MAX),
            vec![8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn create_writes_the_exact_bytes() {
        let source = [1u8, 2, 3];
        let target = [9u8, 2, 3, 4];
        let patch = create(
            &[CreateEntry {
                name: None,
                system_type: 0,
                source: &source,
                target: &target,
            }],
            &RupInfo::default(),
        )
        .unwrap();
        let mut expected = header();
        expected.extend_from_slice(&[COMMAND_OPEN, 0, 0, 1, 3, 1, 4]);
        expected.extend_from_slice(&md5_of(&source));
        expected.extend_from_slice(&md5_of(&target));
        expected.extend_from_slice(&[b'A', 1, 1, 0xFB]);
        expected.extend_from_slice(&[COMMAND_XOR, 1, 0, 1, 1, 8, COMMAND_END]);
        assert_eq!(patch, expected);
    }

    #[test]
    fn vlv_count_over_eight_is_corrupt() {
        let mut bytes = header();
        bytes.extend_from_slice(&[COMMAND_OPEN, 9]);
        bytes.extend_from_slice(&[0; 9]);
        assert!(matches!(
            parse(&bytes, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn stream_without_end_is_truncated() {
        let patch = create(
            &[CreateEntry {
                name: None,
                system_type: 0,
                source: b"abc",
                target: b"abd",
            }],
            &RupInfo::default(),
        )
        .unwrap();
        let without_end = &patch[..patch.len() - 1];
        assert!(matches!(
            parse(without_end, &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&header(), &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_command_and_orphan_xor_are_corrupt() {
        let mut unknown = header();
        unknown.push(0x03);
        assert!(matches!(
            parse(&unknown, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
        let mut orphan = header();
        orphan.extend_from_slice(&[COMMAND_XOR, 0, 1, 1, 0xFF, COMMAND_END]);
        assert!(matches!(
            parse(&orphan, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn sizes_over_the_limit_are_refused() {
        let mut bytes = header();
        bytes.extend_from_slice(&[COMMAND_OPEN, 0, 0, 1, 4, 4, 0, 0, 0, 0x41]);
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(&[b'A', 0, COMMAND_END]);
        assert_eq!(
            parse(&bytes, &Limits::default()),
            Err(PatchError::TooLarge {
                format: NAME,
                size: 0x4100_0000,
                max: Limits::DEFAULT_MAX_IMAGE_SIZE
            })
        );
    }

    #[test]
    fn record_past_both_sizes_is_corrupt() {
        let mut bytes = header();
        bytes.extend_from_slice(&[COMMAND_OPEN, 0, 0, 1, 4, 1, 4]);
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(&[COMMAND_XOR, 1, 3, 1, 2, 1, 1, COMMAND_END]);
        assert!(matches!(
            parse(&bytes, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn escaping_names_are_refused() {
        for name in ["../x", "/etc/passwd", "a/../../b", "a\\..\\b"] {
            let patch = create(
                &[CreateEntry {
                    name: Some(name),
                    system_type: 0,
                    source: b"a",
                    target: b"b",
                }],
                &RupInfo::default(),
            );
            assert!(patch.is_err(), "{name}");
        }
        let mut bytes = header();
        bytes.extend_from_slice(&[COMMAND_OPEN, 1, 3, b'.', b'.', b'/', 0, 0, 0]);
        bytes.extend_from_slice(&[0; 32]);
        bytes.push(COMMAND_END);
        assert!(matches!(
            parse(&bytes, &Limits::default()),
            Err(PatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn metadata_round_trips_and_long_fields_are_refused() {
        let info = RupInfo {
            author: "Zoë".to_string(),
            title: "A title".to_string(),
            date: "20240131".to_string(),
            description: "line one\\nline two".to_string(),
            ..RupInfo::default()
        };
        let patch = create(&[], &info).unwrap();
        assert_eq!(patch[ENCODING_OFFSET], 0);
        assert_eq!(&patch[0x007..0x00B], b"Zo\xEB\0");
        assert_eq!(parse(&patch, &Limits::default()).unwrap().info, info);

        let utf8 = RupInfo {
            title: "ニンジャ".to_string(),
            encoding: TextEncoding::Utf8,
            ..RupInfo::default()
        };
        let patch = create(&[], &utf8).unwrap();
        assert_eq!(patch[ENCODING_OFFSET], 1);
        assert_eq!(parse(&patch, &Limits::default()).unwrap().info, utf8);

        let not_latin1 = RupInfo {
            title: "ニンジャ".to_string(),
            ..RupInfo::default()
        };
        assert!(matches!(
            create(&[], &not_latin1),
            Err(PatchError::Unsupported { .. })
        ));
        let too_long = RupInfo {
            version: "123456789012".to_string(),
            ..RupInfo::default()
        };
        assert_eq!(
            create(&[], &too_long),
            Err(PatchError::Unsupported {
                format: NAME,
                detail: "the version is 12 bytes long; its field holds at most 11".to_string()
            })
        );
        let full_slot = RupInfo {
            version: "12345678901".to_string(),
            ..RupInfo::default()
        };
        let patch = create(&[], &full_slot).unwrap();
        assert_eq!(parse(&patch, &Limits::default()).unwrap().info, full_slot);
    }

    /// A one-file patch of `system_type` from `source` to `target`.
    fn patch_of(system_type: u8, source: &[u8], target: &[u8]) -> Vec<u8> {
        create(
            &[CreateEntry {
                name: None,
                system_type,
                source,
                target,
            }],
            &RupInfo::default(),
        )
        .unwrap()
    }

    #[test]
    fn neither_digest_is_refused_naming_both() {
        let patch_bytes = patch_of(0, b"abc", b"abd");
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        let entry = &patch.entries[0];
        match entry.apply_normalized(b"xyz", &options()) {
            Err(PatchError::ChecksumMismatch { expected, .. }) => {
                assert!(expected.contains(&Checksum::Md5(md5_of(b"abc")).to_string()));
                assert!(expected.contains(&Checksum::Md5(md5_of(b"abd")).to_string()));
            }
            other => panic!("unexpected {other:?}"),
        }
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..options()
        };
        assert_eq!(
            entry.apply_normalized(b"xyz", &forced).unwrap(),
            (b"xy}".to_vec(), Direction::Forward)
        );
    }

    fn round_trip(source: &[u8], target: &[u8]) -> Result<(), TestCaseError> {
        let patch_bytes = patch_of(3, source, target);
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        prop_assert_eq!(patch.entries.len(), 1);
        let entry = &patch.entries[0];
        prop_assert_eq!(entry.system_type, 3);
        let (forward, direction) = entry.apply_normalized(source, &options()).unwrap();
        prop_assert_eq!(&forward, target);
        if source != target {
            prop_assert_eq!(direction, Direction::Forward);
            let (back, direction) = entry.apply_normalized(target, &options()).unwrap();
            prop_assert_eq!(&back, source);
            prop_assert_eq!(direction, Direction::Reverse);
        }
        // Hashing the input beside the result gives the same answers.
        let hashed = entry.apply_if_matching(source, None, &options()).unwrap();
        prop_assert_eq!(hashed.input_digest, md5_of(source));
        prop_assert_eq!(hashed.applied, Some((target.to_vec(), Direction::Forward)));
        if source != target {
            let hashed = entry.apply_if_matching(target, None, &options()).unwrap();
            prop_assert_eq!(hashed.applied, Some((source.to_vec(), Direction::Reverse)));
            let hashed = entry
                .apply_if_matching(source, Some(Direction::Reverse), &options())
                .unwrap();
            prop_assert_eq!(hashed.applied, None);
        }
        let mut other = source.to_vec();
        other.push(0x5A);
        if other != target {
            let hashed = entry.apply_if_matching(&other, None, &options()).unwrap();
            prop_assert_eq!(hashed.input_digest, md5_of(&other));
            prop_assert_eq!(hashed.applied, None);
        }
        // Checked and written in pieces: the same answers and bytes.
        let in_pieces = |input: &[u8], wanted| entry.check_in_pieces(input, wanted, &options());
        prop_assert_eq!(in_pieces(source, None), Ok(Some(Direction::Forward)));
        let mut written = Vec::new();
        entry
            .write_checked(source, Direction::Forward, &mut written)
            .unwrap();
        prop_assert_eq!(&written, target);
        if source != target {
            prop_assert_eq!(in_pieces(target, None), Ok(Some(Direction::Reverse)));
            prop_assert_eq!(in_pieces(source, Some(Direction::Reverse)), Ok(None));
            written.clear();
            entry
                .write_in_pieces(target, Direction::Reverse, &mut written, 3)
                .unwrap();
            prop_assert_eq!(&written, source);
        }
        if other != target {
            prop_assert_eq!(in_pieces(&other, None), Ok(None));
        }
        Ok(())
    }

    /// The result as `build` made it before results were made in pieces:
    /// the input copied, each record XORed in patch order, then the tail.
    fn reference_result(entry: &RupEntry<'_>, input: &[u8], direction: Direction) -> Vec<u8> {
        let output_len = entry.output_size(direction) as usize;
        let input_size = match direction {
            Direction::Forward => entry.source_size,
            Direction::Reverse => entry.target_size,
        };
        let mut output = input.get(..output_len).unwrap_or(input).to_vec();
        output.resize(output_len, 0);
        for record in &entry.records {
            for (at, xor) in (record.offset..).zip(record.data) {
                if let Some(byte) = output.get_mut(at as usize) {
                    *byte ^= xor;
                }
            }
        }
        let kind = match direction {
            Direction::Forward => OverflowKind::Append,
            Direction::Reverse => OverflowKind::Minus,
        };
        let overflow = entry.overflow.filter(|o| o.kind == kind);
        if let Some(overflow) = overflow.filter(|_| entry.output_size(direction) > input_size) {
            for (at, stored) in (input_size..).zip(overflow.data) {
                if let Some(byte) = output.get_mut(at as usize) {
                    *byte = stored ^ 0xFF;
                }
            }
        }
        output
    }

    /// An entry with the given records (offset, bytes) and tail, which
    /// need not be one `create` would write: records overlap, run past the
    /// end and come in any order.
    fn entry_of<'a>(
        sizes: (u64, u64),
        records: &'a [(u64, Vec<u8>)],
        tail: Option<(bool, &'a [u8])>,
    ) -> RupEntry<'a> {
        RupEntry {
            name: None,
            system_type: 0,
            source_size: sizes.0,
            target_size: sizes.1,
            source_md5: [0; 16],
            target_md5: [0; 16],
            overflow: tail.map(|(append, data)| Overflow {
                kind: if append {
                    OverflowKind::Append
                } else {
                    OverflowKind::Minus
                },
                data,
            }),
            records: records
                .iter()
                .map(|(offset, data)| XorRecord {
                    offset: *offset,
                    data,
                })
                .collect(),
        }
    }

    #[test]
    fn results_of_several_pieces_hash_and_write_like_whole_ones() {
        // Three and a half pieces of result, the input one piece shorter,
        // records across the piece edges.
        let output_len = 3 * PIECE + PIECE / 2 + 5;
        let input: Vec<u8> = (0..output_len - PIECE)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let records: Vec<(u64, Vec<u8>)> = (0..40)
            .map(|i| {
                (
                    (i * PIECE / 11 + PIECE / 13) as u64,
                    vec![i as u8 | 1; 9 + i],
                )
            })
            .collect();
        let tail = vec![0x42; PIECE + 17];
        let entry = entry_of(
            (input.len() as u64, output_len as u64),
            &records,
            Some((true, &tail)),
        );
        let whole = reference_result(&entry, &input, Direction::Forward);
        // Compared with `==`: a failure would print megabytes.
        assert!(entry.build(&input, Direction::Forward, output_len) == whole);
        assert_eq!(
            entry.digests_in_pieces(&input, Direction::Forward, true, PIECE),
            (Some(md5_of(&input)), md5_of(&whole))
        );
        let mut written = Vec::new();
        entry
            .write_checked(&input, Direction::Forward, &mut written)
            .unwrap();
        assert!(written == whole);
        // Backwards the result is the shorter: the input's last piece and
        // a half are hashed alone.
        let back = reference_result(&entry, &whole, Direction::Reverse);
        assert_eq!(
            entry.digests_in_pieces(&whole, Direction::Reverse, true, PIECE),
            (Some(md5_of(&whole)), md5_of(&back))
        );
    }

    #[test]
    fn a_result_with_the_wrong_md5_fails_in_pieces_as_whole() {
        let patch_bytes = patch_of(0, b"abcdef", b"abXdefgh");
        let patch = parse(&patch_bytes, &Limits::default()).unwrap();
        let mut entry = patch.entries[0].clone();
        entry.records[0].data = b"\x01";
        let whole = entry.apply_normalized(b"abcdef", &options());
        assert!(matches!(whole, Err(PatchError::ChecksumMismatch { .. })));
        assert_eq!(
            entry.check_in_pieces(b"abcdef", None, &options()),
            whole.map(|_| None)
        );
        // Ignoring checksums, or a result past the size limit, is left to
        // the whole apply, which knows what to do then.
        let forced = ApplyOptions {
            ignore_checksums: true,
            ..options()
        };
        assert_eq!(entry.check_in_pieces(b"abcdef", None, &forced), Ok(None));
        let small = ApplyOptions {
            limits: Limits { max_image_size: 7 },
            ..options()
        };
        assert_eq!(entry.check_in_pieces(b"abcdef", None, &small), Ok(None));
    }

    #[test]
    fn empty_and_pure_size_changes_make_patches() {
        round_trip(b"", b"").unwrap();
        round_trip(b"", b"abc").unwrap();
        round_trip(b"abc", b"").unwrap();
        round_trip(b"abc", b"abcdef").unwrap();
        round_trip(b"abcdef", b"abc").unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn results_made_in_pieces_are_the_whole_result(
            input in proptest::collection::vec(any::<u8>(), 0..400),
            sizes in (0u64..400, 0u64..400),
            records in proptest::collection::vec(
                (0u64..450, proptest::collection::vec(any::<u8>(), 0..90)),
                0..12,
            ),
            tail in proptest::option::of((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200))),
            forward in any::<bool>(),
            piece_len in 1usize..150,
            blocks in 1usize..4,
        ) {
            let entry = entry_of(sizes, &records, tail.as_ref().map(|(append, data)| (*append, data.as_slice())));
            let direction = if forward { Direction::Forward } else { Direction::Reverse };
            let whole = reference_result(&entry, &input, direction);
            prop_assert_eq!(&entry.build(&input, direction, whole.len()), &whole);
            let mut written = Vec::new();
            entry.write_in_pieces(&input, direction, &mut written, piece_len).unwrap();
            prop_assert_eq!(&written, &whole);
            let piece_len = blocks * md5_pair::BLOCK;
            prop_assert_eq!(
                entry.digests_in_pieces(&input, direction, true, piece_len),
                (Some(md5_of(&input)), md5_of(&whole))
            );
            prop_assert_eq!(
                entry.digests_in_pieces(&input, direction, false, piece_len),
                (None, md5_of(&whole))
            );
        }

        #[test]
        fn parse_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = header();
            bytes.extend_from_slice(&tail);
            let limits = Limits { max_image_size: 1 << 16 };
            if let Ok(patch) = parse(&bytes, &limits) {
                let opts = ApplyOptions { limits, ignore_checksums: true };
                for entry in &patch.entries {
                    let _ = entry.apply_normalized(&[1, 2, 3], &opts);
                }
                let _ = patch.apply(&[], &opts);
                let _ = patch.summary();
            }
        }

        #[test]
        fn mutated_patches_never_panic(
            source in proptest::collection::vec(any::<u8>(), 0..300),
            target in proptest::collection::vec(any::<u8>(), 0..300),
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>()) {
            let mut bytes = create(
                &[CreateEntry { name: Some("dir/file.bin"), system_type: 1, source: &source, target: &target }],
                &RupInfo::default(),
            ).unwrap();
            let stream_len = bytes.len() - HEADER_LEN;
            for (index, value) in mutations {
                bytes[HEADER_LEN + index % stream_len] = value;
            }
            bytes.truncate(HEADER_LEN + cut % (stream_len + 1));
            let limits = Limits { max_image_size: 1 << 16 };
            if let Ok(patch) = parse(&bytes, &limits) {
                for opts in [ApplyOptions { limits, ignore_checksums: true }, ApplyOptions { limits, ignore_checksums: false }] {
                    for entry in &patch.entries {
                        let _ = entry.apply_normalized(&source, &opts);
                        let _ = entry.apply_normalized(&target, &opts);
                    }
                }
            }
        }

        #[test]
        fn parse_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes, &Limits::default());
        }

        #[test]
        fn create_parse_apply_round_trips(
            source in proptest::collection::vec(any::<u8>(), 0..2048),
            resize in -300i64..300,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..32),
            tail in any::<u8>()) {
            let mut target = source.clone();
            let new_len = (source.len() as i64 + resize).max(0) as usize;
            target.resize(new_len, tail);
            for (index, value) in flips {
                if !target.is_empty() {
                    let len = target.len();
                    target[index % len] = value;
                }
            }
            round_trip(&source, &target)?;
        }

        #[test]
        fn unrelated_pairs_round_trip(
            source in proptest::collection::vec(any::<u8>(), 0..600),
            target in proptest::collection::vec(any::<u8>(), 0..600)) {
            round_trip(&source, &target)?;
        }
    }
}
