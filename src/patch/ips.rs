//! IPS: records that overwrite bytes at 24-bit offsets, run-length records
//! for repeated bytes, an "EOF" marker, and Lunar IPS's truncation
//! extension (a 24-bit new length after the marker). IPS carries no
//! checksums and no sizes, so the output size depends on the source.

use super::reader::ByteReader;
use super::ups::corrupt;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "IPS";

const MAGIC: &[u8] = b"PATCH";
const EOF_MARKER: &[u8] = b"EOF";
/// A record at this offset would read as the "EOF" marker.
const EOF_OFFSET: usize = 0x45_4F46;
const MAX_RECORD_LEN: usize = 0xFFFF;
/// The largest target IPS can describe: offsets are 24 bits.
pub const MAX_TARGET_SIZE: usize = 0x100_0000;
/// The truncation extension is also 24 bits.
const MAX_TRUNCATED_SIZE: usize = 0xFF_FFFF;

/// True when `bytes` starts with the IPS magic.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A parsed IPS patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsPatch<'a> {
    pub records: Vec<IpsRecord<'a>>,
    /// The length the output is cut (or padded) to, when the patch has
    /// Lunar IPS's truncation extension.
    pub truncate_to: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpsRecord<'a> {
    pub offset: u32,
    pub data: IpsData<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsData<'a> {
    /// Bytes written as they are.
    Bytes(&'a [u8]),
    /// `length` copies of `value` (an RLE record).
    Run { length: u16, value: u8 },
}

impl IpsRecord<'_> {
    pub fn len(&self) -> usize {
        match self.data {
            IpsData::Bytes(bytes) => bytes.len(),
            IpsData::Run { length, .. } => usize::from(length),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the last byte the record writes.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.len() as u64
    }
}

/// Parses an IPS patch: every record complete, the EOF marker present, and
/// nothing after it but an optional 3-byte truncation length.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<IpsPatch<'a>, PatchError> {
    if !matches(bytes) {
        return Err(PatchError::NotThisFormat {
            format: NAME,
            reason: "it does not start with \"PATCH\"".into(),
        });
    }
    let mut reader = ByteReader::new(NAME, bytes);
    reader.take(MAGIC.len(), "magic")?;
    let mut records = Vec::new();
    loop {
        if reader.is_empty() {
            return Err(PatchError::Truncated {
                format: NAME,
                what: "the EOF marker is missing".into(),
            });
        }
        let offset_bytes = reader.take(3, "record offset")?;
        if offset_bytes == EOF_MARKER {
            break;
        }
        let offset = offset_bytes
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        let size = reader.big_endian(2, "record size")?;
        let data = if size == 0 {
            let length = reader.big_endian(2, "RLE length")? as u16;
            let value = reader.byte("RLE value")?;
            IpsData::Run { length, value }
        } else {
            IpsData::Bytes(reader.take(size as usize, "record data")?)
        };
        let record = IpsRecord { offset, data };
        limits.check(NAME, record.end())?;
        records.push(record);
    }
    let truncate_to = match reader.rest() {
        [] => None,
        &[a, b, c] => {
            let size = u32::from_be_bytes([0, a, b, c]);
            limits.check(NAME, u64::from(size))?;
            Some(size)
        }
        extra => {
            return Err(corrupt(
                NAME,
                format!(
                    "{} unexpected bytes after the EOF marker (only a 3-byte truncation length may follow it)",
                    extra.len()
                ),
            ));
        }
    };
    Ok(IpsPatch {
        records,
        truncate_to,
    })
}

impl IpsPatch<'_> {
    /// IPS knows no source; it knows the target size only when truncating.
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            target_size: self.truncate_to.map(u64::from),
            ..PatchSummary::default()
        }
    }

    /// The length `apply` returns for a source of `source_len` bytes: the
    /// truncation length if given, else the source grown to the last record.
    pub fn output_size(&self, source_len: u64) -> u64 {
        match self.truncate_to {
            Some(size) => u64::from(size),
            None => self
                .records
                .iter()
                .map(IpsRecord::end)
                .fold(source_len, u64::max),
        }
    }

    /// Applies the records in order; bytes between the old end and a record
    /// past it are zero. IPS has no checksums to verify.
    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let output_len = opts
            .limits
            .check(NAME, self.output_size(source.len() as u64))?;
        let mut output = vec![0u8; output_len];
        let kept = source.len().min(output_len);
        if let (Some(dest), Some(src)) = (output.get_mut(..kept), source.get(..kept)) {
            dest.copy_from_slice(src);
        }
        for record in &self.records {
            // Writes past a truncated end are cut off, as if truncated after.
            let Some(dest) = output.get_mut(record.offset as usize..) else {
                continue;
            };
            match record.data {
                IpsData::Bytes(bytes) => {
                    for (byte, new) in dest.iter_mut().zip(bytes) {
                        *byte = *new;
                    }
                }
                IpsData::Run { length, value } => {
                    for byte in dest.iter_mut().take(usize::from(length)) {
                        *byte = value;
                    }
                }
            }
        }
        Ok(output)
    }
}

/// Bytes of header in every record: 3 offset + 2 size.
const RECORD_HEADER: usize = 5;
/// An RLE record: header + 2 length + 1 value.
const RLE_RECORD: usize = RECORD_HEADER + 3;
/// Equal bytes between two changed runs that are cheaper to rewrite than
/// to start a new record for.
const MAX_MERGED_GAP: usize = RECORD_HEADER - 1;

/// Creates an IPS patch. Fails for targets over 16 MiB, which IPS offsets
/// cannot reach.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    if target.len() > MAX_TARGET_SIZE {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!(
                "the target is {} bytes; IPS offsets stop at 16 MiB ({MAX_TARGET_SIZE} bytes), use BPS or UPS",
                target.len()
            ),
        });
    }
    let shrinks = target.len() < source.len();
    if shrinks && target.len() > MAX_TRUNCATED_SIZE {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: format!(
                "the target ({} bytes) is shorter than the source but too long for the 24-bit truncation length; use BPS or UPS",
                target.len()
            ),
        });
    }

    let mut writer = RecordWriter {
        patch: MAGIC.to_vec(),
        target,
    };
    // Every byte past the source's end is written, so the output grows.
    let differs = |i: usize| source.get(i) != target.get(i);
    let mut position = 0;
    while position < target.len() {
        if !differs(position) {
            position += 1;
            continue;
        }
        let start = position;
        let mut end;
        loop {
            while position < target.len() && differs(position) {
                position += 1;
            }
            end = position;
            let gap = (end..target.len().min(end + MAX_MERGED_GAP + 1))
                .take_while(|&i| !differs(i))
                .count();
            let next_change = end + gap;
            if gap <= MAX_MERGED_GAP && next_change < target.len() {
                position = next_change;
            } else {
                break;
            }
        }
        writer.block(start, end);
        position = end;
    }
    writer.patch.extend_from_slice(EOF_MARKER);
    if shrinks {
        let size = target.len() as u32;
        writer.patch.extend_from_slice(&size.to_be_bytes()[1..]);
    }
    Ok(writer.patch)
}

struct RecordWriter<'a> {
    patch: Vec<u8>,
    target: &'a [u8],
}

impl RecordWriter<'_> {
    /// Writes the changed bytes `start..end` as literal and RLE records,
    /// using RLE for runs long enough to pay for their record.
    fn block(&mut self, start: usize, end: usize) {
        let mut literal_start = start;
        let mut run_start = start;
        while run_start < end {
            let value = self.target.get(run_start).copied().unwrap_or(0);
            let run_len = (run_start..end)
                .take_while(|&i| self.target.get(i) == Some(&value))
                .count();
            let run_end = run_start + run_len;
            let touches_start = run_start == start;
            let touches_end = run_end == end;
            // An RLE record replaces the run's bytes but, inside a block,
            // also costs the header of the literal record after it.
            let rle_cost = match (touches_start, touches_end) {
                (true, true) => RLE_RECORD - RECORD_HEADER,
                (true, false) | (false, true) => RLE_RECORD,
                (false, false) => RLE_RECORD + RECORD_HEADER,
            };
            if run_len > rle_cost {
                self.literal(literal_start, run_start);
                self.run(run_start, run_end, value);
                literal_start = run_end;
            }
            run_start = run_end;
        }
        self.literal(literal_start, end);
    }

    fn header(&mut self, offset: usize, size: usize) {
        self.patch
            .extend_from_slice(&(offset as u32).to_be_bytes()[1..]);
        self.patch.extend_from_slice(&(size as u16).to_be_bytes());
    }

    fn literal(&mut self, start: usize, end: usize) {
        let mut position = start;
        while position < end {
            // Starting one byte early rewrites an unchanged byte rather
            // than writing an offset that reads as "EOF".
            let record_start = if position == EOF_OFFSET {
                position - 1
            } else {
                position
            };
            let record_end = end.min(record_start + MAX_RECORD_LEN);
            self.header(record_start, record_end - record_start);
            let bytes = self
                .target
                .get(record_start..record_end)
                .unwrap_or_default();
            self.patch.extend_from_slice(bytes);
            position = record_end;
        }
    }

    fn run(&mut self, start: usize, end: usize, value: u8) {
        let mut position = start;
        while position < end {
            if position == EOF_OFFSET {
                // Cover the byte before and the first run byte literally.
                self.literal(position - 1, position + 1);
                position += 1;
                continue;
            }
            let length = (end - position).min(MAX_RECORD_LEN);
            self.header(position, 0);
            self.patch.extend_from_slice(&(length as u16).to_be_bytes());
            self.patch.push(value);
            position += length;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
        let patch = create(source, target).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        for record in &parsed.records {
            assert_ne!(record.offset as usize, EOF_OFFSET);
        }
        assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
        assert!(parsed.apply(source, &opts()).unwrap() == target);
        patch
    }

    #[test]
    fn create_exact_bytes() {
        // Two changes three bytes apart merge into one record.
        let patch = round_trip(b"abcdefghij", b"aXcdeYghij");
        assert_eq!(patch, b"PATCH\x00\x00\x01\x00\x05XcdeYEOF");
        // A long run becomes RLE; growth is written; shrink truncates.
        let patch = round_trip(b"ab", b"abzzzzzzzzzzzz");
        assert_eq!(patch, b"PATCH\x00\x00\x02\x00\x00\x00\x0czEOF");
        let patch = round_trip(b"abcdef", b"abc");
        assert_eq!(patch, b"PATCHEOF\x00\x00\x03");
        assert_eq!(round_trip(b"", b""), b"PATCHEOF");
        assert_eq!(round_trip(b"same", b"same"), b"PATCHEOF");
        assert_eq!(round_trip(b"abc", b""), b"PATCHEOF\x00\x00\x00");
    }

    #[test]
    fn rle_only_where_shorter() {
        let source = [0u8; 40];
        let mut target = [0u8; 40];
        // 13 equal bytes inside a block stay literal; 14 become RLE.
        target[0] = 1;
        target[1..14].fill(7);
        target[14] = 2;
        let patch = round_trip(&source, &target);
        assert_eq!(parse(&patch, &Limits::default()).unwrap().records.len(), 1);
        target[14] = 7;
        target[15] = 2;
        let patch = round_trip(&source, &target);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(
            parsed.records[1].data,
            IpsData::Run {
                length: 14,
                value: 7
            }
        );
    }

    #[test]
    fn long_changes_split_at_64k() {
        let source = vec![0u8; 0x20000];
        let target: Vec<u8> = (0..0x20000u32).map(|i| (i % 251) as u8 + 1).collect();
        let patch = round_trip(&source, &target);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        let lengths: Vec<usize> = parsed.records.iter().map(IpsRecord::len).collect();
        assert_eq!(lengths, vec![0xFFFF, 0xFFFF, 2]);
    }

    #[test]
    fn never_writes_an_offset_that_reads_as_eof() {
        let size = EOF_OFFSET + 0x20;
        let source = vec![0u8; size];
        // A literal change exactly at the EOF offset.
        let mut target = source.clone();
        target[EOF_OFFSET] = 1;
        let patch = round_trip(&source, &target);
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.records[0].offset as usize, EOF_OFFSET - 1);
        assert_eq!(parsed.records[0].data, IpsData::Bytes(&[0, 1]));
        // A run starting there.
        let mut target = source.clone();
        target[EOF_OFFSET..EOF_OFFSET + 20].fill(9);
        round_trip(&source, &target);
        // A long literal whose 64 KiB split lands on the EOF offset.
        let mut target = source.clone();
        let start = EOF_OFFSET - MAX_RECORD_LEN;
        for (i, byte) in target[start..EOF_OFFSET + 10].iter_mut().enumerate() {
            *byte = (i % 200) as u8 + 1;
        }
        round_trip(&source, &target);
    }

    #[test]
    fn refuses_targets_past_16_mib() {
        let big = vec![0u8; MAX_TARGET_SIZE + 1];
        assert!(matches!(
            create(b"", &big),
            Err(PatchError::Unsupported { format: "IPS", .. })
        ));
        // Exactly 16 MiB still works (last offset 0xFFFFFF).
        let at_limit = vec![0u8; MAX_TARGET_SIZE];
        let patch = create(b"", &at_limit).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.output_size(0), MAX_TARGET_SIZE as u64);
    }

    #[test]
    fn parse_errors() {
        let limits = Limits::default();
        assert!(matches!(
            parse(b"PATCH", &limits),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"PATCH\x00\x00\x01\x00\x05abc", &limits),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"PATCH\x00\x00\x01\x00\x00\x00", &limits),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"PATCH\x00\x00\x01\x00\x01aEO", &limits),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"PATCHEOFxy", &limits),
            Err(PatchError::Corrupt { .. })
        ));
        assert!(matches!(
            parse(b"PATC", &limits),
            Err(PatchError::NotThisFormat { .. })
        ));
        // A record ending past the limit.
        let small = Limits {
            max_image_size: 0x1000,
        };
        assert!(matches!(
            parse(b"PATCH\x00\x10\x00\x00\x01aEOF", &small),
            Err(PatchError::TooLarge { size: 0x1001, .. })
        ));
    }

    #[test]
    fn records_extend_with_zero_fill_and_truncation_cuts() {
        let patch = b"PATCH\x00\x00\x06\x00\x02xyEOF";
        let parsed = parse(patch, &Limits::default()).unwrap();
        assert_eq!(parsed.output_size(3), 8);
        assert_eq!(parsed.apply(b"abc", &opts()).unwrap(), b"abc\0\0\0xy");
        let patch = b"PATCH\x00\x00\x01\x00\x02xy\x00\x00\x00\x00\x00\x00\x03zEOF\x00\x00\x04";
        let parsed = parse(patch, &Limits::default()).unwrap();
        assert_eq!(parsed.summary().target_size, Some(4));
        assert_eq!(parsed.apply(b"abcdef", &opts()).unwrap(), b"zzzd");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                              source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut patch = b"PATCH".to_vec();
            patch.extend_from_slice(&bytes);
            let _ = parse(&bytes, &Limits::default());
            if let Ok(parsed) = parse(&patch, &Limits::default()) {
                let out = parsed.apply(&source, &opts()).unwrap();
                prop_assert_eq!(out.len() as u64, parsed.output_size(source.len() as u64));
            }
        }

        #[test]
        fn create_apply_round_trip(source in proptest::collection::vec(any::<u8>(), 0..2048),
                                   target in proptest::collection::vec(any::<u8>(), 0..2048)) {
            round_trip(&source, &target);
        }

        #[test]
        fn round_trip_of_similar_images(source in proptest::collection::vec(0u8..3, 0..2048),
                                        edits in proptest::collection::vec((any::<usize>(), 0u8..3, 0usize..40), 0..24),
                                        new_len in 0usize..2200) {
            let mut target = source.clone();
            target.resize(new_len, 0);
            for (at, value, len) in edits {
                let at = at % new_len.max(1);
                for byte in target.iter_mut().skip(at).take(len) { *byte = value; }
            }
            round_trip(&source, &target);
        }
    }
}
