//! IPS: records that overwrite bytes at 24-bit offsets, run-length records
//! for repeated bytes, an "EOF" marker, and Lunar IPS's truncation
//! extension (a 24-bit new length after the marker). IPS carries no
//! checksums and no sizes, so the output size depends on the source.
//!
//! IPS32 (see [`super::ips32`]) is the same record list with 32-bit
//! offsets: the code here serves both through a [`Dialect`].

use super::reader::ByteReader;
use super::ups::corrupt;
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "IPS";

const MAX_RECORD_LEN: usize = 0xFFFF;
/// The largest target IPS can describe: offsets are 24 bits.
pub const MAX_TARGET_SIZE: usize = 0x100_0000;
/// The truncation extension is also 24 bits.
const MAX_TRUNCATED_SIZE: usize = 0xFF_FFFF;

/// What sets IPS and IPS32 apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    pub(crate) name: &'static str,
    pub(crate) magic: &'static [u8],
    /// As wide as an offset, so a record may not start where it would read
    /// as the marker.
    pub(crate) end_marker: &'static [u8],
    /// Lunar IPS's 3-byte truncation length may follow the marker.
    pub(crate) truncation: bool,
    /// What the user should pick instead when a target cannot be made.
    pub(crate) instead: &'static str,
}

impl Dialect {
    fn offset_width(&self) -> usize {
        self.end_marker.len()
    }

    /// The record offset whose bytes read as the end marker.
    fn end_offset(&self) -> usize {
        self.end_marker
            .iter()
            .fold(0, |acc, &b| (acc << 8) | usize::from(b))
    }

    /// One past the largest offset a record can start at.
    fn max_target_size(&self) -> u64 {
        1 << (8 * self.offset_width())
    }
}

pub(crate) const IPS: Dialect = Dialect {
    name: NAME,
    magic: b"PATCH",
    end_marker: b"EOF",
    truncation: true,
    instead: "use BPS or UPS",
};

/// True when `bytes` starts with the IPS magic.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(IPS.magic)
}

/// A parsed IPS (or IPS32) patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsPatch<'a> {
    /// "IPS" or "IPS32", for messages.
    pub format: &'static str,
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
    parse_dialect(&IPS, bytes, limits)
}

/// Parses the record list of `dialect`; every record's end is checked
/// against `limits` before anything is allocated for it.
pub(crate) fn parse_dialect<'a>(
    dialect: &Dialect,
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<IpsPatch<'a>, PatchError> {
    let format = dialect.name;
    if !bytes.starts_with(dialect.magic) {
        return Err(PatchError::NotThisFormat {
            format,
            reason: format!(
                "it does not start with \"{}\"",
                String::from_utf8_lossy(dialect.magic)
            ),
        });
    }
    let marker = String::from_utf8_lossy(dialect.end_marker);
    let mut reader = ByteReader::new(format, bytes);
    reader.take(dialect.magic.len(), "magic")?;
    let mut records = Vec::new();
    loop {
        if reader.is_empty() {
            return Err(PatchError::Truncated {
                format,
                what: format!("the {marker} marker is missing"),
            });
        }
        let offset_bytes = reader.take(dialect.offset_width(), "record offset")?;
        if offset_bytes == dialect.end_marker {
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
        limits.check(format, record.end())?;
        records.push(record);
    }
    let truncate_to = match reader.rest() {
        [] => None,
        &[a, b, c] if dialect.truncation => {
            let size = u32::from_be_bytes([0, a, b, c]);
            limits.check(format, u64::from(size))?;
            Some(size)
        }
        extra if dialect.truncation => {
            return Err(corrupt(
                format,
                format!(
                    "{} unexpected bytes after the {marker} marker (only a 3-byte truncation length may follow it)",
                    extra.len()
                ),
            ));
        }
        extra => {
            return Err(corrupt(
                format,
                format!(
                    "{} unexpected bytes after the {marker} marker (nothing may follow it)",
                    extra.len()
                ),
            ));
        }
    };
    Ok(IpsPatch {
        format,
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
            .check(self.format, self.output_size(source.len() as u64))?;
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

impl Dialect {
    /// Bytes of header in every record: the offset + 2 size.
    fn record_header(&self) -> usize {
        self.offset_width() + 2
    }

    /// An RLE record: header + 2 length + 1 value.
    fn rle_record(&self) -> usize {
        self.record_header() + 3
    }

    /// Equal bytes between two changed runs that are cheaper to rewrite
    /// than to start a new record for.
    fn max_merged_gap(&self) -> usize {
        self.record_header() - 1
    }
}

/// Creates an IPS patch. Fails for targets over 16 MiB, which IPS offsets
/// cannot reach.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    create_dialect(&IPS, source, target)
}

/// Creates a patch of `dialect`: changed bytes as literal and RLE records,
/// a shorter target by the truncation length where the dialect has one.
pub(crate) fn create_dialect(
    dialect: &Dialect,
    source: &[u8],
    target: &[u8],
) -> Result<Vec<u8>, PatchError> {
    let format = dialect.name;
    if target.len() as u64 > dialect.max_target_size() {
        return Err(PatchError::Unsupported {
            format,
            detail: format!(
                "the target is {} bytes; {format} offsets stop at {} bytes, {}",
                target.len(),
                dialect.max_target_size(),
                dialect.instead
            ),
        });
    }
    let shrinks = target.len() < source.len();
    if shrinks && !dialect.truncation {
        return Err(PatchError::Unsupported {
            format,
            detail: format!(
                "the target ({} bytes) is shorter than the source ({} bytes) and {format} cannot shorten a file; {}",
                target.len(),
                source.len(),
                dialect.instead
            ),
        });
    }
    if shrinks && target.len() > MAX_TRUNCATED_SIZE {
        return Err(PatchError::Unsupported {
            format,
            detail: format!(
                "the target ({} bytes) is shorter than the source but too long for the 24-bit truncation length; {}",
                target.len(),
                dialect.instead
            ),
        });
    }

    let mut writer = RecordWriter {
        dialect,
        patch: dialect.magic.to_vec(),
        target,
    };
    let max_merged_gap = dialect.max_merged_gap();
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
            let gap = (end..target.len().min(end + max_merged_gap + 1))
                .take_while(|&i| !differs(i))
                .count();
            let next_change = end + gap;
            if gap <= max_merged_gap && next_change < target.len() {
                position = next_change;
            } else {
                break;
            }
        }
        writer.block(start, end);
        position = end;
    }
    writer.patch.extend_from_slice(dialect.end_marker);
    if shrinks {
        let size = target.len() as u32;
        writer.patch.extend_from_slice(&size.to_be_bytes()[1..]);
    }
    Ok(writer.patch)
}

struct RecordWriter<'a> {
    dialect: &'a Dialect,
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
            let (header, rle) = (self.dialect.record_header(), self.dialect.rle_record());
            let rle_cost = match (touches_start, touches_end) {
                (true, true) => rle - header,
                (true, false) | (false, true) => rle,
                (false, false) => rle + header,
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
        let width = self.dialect.offset_width();
        self.patch
            .extend_from_slice(&(offset as u32).to_be_bytes()[4 - width..]);
        self.patch.extend_from_slice(&(size as u16).to_be_bytes());
    }

    fn literal(&mut self, start: usize, end: usize) {
        let mut position = start;
        while position < end {
            // Starting one byte early rewrites an unchanged byte rather
            // than writing an offset that reads as the end marker.
            let record_start = if position == self.dialect.end_offset() {
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
            if position == self.dialect.end_offset() {
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

    const EOF_OFFSET: usize = 0x45_4F46;

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
