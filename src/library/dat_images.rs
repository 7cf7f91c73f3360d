//! The images of a ROM that DATs hash, beyond its three layouts: an FDS
//! disk without its fwNES header (what a DAT naming the `fds.xml` header
//! skipper describes), hashed only for a mount with such a DAT and kept
//! like the other digests (in the ROM and the header cache).

use std::io;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{Library, Rom};
use crate::dat::{self, DatImage};
use crate::digest::Digests;
use crate::system::{SystemType, fds};

/// The size and digests of an FDS ROM's disk image without its fwNES
/// header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdsDiskDigests {
    /// Whether the file had the header (else the disk is the file).
    pub had_header: bool,
    pub size: u64,
    pub crc32: u32,
    pub md5: [u8; 16],
    pub sha1: [u8; 20],
}

impl FdsDiskDigests {
    fn of((image, size, digests): (DatImage, u64, Digests)) -> FdsDiskDigests {
        FdsDiskDigests {
            had_header: image == DatImage::FdsDisk { had_header: true },
            size,
            crc32: digests.crc32,
            md5: digests.md5,
            sha1: digests.sha1,
        }
    }

    fn image(&self) -> (DatImage, u64, Digests) {
        let digests = Digests {
            crc32: self.crc32,
            md5: self.md5,
            sha1: self.sha1,
        };
        let image = DatImage::FdsDisk {
            had_header: self.had_header,
        };
        (image, self.size, digests)
    }

    /// Whether they can be the digests of the disk of a file of `size`
    /// bytes (the header cache checks what it reads back).
    pub(super) fn fits(&self, size: u64) -> bool {
        let header = if self.had_header {
            fds::FWNES_HEADER_LEN as u64
        } else {
            0
        };
        self.size.checked_add(header) == Some(size)
    }
}

impl Library {
    /// The size and digests of each image of `rom` a DAT may hash: its
    /// three layouts (see [`Library::full_digests`]) and, with
    /// `fds_disks` (some DAT hashes FDS disks) for an FDS ROM, its disk
    /// image without the fwNES header. One read of the file at most,
    /// hashing every image wanted from it; none once they are kept.
    pub fn dat_digests(
        &self,
        rom: &Rom,
        fds_disks: bool,
    ) -> io::Result<Vec<(DatImage, u64, Digests)>> {
        let layouts = |images: Vec<(crate::apply::ImageLayout, u64, Digests)>| {
            images
                .into_iter()
                .map(|(layout, size, digests)| (DatImage::from(layout), size, digests))
                .collect::<Vec<_>>()
        };
        if !fds_disks || rom.layout.system != SystemType::Fds {
            return Ok(layouts(self.full_digests(rom)?));
        }
        if let Some(disk) = rom.fds_disk.get() {
            let mut images = layouts(self.full_digests(rom)?);
            images.push(disk.image());
            return Ok(images);
        }
        self.roms_hashed.fetch_add(1, Ordering::Relaxed);
        let raw = self.read_rom(rom).map_err(io::Error::other)?;
        let full = match Self::kept_digests(rom) {
            Some(full) => full,
            None => self.digests_from_raw(rom, &raw)?,
        };
        let raw_digests = full
            .iter()
            .find(|(layout, ..)| *layout == crate::apply::ImageLayout::Raw)
            .map(|(_, _, digests)| digests.clone())
            .unwrap_or_else(|| Digests::of(&raw));
        let disk = FdsDiskDigests::of(dat::fds_disk_digests(&raw, &raw_digests));
        let mut images = layouts(full);
        images.push(disk.image());
        if rom.fds_disk.set(disk).is_ok()
            && let Some(cache) = self.header_cache.get()
        {
            cache.changed_since_save();
        }
        Ok(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_digests_fit_only_their_file_size() {
        let disk = FdsDiskDigests {
            had_header: true,
            size: 65_500,
            crc32: 1,
            md5: [2; 16],
            sha1: [3; 20],
        };
        assert!(disk.fits(65_516));
        assert!(!disk.fits(65_500));
        let headerless = FdsDiskDigests {
            had_header: false,
            ..disk.clone()
        };
        assert!(headerless.fits(65_500));
        assert!(!headerless.fits(65_516));
        assert!(
            !FdsDiskDigests {
                size: u64::MAX,
                ..disk
            }
            .fits(15)
        );
        let (image, size, digests) = headerless.image();
        assert_eq!(image, DatImage::FdsDisk { had_header: false });
        assert_eq!(FdsDiskDigests::of((image, size, digests)), headerless);
    }
}
