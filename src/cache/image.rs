//! A built image, held on the heap or in a file of a private tmpfs that
//! uses huge pages.
//!
//! The kernel's FUSE page cache holds a file in 4 KiB pages on the kernels
//! this runs on, and copying a large image out of it a page at a time is
//! slower than reading a file of ext4, which uses large folios. An image
//! kept in a tmpfs file with 2 MiB pages can be lent to the kernel (FUSE
//! passthrough) and read at least as fast as the backing folder's files.
//! The tmpfs is mounted nowhere (`fsopen`/`fsmount` give a detached
//! mount), so no other process finds its files by path, and nothing is
//! written to disk.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

/// Images smaller than this stay on the heap: the page cache's 4 KiB
/// pages are no handicap for them.
pub const FILE_THRESHOLD: usize = 1 << 20;

/// The bytes of a built image.
pub struct Image {
    bytes: Bytes,
}

enum Bytes {
    Heap(Vec<u8>),
    /// A file on the private tmpfs, mapped read-only.
    File {
        map: memmap2::Mmap,
        file: File,
    },
}

impl Image {
    /// The tmpfs file holding the image, if it is in one: the kernel may
    /// read it directly.
    pub fn file(&self) -> Option<&File> {
        match &self.bytes {
            Bytes::Heap(_) => None,
            Bytes::File { file, .. } => Some(file),
        }
    }
}

impl From<Vec<u8>> for Image {
    fn from(bytes: Vec<u8>) -> Self {
        Image {
            bytes: Bytes::Heap(bytes),
        }
    }
}

impl std::ops::Deref for Image {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Heap(bytes) => bytes,
            Bytes::File { map, .. } => map,
        }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = if self.file().is_some() {
            "tmpfs file"
        } else {
            "heap"
        };
        write!(f, "Image({} bytes, {place})", self.len())
    }
}

impl PartialEq for Image {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Image {}

/// A tmpfs instance of our own, mounted nowhere, whose files use huge
/// pages (`huge=within_size`).
pub struct HugePageFiles {
    root: OwnedFd,
}

impl HugePageFiles {
    /// Mounts the private tmpfs. Fails without CAP_SYS_ADMIN, on kernels
    /// without the mount API (before 5.2) or transparent huge pages, and
    /// where the administrator denied huge pages to tmpfs.
    pub fn new() -> io::Result<HugePageFiles> {
        let denied = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
            .is_ok_and(|setting| setting.contains("[deny]"));
        if denied {
            return Err(io::Error::other("huge pages are denied to tmpfs"));
        }
        let context = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
        // Huge pages only where the file reaches: `always` would give a
        // 1 MiB image a whole 2 MiB page.
        rustix::mount::fsconfig_set_string(&context, "huge", "within_size")?;
        rustix::mount::fsconfig_set_string(&context, "mode", "0700")?;
        rustix::mount::fsconfig_create(&context)?;
        let root = rustix::mount::fsmount(
            &context,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOEXEC
                | MountAttrFlags::MOUNT_ATTR_NOSUID,
        )?;
        Ok(HugePageFiles { root })
    }

    /// `bytes` in a new file of the tmpfs, which disappears with the last
    /// handle to it.
    pub fn keep(&self, bytes: &[u8]) -> io::Result<Image> {
        let fd = rustix::fs::openat(
            &self.root,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR,
        )?;
        let mut file = File::from(fd);
        // The size first, so the pages written are within it from the start.
        file.set_len(bytes.len() as u64)?;
        file.write_all(bytes)?;
        // SAFETY: the file was made unnamed on a tmpfs that is mounted
        // nowhere: no other process can open it by path, and we never
        // write to or truncate it after this point, so the mapping's bytes
        // do not change under readers.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Image {
            bytes: Bytes::File { map, file },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heap_image_is_its_bytes() {
        let image = Image::from(vec![1, 2, 3]);
        assert_eq!(&*image, &[1, 2, 3]);
        assert!(image.file().is_none());
    }

    #[test]
    fn a_kept_image_reads_back_the_same_bytes_from_its_file() {
        // Needs CAP_SYS_ADMIN; without it there is nothing to test.
        let Ok(files) = HugePageFiles::new() else {
            return;
        };
        let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        let image = files.keep(&bytes).unwrap();
        assert_eq!(&*image, &bytes[..]);
        let file = image.file().unwrap();
        assert_eq!(file.metadata().unwrap().len(), bytes.len() as u64);
        let mut read = vec![0u8; 16];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut read, (2 << 20) + 5).unwrap();
        assert_eq!(read, &bytes[(2 << 20) + 5..(2 << 20) + 21]);
    }
}
