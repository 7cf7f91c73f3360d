//! The checksums DAT files and patches use, computed in one pass.

use md5::{Digest, Md5};
use sha1::Sha1;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digests {
    pub crc32: u32,
    pub md5: [u8; 16],
    pub sha1: [u8; 20],
}

/// Large enough to amortize per-call overhead, small enough to stay in L2
/// while all three hashers read it.
const CHUNK: usize = 256 * 1024;

impl Digests {
    /// All zeros: the same width as real digests, for sizing a report.
    pub const PLACEHOLDER: Digests = Digests {
        crc32: 0,
        md5: [0; 16],
        sha1: [0; 20],
    };

    pub fn of(data: &[u8]) -> Digests {
        let mut crc = crc32fast::Hasher::new();
        let mut md5 = Md5::new();
        let mut sha1 = Sha1::new();
        for chunk in data.chunks(CHUNK) {
            crc.update(chunk);
            md5.update(chunk);
            sha1.update(chunk);
        }
        Digests {
            crc32: crc.finalize(),
            md5: md5.finalize().into(),
            sha1: sha1.finalize().into(),
        }
    }

    pub fn crc32_hex(&self) -> String {
        format!("{:08x}", self.crc32)
    }

    pub fn md5_hex(&self) -> String {
        hex(&self.md5)
    }

    pub fn sha1_hex(&self) -> String {
        hex(&self.sha1)
    }
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = Digests::of(b"abc");
        assert_eq!(d.crc32_hex(), "352441c2");
        assert_eq!(d.md5_hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha1_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
