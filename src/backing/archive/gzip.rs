//! gzip files, with `flate2`: one member, named after the file without its
//! `.gz`, its size and CRC32 taken from the trailer (ISIZE is the size
//! modulo 4 GiB, so it is checked when the member is read).

use std::io::{self, Read, Seek, SeekFrom};

use flate2::read::GzDecoder;

use super::{ArchiveError, FileReader, Member, RawMember, Want, read_wanted};

pub(super) struct GzipReader {
    source: FileReader,
}

/// Header (10 bytes) and trailer (8): the least a gzip file holds.
const SMALLEST: u64 = 18;

/// Deflate's largest expansion (258 bytes from a 2-bit code), with room.
const MAX_RATIO: u64 = 1032;

impl GzipReader {
    pub(super) fn open(
        mut source: FileReader,
        file_name: &str,
    ) -> Result<(GzipReader, Vec<RawMember>), ArchiveError> {
        if source.len < SMALLEST {
            return Err(ArchiveError::Damaged(
                "it is too short to be a gzip file (cut short?)".into(),
            ));
        }
        let mut trailer = [0u8; 8];
        source
            .seek(SeekFrom::End(-8))
            .and_then(|_| source.read_exact(&mut trailer))
            .map_err(|error| ArchiveError::Read(error.to_string()))?;
        let [c0, c1, c2, c3, s0, s1, s2, s3] = trailer;
        let member = RawMember {
            name: member_name(file_name),
            size: u64::from(u32::from_le_bytes([s0, s1, s2, s3])),
            crc32: Some(u32::from_le_bytes([c0, c1, c2, c3])),
            problem: None,
        };
        // Deflate makes at most 258 bytes of 2 bits of data (1,032 times
        // its size): a trailer that states more is damage (often a file
        // cut short, its last bytes then read as the trailer).
        if member.size > (source.len - SMALLEST).saturating_mul(MAX_RATIO) {
            return Err(ArchiveError::Damaged(format!(
                "its trailer states {} bytes, more than its {} bytes of data can hold (cut short?)",
                member.size,
                source.len - SMALLEST
            )));
        }
        source.pos = 0;
        Ok((GzipReader { source }, vec![member]))
    }

    pub(super) fn read(&self, member: &Member, want: Want) -> Result<Vec<u8>, ArchiveError> {
        let mut source = self.source.clone();
        source.pos = 0;
        let mut stream = GzDecoder::new(source);
        read_wanted(member, &mut stream, want, &|error| {
            stream_error(member, error)
        })
    }
}

/// `Game.sfc.gz` holds `Game.sfc`; a name without `.gz` is kept whole.
fn member_name(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    match base.len().checked_sub(3) {
        Some(cut)
            if cut > 0 && base.is_char_boundary(cut) && base[cut..].eq_ignore_ascii_case(".gz") =>
        {
            base[..cut].to_string()
        }
        _ => base.to_string(),
    }
}

/// flate2 checks the trailer itself when the stream ends.
fn stream_error(member: &Member, error: io::Error) -> ArchiveError {
    if error.to_string().contains("matching checksum") {
        return ArchiveError::Crc {
            member: member.name.clone(),
        };
    }
    super::member_io_error(&member.name, error)
}

#[cfg(test)]
mod tests {
    use super::member_name;

    #[test]
    fn the_member_is_named_after_the_file() {
        assert_eq!(member_name("Game.sfc.gz"), "Game.sfc");
        assert_eq!(member_name("dir/Game.SFC.GZ"), "Game.SFC");
        assert_eq!(member_name("Game.gz"), "Game");
        assert_eq!(member_name(".gz"), ".gz");
        assert_eq!(member_name("Game.bin"), "Game.bin");
        assert_eq!(member_name("é.gz"), "é");
    }
}
