//! A stand-in [`VirtualFs`] for testing the mount without the ROM core:
//! it shows a backing folder as it is (folders and regular files only),
//! read live, so a test changes what the mount shows by changing the
//! backing folder, from the same process or another one.
//!
//! - inode numbers are stable per path for the life of the mount;
//! - a file's bytes are read once per `open`, so one handle never mixes
//!   two versions; `keep_cache` is true only when the file's size and
//!   modification time are those of its previous open;
//! - a file whose name ends in `.bad` fails to open with `FsError::Io`
//!   (what the core does for a patch that does not verify);
//! - [`FakeFs::opens`] counts the opens.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::vfs::{Attributes, DirEntry, FsError, FsStats, NodeKind, Opened, ROOT_INO, VirtualFs};

#[derive(Default)]
struct Inodes {
    paths: Vec<PathBuf>,
    by_path: HashMap<PathBuf, u64>,
    /// (size, mtime) of each file at its last open.
    opened_versions: HashMap<u64, (u64, SystemTime)>,
}

pub struct FakeFs {
    root: PathBuf,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    next_handle: AtomicU64,
    opens: Arc<AtomicU64>,
}

impl FakeFs {
    /// Mirrors `root`, which must be a folder.
    pub fn new(root: &Path) -> Result<FakeFs, String> {
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(format!("backing folder {} is not a folder", root.display())),
            Err(error) => return Err(format!("backing folder {}: {error}", root.display())),
        }
        let inodes = Inodes {
            // Index 0 is unused, index 1 (ROOT_INO) is the root.
            paths: vec![PathBuf::new(), PathBuf::new()],
            by_path: HashMap::from([(PathBuf::new(), ROOT_INO)]),
            opened_versions: HashMap::new(),
        };
        Ok(FakeFs {
            root: root.to_path_buf(),
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            opens: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A counter of successful and failed opens, readable while mounted.
    pub fn opens(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.opens)
    }

    fn inodes(&self) -> Result<MutexGuard<'_, Inodes>, FsError> {
        self.inodes
            .lock()
            .map_err(|_| FsError::Io("inode table poisoned".into()))
    }

    fn relative(&self, ino: u64) -> Result<PathBuf, FsError> {
        let inodes = self.inodes()?;
        usize::try_from(ino)
            .ok()
            .filter(|&i| i >= 1)
            .and_then(|i| inodes.paths.get(i).cloned())
            .ok_or(FsError::NotFound)
    }

    fn ino_for(&self, relative: &Path) -> Result<u64, FsError> {
        let mut inodes = self.inodes()?;
        if let Some(&ino) = inodes.by_path.get(relative) {
            return Ok(ino);
        }
        let ino = inodes.paths.len() as u64;
        inodes.paths.push(relative.to_path_buf());
        inodes.by_path.insert(relative.to_path_buf(), ino);
        Ok(ino)
    }

    fn attributes(&self, relative: &Path) -> Result<Attributes, FsError> {
        let meta = fs::metadata(self.root.join(relative)).map_err(|_| FsError::NotFound)?;
        let kind = if meta.is_dir() {
            NodeKind::Directory
        } else if meta.is_file() {
            NodeKind::File
        } else {
            return Err(FsError::NotFound);
        };
        Ok(Attributes {
            ino: self.ino_for(relative)?,
            kind,
            size: if kind == NodeKind::File {
                meta.len()
            } else {
                0
            },
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

impl VirtualFs for FakeFs {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attributes, FsError> {
        let folder = self.getattr(parent)?;
        if folder.kind != NodeKind::Directory {
            return Err(FsError::NotADirectory);
        }
        if name == "."
            || name == ".."
            || name.is_empty()
            || Path::new(name).components().count() != 1
        {
            return Err(FsError::NotFound);
        }
        self.attributes(&self.relative(parent)?.join(name))
    }

    fn getattr(&self, ino: u64) -> Result<Attributes, FsError> {
        self.attributes(&self.relative(ino)?)
    }

    fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let relative = self.relative(ino)?;
        if self.attributes(&relative)?.kind != NodeKind::Directory {
            return Err(FsError::NotADirectory);
        }
        let listing = fs::read_dir(self.root.join(&relative))
            .map_err(|error| FsError::Io(format!("{}: {error}", relative.display())))?;
        let mut entries = Vec::new();
        for entry in listing.flatten() {
            let name = entry.file_name();
            if let Ok(attributes) = self.attributes(&relative.join(&name)) {
                entries.push(DirEntry { name, attributes });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn open(&self, ino: u64) -> Result<Opened, FsError> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        let relative = self.relative(ino)?;
        let before = self.attributes(&relative)?;
        if before.kind == NodeKind::Directory {
            return Err(FsError::IsADirectory);
        }
        if relative.extension().is_some_and(|ext| ext == "bad") {
            return Err(FsError::Io(format!(
                "{}: the fake core refuses .bad files",
                relative.display()
            )));
        }
        let bytes = fs::read(self.root.join(&relative))
            .map_err(|error| FsError::Io(format!("{}: {error}", relative.display())))?;
        let version = (bytes.len() as u64, before.mtime);
        let keep_cache = {
            let mut inodes = self.inodes()?;
            inodes.opened_versions.insert(ino, version) == Some(version)
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.handles
            .lock()
            .map_err(|_| FsError::Io("handle table poisoned".into()))?
            .insert(handle, Arc::new(bytes));
        Ok(Opened { handle, keep_cache })
    }

    fn read(&self, handle: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let bytes = self
            .handles
            .lock()
            .map_err(|_| FsError::Io("handle table poisoned".into()))?
            .get(&handle)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start.saturating_add(size as usize).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn release(&self, handle: u64) {
        if let Ok(mut handles) = self.handles.lock() {
            handles.remove(&handle);
        }
    }

    fn statfs(&self) -> FsStats {
        let mut stats = FsStats { files: 0, bytes: 0 };
        let mut pending = vec![self.root.clone()];
        while let Some(folder) = pending.pop() {
            for entry in fs::read_dir(&folder).into_iter().flatten().flatten() {
                match entry.metadata() {
                    Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                    Ok(meta) if meta.is_file() => {
                        stats.files += 1;
                        stats.bytes += meta.len();
                    }
                    _ => {}
                }
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/a.bin"), b"hello").unwrap();
        let fake = FakeFs::new(dir.path()).unwrap();
        let sub = fake.lookup(ROOT_INO, OsStr::new("sub")).unwrap();
        assert_eq!(sub.kind, NodeKind::Directory);
        let list = fake.readdir(sub.ino).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].attributes.size, 5);
        let opened = fake.open(list[0].attributes.ino).unwrap();
        assert!(!opened.keep_cache);
        assert_eq!(fake.read(opened.handle, 1, 3).unwrap(), b"ell");
        assert_eq!(fake.read(opened.handle, 9, 3).unwrap(), b"");
        fake.release(opened.handle);
        assert_eq!(fake.read(opened.handle, 0, 1), Err(FsError::BadHandle));
        assert!(fake.open(list[0].attributes.ino).unwrap().keep_cache);
        assert_eq!(
            fake.lookup(ROOT_INO, OsStr::new("nope")),
            Err(FsError::NotFound)
        );
        assert_eq!(fake.statfs(), FsStats { files: 1, bytes: 5 });
        assert!(FakeFs::new(&dir.path().join("missing")).is_err());
    }
}
