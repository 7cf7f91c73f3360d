//! 7z archives, with `sevenz-rust2`: LZMA, LZMA2, PPMd, bzip2 and deflate
//! coders, the BCJ, BCJ2 and delta filters, solid or not. The directory
//! is read once; each read decodes one block from its start, so in a solid
//! block the members before the one wanted are decoded and discarded.

use std::io::{self, Read};

use sevenz_rust2::{Archive, ArchiveEntry, BlockDecoder, EncoderMethod, Error, Password};

use super::{
    ArchiveError, DECODER_MEMORY_LIMIT, ENCRYPTED, FileReader, Member, RawMember, Want,
    read_wanted, refuse_unreadable,
};

const MEMORY_LIMIT_KB: usize = (DECODER_MEMORY_LIMIT >> 10) as usize;

/// The coders `sevenz-rust2` decodes with the features this crate asks for.
const SUPPORTED: &[&[u8]] = &[
    EncoderMethod::ID_COPY,
    EncoderMethod::ID_LZMA,
    EncoderMethod::ID_LZMA2,
    EncoderMethod::ID_PPMD,
    EncoderMethod::ID_BZIP2,
    EncoderMethod::ID_DEFLATE,
    EncoderMethod::ID_DELTA,
    EncoderMethod::ID_BCJ_X86,
    EncoderMethod::ID_BCJ2,
    EncoderMethod::ID_BCJ_ARM,
    EncoderMethod::ID_BCJ_ARM64,
    EncoderMethod::ID_BCJ_ARM_THUMB,
    EncoderMethod::ID_BCJ_PPC,
    EncoderMethod::ID_BCJ_IA64,
    EncoderMethod::ID_BCJ_SPARC,
    EncoderMethod::ID_BCJ_RISCV,
];

pub(super) struct SevenZipReader {
    source: FileReader,
    archive: Archive,
    /// The archive's file index of each member (folders and anti-items
    /// are no members).
    files: Vec<usize>,
    /// The member each of the archive's files is, if any.
    member_of_file: Vec<Option<usize>>,
}

impl SevenZipReader {
    pub(super) fn open(
        mut source: FileReader,
    ) -> Result<(SevenZipReader, Vec<RawMember>), ArchiveError> {
        check_directory_place(&mut source)?;
        let archive =
            Archive::read_with_memory_limit(&mut source, &Password::empty(), MEMORY_LIMIT_KB)
                .map_err(directory_error)?;
        let block_problems: Vec<Option<String>> =
            archive.blocks.iter().map(block_problem).collect();
        let mut files = Vec::new();
        let mut member_of_file = vec![None; archive.files.len()];
        let mut members = Vec::new();
        for (index, entry) in archive.files.iter().enumerate() {
            if entry.is_directory() || entry.is_anti_item() {
                continue;
            }
            let block = archive
                .stream_map
                .file_block_index
                .get(index)
                .copied()
                .flatten();
            let problem = if archive.is_file_encrypted(index) {
                Some(ENCRYPTED.to_string())
            } else {
                block.and_then(|b| block_problems.get(b).cloned().flatten())
            };
            member_of_file[index] = Some(members.len());
            files.push(index);
            members.push(RawMember {
                name: entry.name().to_string(),
                size: entry.size(),
                crc32: entry.has_crc.then_some(entry.crc as u32),
                problem,
            });
        }
        let reader = SevenZipReader {
            source,
            archive,
            files,
            member_of_file,
        };
        Ok((reader, members))
    }

    /// The block member `index` is decoded from, or `None` for an empty one.
    fn block_of(&self, index: usize) -> Result<Option<usize>, ArchiveError> {
        let file = *self
            .files
            .get(index)
            .ok_or(ArchiveError::NoMember { index })?;
        Ok(self
            .archive
            .stream_map
            .file_block_index
            .get(file)
            .copied()
            .flatten())
    }

    pub(super) fn read(
        &self,
        members: &[Member],
        index: usize,
        want: Want,
    ) -> Result<Vec<u8>, ArchiveError> {
        let member = members.get(index).ok_or(ArchiveError::NoMember { index })?;
        let Some(block) = self.block_of(index)? else {
            return read_wanted(member, &mut io::empty(), want, &|e| stream_error(member, e));
        };
        let target = self.files[index];
        let mut result = None;
        let outcome = self.each_entry(block, &mut |file, stream| {
            if file != target {
                // Decoded and checked on the way to the one wanted.
                return Step::Next;
            }
            result = Some(read_wanted(member, stream, want, &|e| {
                stream_error(member, e)
            }));
            Step::Stop
        });
        match (result, outcome) {
            (Some(result), _) => result,
            (None, Err((file, error))) => Err(self.block_error(file, error, members, &member.name)),
            (None, Ok(())) => Err(ArchiveError::Damaged(format!(
                "member {} is missing from its block",
                member.name
            ))),
        }
    }

    /// What `want_of` asks of every member, each block decoded once.
    pub(super) fn read_prefixes(
        &self,
        members: &[Member],
        want_of: &dyn Fn(&Member) -> Want,
    ) -> Vec<Result<Vec<u8>, ArchiveError>> {
        let mut results: Vec<Option<Result<Vec<u8>, ArchiveError>>> = vec![None; members.len()];
        let mut blocks = Vec::new();
        // Members still to read in each block: the decoder stops after the
        // last, rather than decode (and check) the rest of the block. A
        // lone 4 MiB ROM was otherwise decoded whole to list it.
        let mut pending = vec![0usize; self.archive.blocks.len()];
        for (index, member) in members.iter().enumerate() {
            if let Err(error) = refuse_unreadable(member) {
                results[index] = Some(Err(error));
                continue;
            }
            match self.block_of(index) {
                Ok(Some(block)) => {
                    blocks.push(block);
                    if let Some(count) = pending.get_mut(block) {
                        *count += 1;
                    }
                }
                Ok(None) => results[index] = Some(Ok(Vec::new())),
                Err(error) => results[index] = Some(Err(error)),
            }
        }
        blocks.dedup();
        for block in blocks {
            let outcome = self.each_entry(block, &mut |file, stream| {
                let Some(index) = self.member_of_file.get(file).copied().flatten() else {
                    return Step::Next;
                };
                let Some(member) = members.get(index) else {
                    return Step::Next;
                };
                if results[index].is_none() {
                    results[index] = Some(read_wanted(member, stream, want_of(member), &|e| {
                        stream_error(member, e)
                    }));
                    if let Some(count) = pending.get_mut(block) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            return Step::Stop;
                        }
                    }
                }
                Step::Next
            });
            if let Err((failed, error)) = outcome {
                // The member the block failed in, and every later one in
                // it, share the error: the stream cannot go past it.
                let error = self.block_error(failed, error, members, "");
                for (index, result) in results.iter_mut().enumerate() {
                    if result.is_none() && self.block_of(index).ok().flatten() == Some(block) {
                        let member = members.get(index).map_or("", |m| m.name.as_str());
                        *result = Some(Err(match failed {
                            Some(_) => error.clone(),
                            None => error.clone().said_of(member),
                        }));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or(Err(ArchiveError::Damaged("a member was not read".into())))
            })
            .collect()
    }

    /// Decodes block `block` from its start, handing each of its entries
    /// (by the archive's file index) to `each`; what `each` leaves unread
    /// of an entry is decoded and checked before the next. On failure,
    /// the file index the decoder was in and the error.
    fn each_entry(
        &self,
        block: usize,
        each: &mut dyn FnMut(usize, &mut dyn Read) -> Step,
    ) -> Result<(), (Option<usize>, Error)> {
        let first = self
            .archive
            .stream_map
            .block_first_file_index
            .get(block)
            .copied()
            .ok_or((None, Error::Other("a block without files".into())))?;
        let mut source = self.source.clone();
        let password = Password::empty();
        let decoder = BlockDecoder::new_with_memory_limit(
            1,
            MEMORY_LIMIT_KB,
            block,
            &self.archive,
            &password,
            &mut source,
        );
        let mut next = first;
        let mut current = None;
        let result = decoder.for_each_entries(&mut |_: &ArchiveEntry, stream: &mut dyn Read| {
            current = Some(next);
            next += 1;
            Ok(match each(next - 1, stream) {
                Step::Next => true,
                Step::Stop => false,
            })
        });
        result.map(|_| ()).map_err(|error| (current, error))
    }

    /// A decoder error met in the archive's file `file`, said of the member
    /// it is.
    /// Before any entry (the block's coders cannot be set up), said of
    /// `otherwise`.
    fn block_error(
        &self,
        file: Option<usize>,
        error: Error,
        members: &[Member],
        otherwise: &str,
    ) -> ArchiveError {
        let member = file
            .and_then(|file| self.member_of_file.get(file).copied().flatten())
            .and_then(|index| members.get(index))
            .map_or(otherwise, |member| member.name.as_str());
        decoder_error(member, error)
    }
}

/// The start header (32 bytes) says where the list of members is: past
/// the end of a file cut short. Said as such, before the crate's words.
fn check_directory_place(source: &mut FileReader) -> Result<(), ArchiveError> {
    let mut start = [0u8; 32];
    source
        .read_exact(&mut start)
        .map_err(|_| super::directory_cut_short())?;
    source.pos = 0;
    let field = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&start[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let (offset, size) = (field(12), field(20));
    // All zero: 7-Zip's mark of an archive it did not finish; the crate
    // then looks for the list itself.
    if (offset, size) == (0, 0) {
        return Ok(());
    }
    match offset.checked_add(size).and_then(|end| end.checked_add(32)) {
        Some(end) if end <= source.len => Ok(()),
        _ => Err(super::directory_cut_short()),
    }
}

enum Step {
    Next,
    Stop,
}

/// Why a block cannot be decoded, from its coders alone.
fn block_problem(block: &sevenz_rust2::Block) -> Option<String> {
    for coder in &block.coders {
        let id = coder.encoder_method_id();
        if id == EncoderMethod::ID_AES256_SHA256 {
            return Some(ENCRYPTED.to_string());
        }
        if !SUPPORTED.contains(&id) {
            let name = EncoderMethod::by_id(id)
                .map(|method| method.name().to_string())
                .unwrap_or_else(|| {
                    let hex: Vec<String> = id.iter().map(|b| format!("{b:02X}")).collect();
                    format!("method {}", hex.join(""))
                });
            return Some(format!("compressed with {name}: not supported"));
        }
    }
    None
}

/// Errors while the directory is read.
fn directory_error(error: Error) -> ArchiveError {
    match error {
        Error::PasswordRequired | Error::MaybeBadPassword(_) => ArchiveError::EncryptedArchive,
        Error::UnsupportedCompressionMethod(name) if name.contains("AES") => {
            ArchiveError::EncryptedArchive
        }
        Error::MaxMemLimited { actaul_kb, max_kb } => ArchiveError::DirectoryTooLarge {
            needed_mib: (actaul_kb as u64).div_ceil(1024),
            allowed_mib: (max_kb as u64) / 1024,
        },
        Error::Io(error, _) if error.kind() == io::ErrorKind::UnexpectedEof => {
            super::directory_cut_short()
        }
        other => super::damaged_directory(&describe(&other)),
    }
}

/// Errors while a member is decoded.
fn decoder_error(member: &str, error: Error) -> ArchiveError {
    let member = member.to_string();
    match error {
        Error::ChecksumVerificationFailed => ArchiveError::Crc { member },
        Error::PasswordRequired | Error::MaybeBadPassword(_) => ArchiveError::Encrypted { member },
        Error::UnsupportedCompressionMethod(name) if name.contains("AES") => {
            ArchiveError::Encrypted { member }
        }
        Error::UnsupportedCompressionMethod(name) => ArchiveError::Unsupported {
            member,
            what: format!("compressed with {name}"),
        },
        Error::MaxMemLimited { actaul_kb, max_kb } => ArchiveError::TooMuchMemory {
            member,
            needed_mib: (actaul_kb as u64).div_ceil(1024),
            allowed_mib: (max_kb as u64) / 1024,
        },
        Error::Io(error, _) => io_error(&member, error),
        other => ArchiveError::DamagedMember {
            detail: format!("its data cannot be decompressed ({})", describe(&other)),
            member,
        },
    }
}

/// An I/O error from the decoder's stream: the crate wraps its own errors
/// (a CRC that fails) in one.
fn io_error(member: &str, error: io::Error) -> ArchiveError {
    if let Some(inner) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        if matches!(inner, Error::ChecksumVerificationFailed) {
            return ArchiveError::Crc {
                member: member.to_string(),
            };
        }
        return ArchiveError::DamagedMember {
            member: member.to_string(),
            detail: format!("its data cannot be decompressed ({})", describe(inner)),
        };
    }
    super::member_io_error(member, error)
}

fn stream_error(member: &Member, error: io::Error) -> ArchiveError {
    io_error(&member.name, error)
}

/// The crate's errors in words (its `Display` is its `Debug`).
fn describe(error: &Error) -> String {
    match error {
        Error::BadSignature(_) => "it is not a 7z archive".into(),
        Error::UnsupportedVersion { major, minor } => {
            format!("7z format version {major}.{minor} is not supported")
        }
        Error::ChecksumVerificationFailed | Error::NextHeaderCrcMismatch => {
            "its list of members fails its CRC".into()
        }
        Error::Io(error, _) if error.kind() == io::ErrorKind::UnexpectedEof => {
            "its data ends early".into()
        }
        Error::Io(error, context) if context.is_empty() => error.to_string(),
        Error::Io(error, context) => format!("{context}: {error}"),
        Error::Other(text) | Error::Unsupported(text) => text.to_string(),
        Error::UnsupportedCompressionMethod(name) => format!("compressed with {name}"),
        other => format!("{other:?}"),
    }
}
