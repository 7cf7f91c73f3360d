//! Zip archives, with the `zip` crate: stored, deflate, deflate64, bzip2,
//! zstd, LZMA, xz and PPMd members; zip64. The directory is read once; each
//! read works on a clone that shares it.

use std::io;

use ::zip::result::ZipError;
use ::zip::{CompressionMethod, ZipArchive, ZipReadOptions};

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
}

impl ZipReader {
    pub(super) fn open(source: FileReader) -> Result<(ZipReader, Vec<RawMember>), ArchiveError> {
        let archive = ZipArchive::new(source).map_err(directory_error)?;
        let mut entries = Vec::new();
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
            members.push(RawMember {
                name,
                size: entry.size(),
                crc32: Some(entry.crc32()),
                problem,
            });
        }
        Ok((ZipReader { archive, entries }, members))
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
        // The CRC is checked by the caller, which names the member.
        let options = ZipReadOptions::new().ignore_crc32(true);
        let mut file = archive
            .by_index_with_options(entry, options)
            .map_err(|error| member_error(&member.name, error))?;
        let io_error = |error: io::Error| stream_error(member, error);
        super::read_wanted(member, &mut file, want, &io_error)
    }
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
