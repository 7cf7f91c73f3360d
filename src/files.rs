//! Reading inputs and writing outputs for the command line: inputs are
//! memory-mapped, outputs are written to a temporary file beside the target
//! and renamed into place, so a failure never leaves a partial file.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Deref;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
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
#[derive(Debug, Clone)]
pub enum Output {
    Stdout,
    File { path: PathBuf, force: bool },
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

    /// Refuses outputs that exist (without `force`) or that are one of
    /// `inputs` (ever), before any work is done.
    pub fn check(&self, inputs: &[&Path]) -> Result<(), FileError> {
        let Output::File { path, force } = self else {
            return Ok(());
        };
        let Ok(out_meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        for input in inputs {
            if let Ok(in_meta) = std::fs::metadata(input)
                && in_meta.dev() == out_meta.dev()
                && in_meta.ino() == out_meta.ino()
            {
                return Err(FileError::OutputIsInput { path: path.clone() });
            }
        }
        if out_meta.is_dir() {
            return Err(FileError::IsDirectory { path: path.clone() });
        }
        if !force {
            return Err(FileError::OutputExists { path: path.clone() });
        }
        Ok(())
    }

    /// Writes `data` whole, or nothing.
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
            Output::File { path, force } => write_atomically(path, data, *force),
        }
    }
}

impl Output {
    /// Whether the output is a file (which can be written as it is made
    /// and still appear whole or not at all).
    pub fn is_file(&self) -> bool {
        matches!(self, Output::File { .. })
    }

    /// Writes to a file what `fill` writes, as it writes it; the file
    /// appears only if `fill` succeeds. Standard output cannot take back
    /// a partial write: use [`Output::write`] for it.
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
        let write_error = |source| FileError::Write {
            path: path.clone(),
            source,
        };
        let mut temp = temp_beside(path).map_err(write_error)?;
        {
            let mut writer = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
            fill(&mut writer).map_err(write_error)?;
            writer.flush().map_err(write_error)?;
        }
        persist(temp, path, *force)
    }
}

/// A temporary file in the folder of `path`, to be renamed onto it.
fn temp_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // 0o666 is filtered by the umask, as for any file a tool creates.
    tempfile::Builder::new()
        .prefix(".ninja-fs-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
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

fn write_atomically(path: &Path, data: &[u8], force: bool) -> Result<(), FileError> {
    let mut temp = temp_beside(path).map_err(|source| FileError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    temp.write_all(data).map_err(|source| FileError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    persist(temp, path, force)
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

/// Writes a copy of folder `source` to `destination`, with the files named
/// in `replaced` (relative paths with `/`) given new contents. The copy is
/// built beside `destination` and renamed into place, so a failure leaves
/// nothing behind.
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
    let parent = match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".ninja-fs-")
        .tempdir_in(parent)
        .map_err(write_error(destination))?;
    copy_tree(source, staging.path())?;
    for (name, bytes) in replaced {
        let path = staging.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error(&path))?;
        }
        std::fs::write(&path, bytes).map_err(write_error(&path))?;
    }
    if destination.exists() {
        if !force {
            return Err(FileError::OutputExists {
                path: destination.to_path_buf(),
            });
        }
        std::fs::remove_dir_all(destination).map_err(write_error(destination))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, destination).map_err(write_error(destination))?;
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
    use super::parse_size;

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
