//! Patch formats: each module parses a patch into a plain description of
//! its records, reports what it knows before applying (sizes, checksums),
//! applies it to a byte slice and, where the format allows, creates one.

pub mod any;
pub mod aps;
pub mod bps;
pub mod bsdiff;
pub mod bsp;
pub mod dps;
pub mod ebp;
pub mod fc;
pub mod ffp;
pub mod gdiff;
pub mod ips;
pub mod ips32;
pub mod pat;
pub mod pmsr;
pub mod ppf;
mod reader;
pub mod rup;
pub mod ups;
pub mod vcdiff;

use std::borrow::Cow;
use std::fmt;

/// Maps every page of a fresh output buffer's capacity in one system call.
/// A patched image is written front to back into new memory, and taking
/// one page fault per 4 KiB page cost 1.2-2 ms of a 4 MiB VCDIFF apply's
/// 9-11 ms (BENCHMARKS.md, issue 16). Where the kernel lacks MADV_POPULATE_WRITE
/// (before Linux 5.14) this does nothing and pages fault in as before.
pub(crate) fn prefault(buffer: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            size if size > 0 => size as usize,
            _ => return,
        };
        let capacity = buffer.capacity();
        advise_whole_blocks(
            buffer.as_mut_ptr(),
            capacity,
            page,
            PageAdvice::PopulateWrite,
        );
    }
}

/// Advice [`advise_whole_blocks`] gives: only kinds that leave the bytes
/// as they are.
#[cfg(target_os = "linux")]
pub(crate) enum PageAdvice {
    /// Map the pages writable now (`MADV_POPULATE_WRITE`).
    PopulateWrite,
    /// Back them with transparent huge pages (`MADV_HUGEPAGE`).
    HugePages,
}

/// Gives `advice` for the whole `block`-aligned blocks of `block` bytes
/// among the `len` bytes at `start`, memory of an allocation the caller
/// holds. Where there are none, or the kernel refuses, nothing changes.
#[cfg(target_os = "linux")]
pub(crate) fn advise_whole_blocks(start: *mut u8, len: usize, block: usize, advice: PageAdvice) {
    let start = start as usize;
    let (Some(first), Some(end)) = (
        start.checked_next_multiple_of(block),
        start.checked_add(len),
    ) else {
        return;
    };
    let last = end - end % block;
    if last > first {
        let advice = match advice {
            PageAdvice::PopulateWrite => libc::MADV_POPULATE_WRITE,
            PageAdvice::HugePages => libc::MADV_HUGEPAGE,
        };
        // SAFETY: whole blocks inside the caller's allocation; both kinds of
        // advice change how pages are backed, never what they hold.
        // Failure (an old kernel, no memory yet) changes nothing.
        unsafe { libc::madvise(first as *mut libc::c_void, last - first, advice) };
    }
}

/// Everything that can go wrong while reading, applying or creating a patch.
/// Messages are written for the person who downloaded the patch: they say
/// what is wrong and, where it is not obvious, what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("not a {format} patch: {reason}")]
    NotThisFormat {
        format: &'static str,
        reason: String,
    },

    #[error("{format} patch is truncated: {what}")]
    Truncated { format: &'static str, what: String },

    #[error("{format} patch is corrupt: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },

    /// The image given is not the one the patch was made for. `expected`
    /// and `actual` name their kind of checksum ("CRC32 47e70e08").
    #[error(
        "{format} patch is for another image: the patch expects {} {expected}, this one has {actual}",
        expectation(what)
    )]
    ChecksumMismatch {
        format: &'static str,
        what: &'static str,
        expected: String,
        actual: String,
    },

    /// The patch fails its checksum of itself: the download is damaged, not
    /// the ROM wrong, so this is never tried against another layout.
    #[error(
        "{format} patch is damaged: its own {checksum} is {stored} but the file's bytes give {actual} (download it again)"
    )]
    Damaged {
        format: &'static str,
        checksum: &'static str,
        stored: String,
        actual: String,
    },

    /// The source checked out but the result is not what the patch
    /// promises: its records are wrong, whatever ROM it is given.
    #[error(
        "{format} patch is damaged: applied to its own source it gives {actual}, not the {expected} it promises (download it again)"
    )]
    WrongResult {
        format: &'static str,
        expected: String,
        actual: String,
    },

    #[error(
        "{format} patch would make a {size}-byte image, over the maximum of {max} bytes (raise --max-size if the patch is genuine)"
    )]
    TooLarge {
        format: &'static str,
        size: u64,
        max: u64,
    },

    #[error("{format} patch cannot be used here: {detail}")]
    Unsupported {
        format: &'static str,
        detail: String,
    },
}

/// How a mismatch's `what` reads after "the patch expects".
pub fn expectation(what: &str) -> Cow<'_, str> {
    match what {
        "source" => Cow::Borrowed("a source with"),
        "target" => Cow::Borrowed("a target with"),
        "file size" => Cow::Borrowed("a file size of"),
        other => Cow::Borrowed(other),
    }
}

/// Bounds that protect against hostile patches: no parser or applier may
/// allocate an image larger than `max_image_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_image_size: u64,
}

impl Limits {
    pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 1 << 30;

    /// Fails with `TooLarge` when `size` is over the limit.
    pub fn check(&self, format: &'static str, size: u64) -> Result<usize, PatchError> {
        if size > self.max_image_size || usize::try_from(size).is_err() {
            return Err(PatchError::TooLarge {
                format,
                size,
                max: self.max_image_size,
            });
        }
        Ok(size as usize)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_image_size: Self::DEFAULT_MAX_IMAGE_SIZE,
        }
    }
}

/// How an apply call treats the checksums a patch carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    pub limits: Limits,
    /// Apply even when the source (or target) checksum does not match.
    pub ignore_checksums: bool,
}

/// A checksum a patch carries for its source or target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Checksum {
    Crc32(u32),
    Md5([u8; 16]),
    /// Adler-32 or other weak sums some formats carry per window; never used
    /// for pairing.
    Other(u32),
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checksum::Crc32(v) => write!(f, "CRC32 {v:08x}"),
            Checksum::Md5(d) => {
                write!(f, "MD5 ")?;
                for b in d {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Checksum::Other(v) => write!(f, "{v:08x}"),
        }
    }
}

/// What a patch says about itself before it is applied: enough for the
/// filesystem to pair it with a ROM and to give the patched file a size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchSummary {
    pub source_size: Option<u64>,
    pub target_size: Option<u64>,
    pub source_checksum: Option<Checksum>,
    pub target_checksum: Option<Checksum>,
}
