//! The one checked reader every binary patch parser reads through, so a
//! patch cut short is reported the same way whatever its format: what was
//! being read, where, how many bytes it needed and how many were left.

use super::PatchError;

/// A forward-only reader over patch bytes whose every read is checked.
pub(crate) struct ByteReader<'a> {
    format: &'static str,
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(format: &'static str, bytes: &'a [u8]) -> Self {
        Self::at(format, bytes, 0)
    }

    /// A reader that starts at byte `position` (after a fixed header).
    pub(crate) fn at(format: &'static str, bytes: &'a [u8], position: usize) -> Self {
        ByteReader {
            format,
            bytes,
            position,
        }
    }

    /// The format whose name errors carry.
    pub(crate) fn format(&self) -> &'static str {
        self.format
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }

    /// The unread bytes.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.position..).unwrap_or_default()
    }

    /// The next byte, left unread.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    pub(crate) fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8], PatchError> {
        let taken = self
            .position
            .checked_add(count)
            .and_then(|end| self.bytes.get(self.position..end))
            .ok_or_else(|| PatchError::Truncated {
                format: self.format,
                what: format!(
                    "{what} at byte {} needs {}, {}",
                    self.position,
                    match count {
                        1 => "1 byte".to_string(),
                        n => format!("{n} bytes"),
                    },
                    match self.remaining() {
                        0 => "none are left".to_string(),
                        1 => "1 is left".to_string(),
                        n => format!("{n} are left"),
                    }
                ),
            })?;
        self.position += count;
        Ok(taken)
    }

    /// Like `take` for a count read from the patch, which may not fit usize.
    pub(crate) fn take_u64(&mut self, count: u64, what: &str) -> Result<&'a [u8], PatchError> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.take(count, what)
    }

    pub(crate) fn byte(&mut self, what: &str) -> Result<u8, PatchError> {
        let byte = self.peek().ok_or_else(|| PatchError::Truncated {
            format: self.format,
            what: format!("{what} at byte {} is missing", self.position),
        })?;
        self.position += 1;
        Ok(byte)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PatchError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u16_le(&mut self, what: &str) -> Result<u16, PatchError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32_le(&mut self, what: &str) -> Result<u32, PatchError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64_le(&mut self, what: &str) -> Result<u64, PatchError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a big-endian unsigned number of `width` bytes (at most 8).
    pub(crate) fn big_endian(&mut self, width: usize, what: &str) -> Result<u64, PatchError> {
        let bytes = self.take(width, what)?;
        Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_and_says_what_was_cut_short() {
        let mut reader = ByteReader::at("TEST", &[9, 1, 2, 3, 4, 5, 6, 7], 1);
        assert_eq!(reader.peek(), Some(1));
        assert_eq!(reader.u16_le("a").unwrap(), 0x0201);
        assert_eq!(reader.big_endian(2, "b").unwrap(), 0x0304);
        assert_eq!(reader.remaining(), 3);
        assert_eq!(reader.rest(), &[5, 6, 7]);
        assert_eq!(
            reader.u32_le("the record size").unwrap_err().to_string(),
            "TEST patch is truncated: the record size at byte 5 needs 4 bytes, 3 are left"
        );
        // A failed read consumes nothing.
        assert_eq!(reader.array::<3>("c").unwrap(), [5, 6, 7]);
        assert!(reader.is_empty());
        assert_eq!(
            reader.byte("the end marker").unwrap_err().to_string(),
            "TEST patch is truncated: the end marker at byte 8 is missing"
        );
        assert!(reader.take_u64(u64::MAX, "d").is_err());
        let mut reader = ByteReader::new("TEST", &[1]);
        assert_eq!(
            reader.take(2, "a run").unwrap_err().to_string(),
            "TEST patch is truncated: a run at byte 0 needs 2 bytes, 1 is left"
        );
        assert_eq!(
            ByteReader::at("TEST", &[1], 1)
                .take(1, "a flag")
                .unwrap_err()
                .to_string(),
            "TEST patch is truncated: a flag at byte 1 needs 1 byte, none are left"
        );
    }
}
