//! Famicom Disk System: a disk image is its sides of 65,500 bytes, each
//! starting with the `\x01*NINTENDO-HVC*` block. Dumps often carry the
//! 16-byte header the fwNES emulator introduced (`FDS\x1a`, the number of
//! sides, 11 zero bytes) in front. NINJA kept FDS images whole, so the
//! normalized image keeps that header; DATs made with the `fds.xml` header
//! skipper (No-Intro's) hash the disk without it, which this gives.

/// The fwNES header's length.
pub const FWNES_HEADER_LEN: usize = 16;

/// What the fwNES header starts with.
const FWNES_MAGIC: &[u8] = b"FDS\x1a";

/// How many bytes of fwNES header `raw` starts with: 16, or 0 when it has
/// none. Like clrmamepro's `fds.xml` rule, only the magic is checked (the
/// side count and padding vary among dumps).
pub fn fwnes_header_len(raw: &[u8]) -> usize {
    if raw.len() >= FWNES_HEADER_LEN && raw.starts_with(FWNES_MAGIC) {
        FWNES_HEADER_LEN
    } else {
        0
    }
}

/// The disk image of `raw` without its fwNES header: what a DAT naming the
/// `fds.xml` header skipper hashes (`raw` itself when it has no header).
pub fn disk_image(raw: &[u8]) -> &[u8] {
    &raw[fwnes_header_len(raw)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(sides: u8) -> Vec<u8> {
        let mut header = b"FDS\x1a".to_vec();
        header.push(sides);
        header.extend_from_slice(&[0; 11]);
        header
    }

    #[test]
    fn the_header_is_cut_and_a_headerless_disk_is_kept() {
        let disk = b"\x01*NINTENDO-HVC*rest of the side".to_vec();
        let mut headered = header(1);
        headered.extend_from_slice(&disk);
        assert_eq!(fwnes_header_len(&headered), 16);
        assert_eq!(disk_image(&headered), &disk[..]);
        assert_eq!(fwnes_header_len(&disk), 0);
        assert_eq!(disk_image(&disk), &disk[..]);
        // The magic alone, too short to be a header: nothing is cut.
        assert_eq!(disk_image(b"FDS\x1a\x01"), b"FDS\x1a\x01");
        assert_eq!(disk_image(&header(2)), b"");
        assert_eq!(disk_image(b""), b"");
    }

    proptest! {
        #[test]
        fn a_headered_disk_gives_back_the_disk(
            sides in any::<u8>(),
            disk in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut headered = header(sides);
            headered.extend_from_slice(&disk);
            prop_assert_eq!(disk_image(&headered), &disk[..]);
        }

        #[test]
        fn any_bytes_lose_16_bytes_or_none(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let cut = fwnes_header_len(&raw);
            prop_assert!(cut == 0 || (cut == 16 && raw.starts_with(b"FDS\x1a")));
            prop_assert_eq!(disk_image(&raw), &raw[cut..]);
        }
    }
}
