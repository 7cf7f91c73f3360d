//! Reading inputs and writing outputs for the command line: inputs are
//! memory-mapped; a file output is written to a temporary file beside it
//! and renamed into place, so a failure never leaves a partial file. A
//! character device or a FIFO is written into instead, as standard output
//! is.

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::ops::Deref;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Problems with the files themselves, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("{}: is a directory, not a file", path.display())]
    IsDirectory { path: PathBuf },

    #[error("{}: already exists (use --force to replace it)", path.display())]
    OutputExists { path: PathBuf },

    #[error("{}: is also an input; write the output somewhere else", path.display())]
    OutputIsInput { path: PathBuf },

    #[error("{}: cannot write: {}", path.display(), in_words(source))]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "{}: is a {kind}; ninja-fs writes only to files, character devices (such as /dev/null) and FIFOs",
        path.display()
    )]
    CannotWriteInto { path: PathBuf, kind: &'static str },

    #[error(
        "{}: is a symbolic link; a folder output must be a folder or a new name (give the folder it points to)",
        path.display()
    )]
    FolderOutputIsLink { path: PathBuf },

    #[error("{}: is not a folder; a folder output replaces only a folder", path.display())]
    NotAFolder { path: PathBuf },

    #[error("{}: is inside the input folder {}; write the output somewhere else", path.display(), input.display())]
    OutputInsideInput { path: PathBuf, input: PathBuf },

    #[error("{}: holds the input folder {}; write the output somewhere else", path.display(), input.display())]
    OutputHoldsInput { path: PathBuf, input: PathBuf },
}

/// The system's words for an I/O error, without Rust's "(os error N)" and
/// what follows it (`tempfile` adds its temporary file's name there).
fn in_words(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A file's bytes: mapped when it has any, so only the pages read are loaded.
pub enum Input {
    Mapped(memmap2::Mmap),
    Empty,
}

impl Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(map) => map,
            Input::Empty => &[],
        }
    }
}

pub fn read_input(path: &Path) -> Result<Input, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_dir() {
        return Err(FileError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if meta.len() == 0 {
        return Ok(Input::Empty);
    }
    // SAFETY: the map is read-only and private to this process; a file
    // truncated by another process while mapped would fault, which the
    // command line accepts (the filesystem reads with pread instead).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(read_error)?;
    Ok(Input::Mapped(map))
}

/// Where an output goes: a file path, or standard output for `-`.
///
/// A path naming a character device or a FIFO is written into, as a shell's
/// `>` does, without `--force` (nothing is replaced). A path naming a
/// symbolic link writes to the file the link leads to (created when the
/// link dangles) and keeps the link. A replaced file keeps its permission
/// bits and, where this process may set them (as root), its owner and group.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout,
    File { path: PathBuf, force: bool },
}

/// What an output path leads to, links followed.
enum Target {
    /// A regular file at `path`: replaced if `existing`, else created.
    File {
        path: PathBuf,
        existing: Option<Metadata>,
    },
    /// A character device or a FIFO, written into through the name given
    /// (the kernel follows `/dev/stdout`'s kind of link, a path can't).
    Stream,
}

/// Most links a name may lead through, as Linux's own bound (ELOOP).
const MAX_LINKS: usize = 40;

fn target_of(path: &Path) -> Result<Target, FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Target::File {
                path: dangling_end(path).map_err(write_error)?,
                existing: None,
            });
        }
        Err(error) => return Err(write_error(error)),
    };
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Target::Stream);
    }
    if kind.is_dir() {
        return Err(FileError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !kind.is_file() {
        return Err(FileError::CannotWriteInto {
            path: path.to_path_buf(),
            kind: special_kind(&meta),
        });
    }
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(Target::File {
            path: path.to_path_buf(),
            existing: Some(meta),
        });
    }
    let real = std::fs::canonicalize(path).map_err(write_error)?;
    // A /proc "magic" link can name something its text does not.
    let same = std::fs::symlink_metadata(&real)
        .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    if !same {
        return Err(write_error(io::Error::other(
            "the link does not lead to a file that can be replaced",
        )));
    }
    Ok(Target::File {
        path: real,
        existing: Some(meta),
    })
}

/// The name a dangling link chain ends at (`path` itself when it is no
/// link): the file to create.
fn dangling_end(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

fn special_kind(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

impl Output {
    pub fn new(path: &Path, force: bool) -> Output {
        if path == Path::new("-") {
            Output::Stdout
        } else {
            Output::File {
                path: path.to_path_buf(),
                force,
            }
        }
    }

    /// Refuses outputs that exist (without `force`), that are one of
    /// `inputs` (ever) or that cannot be written, before any work is done.
    pub fn check(&self, inputs: &[&Path]) -> Result<(), FileError> {
        let Output::File { path, force } = self else {
            return Ok(());
        };
        if let Ok(out_meta) = std::fs::metadata(path) {
            for input in inputs {
                if let Ok(in_meta) = std::fs::metadata(input)
                    && in_meta.dev() == out_meta.dev()
                    && in_meta.ino() == out_meta.ino()
                {
                    return Err(FileError::OutputIsInput { path: path.clone() });
                }
            }
        }
        match target_of(path)? {
            Target::File {
                existing: Some(_), ..
            } if !force => Err(FileError::OutputExists { path: path.clone() }),
            _ => Ok(()),
        }
    }

    /// Writes `data` whole, or nothing (into a device or FIFO: what it took).
    pub fn write(&self, data: &[u8]) -> Result<(), FileError> {
        match self {
            Output::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(data)
                    .and_then(|()| stdout.flush())
                    .map_err(|source| FileError::Write {
                        path: PathBuf::from("-"),
                        source,
                    })
            }
            Output::File { path, force } => match target_of(path)? {
                Target::Stream => {
                    let write_error = |source| FileError::Write {
                        path: path.clone(),
                        source,
                    };
                    let mut stream = open_stream(path).map_err(write_error)?;
                    stream
                        .write_all(data)
                        .and_then(|()| stream.flush())
                        .map_err(write_error)
                }
                Target::File { path, existing } => {
                    let write_error = |source| FileError::Write {
                        path: path.clone(),
                        source,
                    };
                    let mut temp = temp_beside(&path, existing.as_ref()).map_err(write_error)?;
                    temp.write_all(data).map_err(write_error)?;
                    persist(temp, &path, *force)
                }
            },
        }
    }

    /// Whether the output is a path (a file, which can be written as it is
    /// made and still appear whole or not at all, or a device or FIFO).
    pub fn is_file(&self) -> bool {
        matches!(self, Output::File { .. })
    }

    /// Writes to a file what `fill` writes, as it writes it; the file
    /// appears only if `fill` succeeds. A device or FIFO gets the bytes as
    /// they come, so its reader sees a short stream if `fill` fails.
    /// Standard output cannot take back a partial write: use
    /// [`Output::write`] for it.
    pub fn write_streamed(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), FileError> {
        let Output::File { path, force } = self else {
            return Err(FileError::Write {
                path: PathBuf::from("-"),
                source: io::Error::other("standard output cannot be written as a stream"),
            });
        };
        match target_of(path)? {
            Target::Stream => {
                let write_error = |source| FileError::Write {
                    path: path.clone(),
                    source,
                };
                let stream = open_stream(path).map_err(write_error)?;
                let mut writer = io::BufWriter::with_capacity(1 << 20, stream);
                fill(&mut writer).map_err(write_error)?;
                writer.flush().map_err(write_error)
            }
            Target::File { path, existing } => {
                let write_error = |source| FileError::Write {
                    path: path.clone(),
                    source,
                };
                let mut temp = temp_beside(&path, existing.as_ref()).map_err(write_error)?;
                {
                    let mut writer = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
                    fill(&mut writer).map_err(write_error)?;
                    writer.flush().map_err(write_error)?;
                }
                persist(temp, &path, *force)
            }
        }
    }
}

/// Opens a character device or FIFO for writing (a FIFO waits for its
/// reader, as a shell's `>` does).
fn open_stream(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)?;
    // Opened without truncation, so a regular file swapped in meanwhile
    // is refused untouched rather than written over in place.
    let kind = file.metadata()?.file_type();
    if !(kind.is_char_device() || kind.is_fifo()) {
        return Err(io::Error::other(
            "it stopped being a device or FIFO while it was opened",
        ));
    }
    Ok(file)
}

/// A temporary file in the folder of `path`, to be renamed onto it,
/// wearing the mode and owner of the file it replaces (`existing`).
fn temp_beside(path: &Path, existing: Option<&Metadata>) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // 0o666 is filtered by the umask, as for any file a tool creates.
    let temp = tempfile::Builder::new()
        .prefix(".ninja-fs-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(old) = existing {
        // Before any byte is written, so a private file's bytes never
        // sit in a more open one.
        adopt_mode_and_owner(temp.as_file(), old)?;
    }
    Ok(temp)
}

/// Gives `file` the permission bits of `old` and, where allowed, its
/// owner and group.
fn adopt_mode_and_owner(file: &File, old: &Metadata) -> io::Result<()> {
    let mine = file.metadata()?;
    let mut mode = old.mode() & 0o7777;
    if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
        let owned = match std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
            Ok(()) => true,
            // Only root may give a file away; its owner may still pick
            // the group if it belongs to it.
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                let _ = std::os::unix::fs::fchown(file, None, Some(old.gid()));
                false
            }
            Err(error) => return Err(error),
        };
        if !owned {
            // Set-id bits are for the old owner, not for this process.
            mode &= 0o1777;
        }
    }
    // After fchown, which clears the set-id bits.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Syncs `temp` and renames it onto `path` (refusing an existing file
/// unless `force`).
fn persist(temp: tempfile::NamedTempFile, path: &Path, force: bool) -> Result<(), FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    temp.as_file().sync_all().map_err(write_error)?;
    if force {
        temp.persist(path).map_err(|e| write_error(e.error))?;
    } else {
        temp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                FileError::OutputExists {
                    path: path.to_path_buf(),
                }
            } else {
                write_error(e.error)
            }
        })?;
    }
    Ok(())
}

/// A size as people write it: `1048576`, `64K`, `256M`, `1G` (binary
/// multiples; a trailing `B` or `iB` is allowed).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let without_b = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match without_b.chars().last() {
        Some('K') => (&without_b[..without_b.len() - 1], 10),
        Some('M') => (&without_b[..without_b.len() - 1], 20),
        Some('G') => (&without_b[..without_b.len() - 1], 30),
        Some('T') => (&without_b[..without_b.len() - 1], 40),
        _ => (without_b, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            format!("'{text}' is not a size: write a number of bytes, or one like 64K, 256M, 1G")
        })
}

/// Refuses a folder output that cannot or must not be replaced, before
/// any work: an existing one without `force`, anything but a folder, a
/// symbolic link (replacing the folder it leads to would delete outside
/// the name given; replacing the link would lose it), and the input
/// folder itself, a folder inside it or one holding it.
pub fn check_folder_output(
    source: &Path,
    destination: &Path,
    force: bool,
) -> Result<(), FileError> {
    let path = || destination.to_path_buf();
    let exists = match std::fs::symlink_metadata(destination) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(FileError::FolderOutputIsLink { path: path() });
        }
        Ok(meta) if !meta.is_dir() => return Err(FileError::NotAFolder { path: path() }),
        Ok(_) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(FileError::Write {
                path: path(),
                source,
            });
        }
    };
    let input = std::fs::canonicalize(source).map_err(|error| FileError::Read {
        path: source.to_path_buf(),
        source: error,
    })?;
    // The folder the output is (or will be) in, links in it resolved.
    let parent = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(name) = destination.file_name() else {
        return Err(FileError::Write {
            path: path(),
            source: io::Error::other("it names no folder (it ends in '..' or '/')"),
        });
    };
    let output = std::fs::canonicalize(parent)
        .map_err(|source| FileError::Write {
            path: path(),
            source,
        })?
        .join(name);
    if output == input {
        return Err(FileError::OutputIsInput { path: path() });
    }
    if output.starts_with(&input) {
        return Err(FileError::OutputInsideInput {
            path: path(),
            input: source.to_path_buf(),
        });
    }
    if input.starts_with(&output) {
        return Err(FileError::OutputHoldsInput {
            path: path(),
            input: source.to_path_buf(),
        });
    }
    if exists && !force {
        return Err(FileError::OutputExists { path: path() });
    }
    Ok(())
}

/// Writes a copy of folder `source` to `destination`, with the files named
/// in `replaced` (relative paths with `/`) given new contents. The copy is
/// built beside `destination` and renamed into place, so a failure leaves
/// nothing behind; a folder replaced (with `force`) is moved aside first,
/// put back if the new one cannot take its place, and its mode and owner
/// are kept. See [`check_folder_output`] for what is refused.
pub fn write_folder_copy(
    source: &Path,
    destination: &Path,
    replaced: &[(String, Vec<u8>)],
    force: bool,
) -> Result<(), FileError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Write { path, source }
    };
    check_folder_output(source, destination, force)?;
    let parent = match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // 0o777 is filtered by the umask, as for any folder a tool creates.
    let staging = tempfile::Builder::new()
        .prefix(".ninja-fs-")
        .permissions(std::fs::Permissions::from_mode(0o777))
        .tempdir_in(parent)
        .map_err(write_error(destination))?;
    copy_tree(source, staging.path())?;
    for (name, bytes) in replaced {
        // The patch parser refuses such names already; a name must never
        // lead out of the copy.
        if !Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(FileError::Write {
                path: destination.join(name),
                source: io::Error::other("the name leads out of the folder"),
            });
        }
        let path = staging.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error(&path))?;
        }
        std::fs::write(&path, bytes).map_err(write_error(&path))?;
    }
    // Looked at again: something may have taken the name since the check.
    let old = match std::fs::symlink_metadata(destination) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(FileError::FolderOutputIsLink {
                path: destination.to_path_buf(),
            });
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(FileError::NotAFolder {
                path: destination.to_path_buf(),
            });
        }
        Ok(meta) => Some(meta),
        Err(_) => None,
    };
    let Some(old) = old else {
        std::fs::rename(staging.path(), destination).map_err(write_error(destination))?;
        let _ = staging.keep();
        return Ok(());
    };
    if !force {
        return Err(FileError::OutputExists {
            path: destination.to_path_buf(),
        });
    }
    File::open(staging.path())
        .and_then(|dir| adopt_mode_and_owner(&dir, &old))
        .map_err(write_error(destination))?;
    // rename moves a name, never what a link leads to, so nothing outside
    // the name given is moved or deleted.
    let aside = tempfile::Builder::new()
        .prefix(".ninja-fs-old-")
        .tempdir_in(parent)
        .map_err(write_error(destination))?;
    let old_path = aside.path().join("old");
    std::fs::rename(destination, &old_path).map_err(write_error(destination))?;
    if let Err(error) = std::fs::rename(staging.path(), destination) {
        let _ = std::fs::rename(&old_path, destination);
        return Err(write_error(destination)(error));
    }
    let _ = staging.keep();
    // The old folder goes with `aside`.
    drop(aside);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), FileError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Read { path, source }
    };
    for entry in std::fs::read_dir(from).map_err(read_error(from))? {
        let entry = entry.map_err(read_error(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(read_error(&src))?.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|source| FileError::Write {
                path: dst.clone(),
                source,
            })?;
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|source| FileError::Write {
                path: dst.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangling_links_end_at_the_name_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let link = |from: &str, to: &str| {
            std::os::unix::fs::symlink(to, dir.path().join(from)).unwrap();
        };
        link("a", "b");
        link("b", "sub/../c");
        assert_eq!(
            dangling_end(&dir.path().join("a")).unwrap(),
            dir.path().join("sub/../c")
        );
        assert_eq!(
            dangling_end(&dir.path().join("plain")).unwrap(),
            dir.path().join("plain")
        );
        link("x", "y");
        link("y", "x");
        let error = dangling_end(&dir.path().join("x")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn io_errors_in_words() {
        let error = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(in_words(&error), "No space left on device");
        let error = io::Error::other("the patch failed");
        assert_eq!(in_words(&error), "the patch failed");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
