//! Zip archives, with the `zip` crate: stored, deflate, deflate64, bzip2,
//! zstd, LZMA, xz and PPMd members; zip64. The directory is read once; each
//! read works on a clone that shares it.

use std::cell::RefCell;
use std::io::{self, Read};

use ::zip::result::ZipError;
use ::zip::{CompressionMethod, ZipArchive, ZipReadOptions};
use flate2::{Decompress, FlushDecompress, Status};

use super::{ArchiveError, ENCRYPTED, FileReader, Member, RawMember, Want};

/// The methods the `zip` crate decodes with the features asked for.
const READABLE: [CompressionMethod; 8] = [
    CompressionMethod::STORE,
    CompressionMethod::DEFLATE,
    CompressionMethod::DEFLATE64,
    CompressionMethod::BZIP2,
    CompressionMethod::ZSTD,
    CompressionMethod::LZMA,
    CompressionMethod::XZ,
    CompressionMethod::PPMD,
];

pub(super) struct ZipReader {
    /// Cloned for each read: the directory is shared (an `Arc`), the
    /// reader is a positional one.
    archive: ZipArchive<FileReader>,
    /// The zip crate's index of each member (folders are no members).
    entries: Vec<usize>,
    /// Each member's compression method.
    methods: Vec<CompressionMethod>,
}

thread_local! {
    /// A raw-deflate state per thread, reset for each prefix read: a
    /// listing reads the first KiB of thousands of members, and a fresh
    /// state (zlib's 40 KiB of tables and window, allocated and faulted in
    /// each time) cost more than the inflating.
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Compressed bytes read at a time for a prefix.
const PREFIX_INPUT: usize = 4096;

impl ZipReader {
    pub(super) fn open(source: FileReader) -> Result<(ZipReader, Vec<RawMember>), ArchiveError> {
        let archive = ZipArchive::new(source).map_err(directory_error)?;
        let mut entries = Vec::new();
        let mut methods = Vec::new();
        let mut members = Vec::new();
        for index in 0..archive.len() {
            let entry = archive.by_index_data(index).map_err(directory_error)?;
            if entry.is_dir() {
                continue;
            }
            let name = match entry.name() {
                Ok(name) => name.into_owned(),
                Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
            };
            let method = entry.compression();
            let problem = if entry.encrypted() || method == CompressionMethod::AES {
                Some(ENCRYPTED.to_string())
            } else if !READABLE.contains(&method) {
                Some(format!(
                    "compressed with {}: not supported",
                    method_name(method)
                ))
            } else if entry.is_symlink() {
                Some("a symbolic link: not supported".to_string())
            } else {
                None
            };
            entries.push(index);
            methods.push(method);
            members.push(RawMember {
                name,
                size: entry.size(),
                crc32: Some(entry.crc32()),
                problem,
            });
        }
        Ok((
            ZipReader {
                archive,
                entries,
                methods,
            },
            members,
        ))
    }

    pub(super) fn read(
        &self,
        index: usize,
        member: &Member,
        want: Want,
    ) -> Result<Vec<u8>, ArchiveError> {
        let entry = *self
            .entries
            .get(index)
            .ok_or(ArchiveError::NoMember { index })?;
        let mut archive = self.archive.clone();
        if let Want::Unverified(len) = want
            && self.methods.get(index) == Some(&CompressionMethod::DEFLATE)
        {
            let raw = archive
                .by_index_raw(entry)
                .map_err(|error| member_error(&member.name, error))?;
            return inflate_prefix(member, raw, len.min(member.size));
        }
        // The CRC is checked by the caller, which names the member.
        let options = ZipReadOptions::new().ignore_crc32(true);
        let mut file = archive
            .by_index_with_options(entry, options)
            .map_err(|error| member_error(&member.name, error))?;
        let io_error = |error: io::Error| stream_error(member, error);
        super::read_wanted(member, &mut file, want, &io_error)
    }
}

/// The first `len` bytes a deflate member's compressed bytes `raw`
/// inflate to (fewer if its stream ends first), with this thread's
/// [`INFLATE`] state; nothing checked against its CRC or size.
fn inflate_prefix(member: &Member, mut raw: impl Read, len: u64) -> Result<Vec<u8>, ArchiveError> {
    let capacity = usize::try_from(len).map_err(|_| super::too_large(member, len))?;
    let mut out = Vec::new();
    out.try_reserve_exact(capacity)
        .map_err(|_| super::too_large(member, len))?;
    let mut input = [0u8; PREFIX_INPUT];
    let (mut at, mut end) = (0, 0);
    let mut input_left = true;
    INFLATE.with_borrow_mut(|inflate| {
        inflate.reset(false);
        while out.len() < capacity {
            if at == end && input_left {
                end = super::read_some(&mut raw, &mut input)
                    .map_err(|error| super::member_io_error(&member.name, error))?;
                at = 0;
                input_left = end > 0;
            }
            let (consumed, produced) = (inflate.total_in(), out.len());
            // `decompress_vec` writes at most the capacity left: `len`.
            let status = inflate
                .decompress_vec(&input[at..end], &mut out, FlushDecompress::None)
                .map_err(|error| {
                    super::member_io_error(
                        &member.name,
                        io::Error::new(io::ErrorKind::InvalidData, error),
                    )
                })?;
            at += (inflate.total_in() - consumed) as usize;
            // No progress is the end only when more input cannot help.
            let stalled = inflate.total_in() == consumed && out.len() == produced;
            if status == Status::StreamEnd || (stalled && (at < end || !input_left)) {
                break;
            }
        }
        Ok(out)
    })
}

fn method_name(method: CompressionMethod) -> String {
    let name = method.to_string();
    if name.is_empty() || name.starts_with("Unsupported") {
        format!("{method:?}")
    } else {
        name
    }
}

/// The zip crate's errors while reading the directory.
fn directory_error(error: ZipError) -> ArchiveError {
    match error {
        ZipError::Io(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            super::directory_cut_short()
        }
        ZipError::Io(error) if error.to_string().to_lowercase().contains("unexpected end") => {
            super::directory_cut_short()
        }
        ZipError::Io(error) => match error.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
                super::damaged_directory(&error.to_string())
            }
            _ => ArchiveError::Read(error.to_string()),
        },
        // The end of central directory record, which says where the list
        // is, sits at the very end of the file.
        ZipError::InvalidArchive(text) if text.to_lowercase().contains("unexpected end") => {
            super::directory_cut_short()
        }
        ZipError::InvalidArchive(text) if text.contains("EOCD") => ArchiveError::Damaged(
            "its list of members is not where a zip file keeps it, at its end (cut short?)".into(),
        ),
        ZipError::InvalidArchive(text) => super::damaged_directory(&in_words(&text)),
        ZipError::UnsupportedArchive(text) => {
            super::damaged_directory(&format!("{}: not supported", in_words(text)))
        }
        other => super::damaged_directory(&other.to_string()),
    }
}

/// The zip crate's errors when a member is opened for reading.
fn member_error(member: &str, error: ZipError) -> ArchiveError {
    let member = member.to_string();
    match error {
        ZipError::UnsupportedArchive(text) if text == ZipError::PASSWORD_REQUIRED => {
            ArchiveError::Encrypted { member }
        }
        ZipError::UnsupportedArchive(text) => ArchiveError::Unsupported {
            member,
            what: in_words(text),
        },
        ZipError::CompressionMethodNotSupported(id) => ArchiveError::Unsupported {
            member,
            what: format!("compressed with method {id}"),
        },
        ZipError::Io(error) => super::member_io_error(&member, error),
        ZipError::InvalidArchive(text) => ArchiveError::DamagedMember {
            member,
            detail: format!("its entry cannot be read ({})", in_words(&text)),
        },
        other => ArchiveError::DamagedMember {
            member,
            detail: format!("its entry cannot be read ({other})"),
        },
    }
}

/// Errors while a member is decompressed.
fn stream_error(member: &Member, error: io::Error) -> ArchiveError {
    // The crate stops a member that expands past its stated size.
    if error
        .to_string()
        .contains("larger than its declared uncompressed size")
    {
        return ArchiveError::Expands {
            member: member.name.clone(),
            stated: member.size,
        };
    }
    super::member_io_error(&member.name, error)
}

/// The zip crate's messages start with a capital and some end with a
/// full stop; ours are clauses.
fn in_words(text: &str) -> String {
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::DeflateEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn member(size: u64) -> Member {
        Member {
            name: "Game.gb".into(),
            size,
            crc32: None,
            problem: None,
        }
    }

    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    proptest! {
        /// Any prefix of any member, read twice on one thread (the state is
        /// reused): its exact first bytes.
        #[test]
        fn a_prefix_is_the_members_first_bytes(
            data in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..20_000),
            len in 0u64..25_000,
        ) {
            let compressed = deflated(&data);
            let want = &data[..data.len().min(len as usize)];
            for _ in 0..2 {
                let prefix = inflate_prefix(&member(data.len() as u64), &compressed[..], len).unwrap();
                prop_assert_eq!(&prefix[..], want);
            }
        }

        /// A stream cut short or garbled ends the read with what it gave or
        /// an error naming the member: never a hang or a panic, never more
        /// than asked.
        #[test]
        fn a_damaged_stream_ends_the_read(
            data in prop::collection::vec(any::<u8>(), 1..5_000),
            cut in 0usize..5_000,
            flip in any::<(usize, u8)>(),
        ) {
            let mut compressed = deflated(&data);
            compressed.truncate(cut.min(compressed.len()));
            if !compressed.is_empty() {
                let at = flip.0 % compressed.len();
                compressed[at] ^= flip.1;
            }
            match inflate_prefix(&member(data.len() as u64), &compressed[..], data.len() as u64) {
                Ok(prefix) => prop_assert!(prefix.len() <= data.len()),
                Err(error) => prop_assert!(error.to_string().contains("Game.gb"), "{}", error),
            }
        }
    }

    #[test]
    fn a_prefix_stops_at_what_was_asked() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let prefix = inflate_prefix(&member(100_000), &deflated(&data)[..], 1024).unwrap();
        assert_eq!(prefix, &data[..1024]);
        assert_eq!(prefix.capacity(), 1024);
    }
}
