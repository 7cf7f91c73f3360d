//! BPS (byuu's "beat patching system"): a target built from four actions
//! that read the source at the same offset, insert literal bytes, or copy
//! from anywhere in the source or in the target written so far. The patch
//! carries both sizes, free-form metadata and three CRC32s.

use super::reader::ByteReader;
use super::ups::{Header, corrupt, read_header, source_mismatch, vlv_len, write_vlv, wrong_result};
use super::{ApplyOptions, Checksum, Limits, PatchError, PatchSummary};

pub const NAME: &str = "BPS";

const MAGIC: &[u8] = b"BPS1";

// The low two bits of an action word.
const SOURCE_READ: u64 = 0;
const TARGET_READ: u64 = 1;
const SOURCE_COPY: u64 = 2;
const TARGET_COPY: u64 = 3;

/// True when `bytes` starts with the BPS magic.
pub fn matches(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A parsed BPS patch. Copy offsets are resolved to absolute positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpsPatch<'a> {
    pub source_size: u64,
    pub target_size: u64,
    /// Free-form metadata, by convention UTF-8 XML; often empty.
    pub metadata: &'a [u8],
    pub actions: Vec<BpsAction<'a>>,
    pub source_crc32: u32,
    pub target_crc32: u32,
    pub patch_crc32: u32,
}

/// One step that appends bytes to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpsAction<'a> {
    /// The source bytes at the same offset as the output.
    SourceRead { length: u64 },
    /// Literal bytes from the patch.
    TargetRead { bytes: &'a [u8] },
    /// Source bytes from `source_offset`.
    SourceCopy { source_offset: u64, length: u64 },
    /// Bytes already written to the target, from `target_offset`; the copy
    /// may overlap its own output, which repeats a pattern.
    TargetCopy { target_offset: u64, length: u64 },
}

impl BpsAction<'_> {
    /// How many bytes the action appends.
    pub fn length(&self) -> u64 {
        match *self {
            BpsAction::SourceRead { length }
            | BpsAction::SourceCopy { length, .. }
            | BpsAction::TargetCopy { length, .. } => length,
            BpsAction::TargetRead { bytes } => bytes.len() as u64,
        }
    }
}

/// Parses and fully validates a BPS patch, including its own CRC32: every
/// action of a parsed patch stays inside the declared source and target.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<BpsPatch<'a>, PatchError> {
    let Header {
        mut reader,
        source_size,
        target_size,
        crc32s: [source_crc32, target_crc32, patch_crc32],
    } = read_header(NAME, MAGIC, bytes, limits)?;
    let metadata_size = reader.vlv("metadata size")?;
    let metadata = reader.take_u64(metadata_size, "metadata")?;

    let mut actions = Vec::new();
    let mut written: u64 = 0;
    let mut source_cursor: u64 = 0;
    let mut target_cursor: u64 = 0;
    while !reader.is_empty() {
        let at = reader.position();
        let word = reader.vlv("action")?;
        let length = (word >> 2) + 1;
        let end = written
            .checked_add(length)
            .filter(|&end| end <= target_size)
            .ok_or_else(|| {
                corrupt(
                    NAME,
                    format!(
                        "the action at patch byte {at} writes {length} bytes at target offset {written}, past the declared target size of {target_size} bytes"
                    ),
                )
            })?;
        let action = match word & 3 {
            SOURCE_READ => {
                if end > source_size {
                    return Err(corrupt(
                        NAME,
                        format!(
                            "the SourceRead at patch byte {at} reads up to offset {end} of a {source_size}-byte source"
                        ),
                    ));
                }
                BpsAction::SourceRead { length }
            }
            TARGET_READ => BpsAction::TargetRead {
                bytes: reader.take_u64(length, "TargetRead data")?,
            },
            SOURCE_COPY => {
                let source_offset = read_relative(&mut reader, source_cursor, "SourceCopy")?;
                let copy_end = source_offset.saturating_add(length);
                if copy_end > source_size {
                    return Err(corrupt(
                        NAME,
                        format!(
                            "the SourceCopy at patch byte {at} reads up to offset {copy_end} of a {source_size}-byte source"
                        ),
                    ));
                }
                source_cursor = copy_end;
                BpsAction::SourceCopy {
                    source_offset,
                    length,
                }
            }
            _ => {
                let target_offset = read_relative(&mut reader, target_cursor, "TargetCopy")?;
                if target_offset >= written {
                    return Err(corrupt(
                        NAME,
                        format!(
                            "the TargetCopy at patch byte {at} reads target offset {target_offset}, but only {written} bytes are written"
                        ),
                    ));
                }
                // Cannot overflow: target_offset < written and length fits.
                target_cursor = target_offset.saturating_add(length);
                BpsAction::TargetCopy {
                    target_offset,
                    length,
                }
            }
        };
        actions.push(action);
        written = end;
    }
    if written != target_size {
        return Err(corrupt(
            NAME,
            format!(
                "the actions write {written} bytes but the header declares a {target_size}-byte target"
            ),
        ));
    }

    Ok(BpsPatch {
        source_size,
        target_size,
        metadata,
        actions,
        source_crc32,
        target_crc32,
        patch_crc32,
    })
}

/// Reads a signed offset (magnitude and sign bit) and moves `cursor` by it.
fn read_relative(
    reader: &mut ByteReader<'_>,
    cursor: u64,
    action: &str,
) -> Result<u64, PatchError> {
    let word = reader.vlv("copy offset")?;
    let distance = word >> 1;
    let moved = if word & 1 == 1 {
        cursor.checked_sub(distance)
    } else {
        cursor.checked_add(distance)
    };
    moved.ok_or_else(|| {
        corrupt(
            NAME,
            format!("a {action} offset moves {distance} bytes from {cursor}, outside the file"),
        )
    })
}

impl<'a> BpsPatch<'a> {
    pub fn summary(&self) -> PatchSummary {
        PatchSummary {
            source_size: Some(self.source_size),
            target_size: Some(self.target_size),
            source_checksum: Some(Checksum::Crc32(self.source_crc32)),
            target_checksum: Some(Checksum::Crc32(self.target_crc32)),
        }
    }

    /// The metadata as text, when it is valid UTF-8.
    pub fn metadata_text(&self) -> Option<&'a str> {
        std::str::from_utf8(self.metadata).ok()
    }

    /// The length `apply` returns: BPS declares it, whatever the source.
    pub fn output_size(&self, _source_len: u64) -> u64 {
        self.target_size
    }

    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let output_len = opts.limits.check(NAME, self.target_size)?;
        if !opts.ignore_checksums {
            let actual = crc32fast::hash(source);
            if actual != self.source_crc32 {
                return Err(source_mismatch(NAME, self.source_crc32, actual));
            }
        }
        let mut output: Vec<u8> = Vec::with_capacity(output_len);
        for action in &self.actions {
            let length = usize::try_from(action.length()).unwrap_or(usize::MAX);
            if length > output_len - output.len() {
                return Err(corrupt(
                    NAME,
                    "the actions overrun the declared target size",
                ));
            }
            match *action {
                BpsAction::SourceRead { .. } => {
                    let bytes = source_slice(source, output.len() as u64, length)?;
                    output.extend_from_slice(bytes);
                }
                BpsAction::TargetRead { bytes } => output.extend_from_slice(bytes),
                BpsAction::SourceCopy { source_offset, .. } => {
                    let bytes = source_slice(source, source_offset, length)?;
                    output.extend_from_slice(bytes);
                }
                BpsAction::TargetCopy { target_offset, .. } => {
                    copy_within_target(&mut output, target_offset, length)?;
                }
            }
        }
        if output.len() != output_len {
            return Err(corrupt(
                NAME,
                format!(
                    "the actions write {} bytes but the header declares {output_len}",
                    output.len()
                ),
            ));
        }
        if !opts.ignore_checksums {
            let actual = crc32fast::hash(&output);
            if actual != self.target_crc32 {
                return Err(wrong_result(NAME, self.target_crc32, actual));
            }
        }
        Ok(output)
    }
}

/// The source bytes an action reads; only a source of the wrong size
/// (checksums ignored) can make this fail.
fn source_slice(source: &[u8], offset: u64, length: usize) -> Result<&[u8], PatchError> {
    usize::try_from(offset)
        .ok()
        .and_then(|start| source.get(start..start.checked_add(length)?))
        .ok_or_else(|| PatchError::Unsupported {
            format: NAME,
            detail: format!(
                "the patch reads {length} bytes at offset {offset} but the source has only {} bytes",
                source.len()
            ),
        })
}

/// Appends `length` bytes copied from `from` in `output`. When the copy
/// overlaps what it writes, it repeats the bytes between `from` and the end.
fn copy_within_target(output: &mut Vec<u8>, from: u64, length: usize) -> Result<(), PatchError> {
    let mut read = usize::try_from(from)
        .ok()
        .filter(|&start| start < output.len())
        .ok_or_else(|| corrupt(NAME, "a TargetCopy reads bytes not written yet"))?;
    let mut remaining = length;
    while remaining > 0 {
        // Everything from `read` to the current end exists already.
        let chunk = remaining.min(output.len() - read);
        output.extend_from_within(read..read + chunk);
        read += chunk;
        remaining -= chunk;
    }
    Ok(())
}

// ---- creation ----

/// Creates a BPS patch with the delta encoder (copies from anywhere in the
/// source and in the target written so far).
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    create_with_metadata(source, target, b"")
}

/// Like `create`, storing `metadata` (by convention UTF-8 XML) in the patch.
pub fn create_with_metadata(
    source: &[u8],
    target: &[u8],
    metadata: &[u8],
) -> Result<Vec<u8>, PatchError> {
    // The match index stores positions as u32.
    let indexable = u32::MAX as usize;
    if source.len() >= indexable || target.len() >= indexable {
        return Err(PatchError::Unsupported {
            format: NAME,
            detail: "the delta encoder handles files under 4 GiB; use create_linear".into(),
        });
    }
    let mut writer = ActionWriter::new(source, target, metadata);
    DeltaEncoder::new(source, target).encode(&mut writer);
    Ok(writer.finish())
}

/// Creates a BPS patch with the simple linear encoding: same-offset source
/// reads, literal bytes, and target copies for runs of one repeated byte.
pub fn create_linear(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    const MIN_RUN: usize = 4;
    let mut writer = ActionWriter::new(source, target, b"");
    let mut position = 0;
    while let Some(rest) = target.get(position..).filter(|rest| !rest.is_empty()) {
        let unchanged = common_prefix(source.get(position..).unwrap_or_default(), rest);
        let repeats = match rest.split_first() {
            Some((first, after)) => after.iter().take_while(|&b| b == first).count(),
            None => 0,
        };
        if repeats >= MIN_RUN && repeats > unchanged {
            // Write the byte once, then copy it onto itself.
            writer.literal(1);
            writer.target_copy(position as u64, repeats);
            position += 1 + repeats;
        } else if unchanged >= MIN_RUN {
            writer.source_read(unchanged);
            position += unchanged;
        } else {
            writer.literal(1);
            position += 1;
        }
    }
    Ok(writer.finish())
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 16;
    let mut same = 0;
    for (left, right) in a.chunks_exact(CHUNK).zip(b.chunks_exact(CHUNK)) {
        if left != right {
            break;
        }
        same += CHUNK;
    }
    let tail_a = a.get(same..).unwrap_or_default();
    let tail_b = b.get(same..).unwrap_or_default();
    same + tail_a
        .iter()
        .zip(tail_b)
        .take_while(|(x, y)| x == y)
        .count()
}

/// The word that moves a copy cursor from `cursor` to `to`.
fn relative_word(cursor: u64, to: u64) -> u64 {
    if to >= cursor {
        (to - cursor) << 1
    } else {
        ((cursor - to) << 1) | 1
    }
}

/// Writes the patch: header, actions (gathering literals into one
/// TargetRead), then the checksums.
struct ActionWriter<'a> {
    patch: Vec<u8>,
    source: &'a [u8],
    target: &'a [u8],
    /// Target bytes covered so far, including pending literals.
    position: usize,
    pending_literals: usize,
    source_cursor: u64,
    target_cursor: u64,
}

impl<'a> ActionWriter<'a> {
    fn new(source: &'a [u8], target: &'a [u8], metadata: &[u8]) -> Self {
        let mut patch = Vec::with_capacity(64 + metadata.len() + target.len() / 8);
        patch.extend_from_slice(MAGIC);
        write_vlv(&mut patch, source.len() as u64);
        write_vlv(&mut patch, target.len() as u64);
        write_vlv(&mut patch, metadata.len() as u64);
        patch.extend_from_slice(metadata);
        ActionWriter {
            patch,
            source,
            target,
            position: 0,
            pending_literals: 0,
            source_cursor: 0,
            target_cursor: 0,
        }
    }

    fn action(&mut self, command: u64, length: usize) {
        write_vlv(&mut self.patch, ((length as u64 - 1) << 2) | command);
    }

    fn literal(&mut self, length: usize) {
        self.pending_literals += length;
        self.position += length;
    }

    /// Gives the last `count` pending literal bytes back to a match.
    fn take_back_literals(&mut self, count: usize) {
        let count = count.min(self.pending_literals);
        self.pending_literals -= count;
        self.position -= count;
    }

    fn flush_literals(&mut self) {
        if self.pending_literals == 0 {
            return;
        }
        let start = self.position - self.pending_literals;
        self.action(TARGET_READ, self.pending_literals);
        let bytes = self.target.get(start..self.position).unwrap_or_default();
        self.patch.extend_from_slice(bytes);
        self.pending_literals = 0;
    }

    fn source_read(&mut self, length: usize) {
        self.flush_literals();
        self.action(SOURCE_READ, length);
        self.position += length;
    }

    fn source_copy(&mut self, from: u64, length: usize) {
        self.flush_literals();
        self.action(SOURCE_COPY, length);
        write_vlv(&mut self.patch, relative_word(self.source_cursor, from));
        self.source_cursor = from + length as u64;
        self.position += length;
    }

    fn target_copy(&mut self, from: u64, length: usize) {
        self.flush_literals();
        self.action(TARGET_COPY, length);
        write_vlv(&mut self.patch, relative_word(self.target_cursor, from));
        self.target_cursor = from + length as u64;
        self.position += length;
    }

    fn finish(mut self) -> Vec<u8> {
        self.flush_literals();
        self.patch
            .extend_from_slice(&crc32fast::hash(self.source).to_le_bytes());
        self.patch
            .extend_from_slice(&crc32fast::hash(self.target).to_le_bytes());
        let patch_crc = crc32fast::hash(&self.patch);
        self.patch.extend_from_slice(&patch_crc.to_le_bytes());
        self.patch
    }
}

/// Shortest match worth looking up in the hash index.
const MIN_MATCH: usize = 4;
/// Candidates tried per lookup: bounds the work per target byte. In data
/// with many short repeats (code, tables) the longest match is often far
/// down the chain: 32 made a 64 MiB pair's patch 31 % larger than Floating
/// IPS's (BENCHMARKS.md, "BPS delta create").
const MAX_CHAIN: usize = 128;
/// A match this long ends the search (and the lazy look-ahead) early.
const GOOD_MATCH: usize = 4096;
/// Matches shorter than this are checked against one starting a byte later.
const MAX_LAZY: usize = 4096;
/// After 2^SKIP_STRENGTH lookups without a match, the encoder steps two
/// bytes at a time, then three, and so on.
const SKIP_STRENGTH: u32 = 5;

/// Which positions of an image of `len` bytes are indexed: all of them up
/// to 16 MiB (short matches matter in code-heavy hacks), then every 2nd,
/// then every 4th from 32 MiB. Indexing costs a cache miss and four bytes
/// per position (6.9 s and 512 MiB for a 64 MiB pair, every position); a
/// match at least as long as the step still holds an indexed position,
/// found a few literals late, and backward extension recovers its start.
fn index_step(len: usize) -> usize {
    match len {
        0..=0x100_0000 => 1,
        0x100_0001..=0x200_0000 => 2,
        _ => 4,
    }
}

/// Which target positions are indexed. The source's rule up to 32 MiB;
/// above it every 16th, looked up at the position only (see
/// `HashChains::lookups`). The target index serves runs and blocks repeated
/// within the target, which are long: found up to 15 bytes late, backward
/// extension recovers their start. On the 64 MiB structured pair of
/// BENCHMARKS.md this took the CPU time from 0.87 to 0.64 s and made the
/// patch 0.5 % smaller (fewer short target copies win over a source copy
/// that goes on).
fn target_index_step(len: usize) -> usize {
    match len {
        0..=0x200_0000 => index_step(len),
        _ => 16,
    }
}

/// An index with a step up to this is looked up once per offset into the
/// step; a sparser one at the position only.
const MAX_OFFSET_LOOKUPS: usize = 4;

/// Bytes hashed per index entry. Against 4, 6 bytes cut the candidates
/// that only share a common 4-byte string (tables, text, a small
/// alphabet), too short to pay for a far copy's offset: the 64 MiB
/// structured pair took less than half the time, and with the same chain
/// length more real candidates made its patch 0.7 % smaller.
const WINDOW: usize = 6;
/// Largest hash table, 2^23 slots (32 MiB): about one slot per indexed
/// position of a 64 MiB image, so few unrelated windows share a chain.
const HASH_BITS_MAX: u32 = 23;
/// How many inserts ahead the index asks for its next hash slot.
const PREFETCH_DISTANCE: usize = 16;

/// Hash chains over `WINDOW`-byte windows at every `step`-th position: for
/// each window hash the latest position, and for each indexed position the
/// previous one with the same hash. Positions are stored plus one, so that
/// zeroed memory (which the system hands out without writing it) is an
/// empty index.
struct HashChains {
    head: Vec<u32>,
    previous: Vec<u32>,
    hash_bits: u32,
    /// log2 of the step (a power of two).
    step_shift: u32,
}

impl HashChains {
    /// An index of every `step`-th position (a power of two) of `len` bytes.
    fn new(len: usize, step: usize) -> Self {
        debug_assert!(step.is_power_of_two());
        let indexed = len.div_ceil(step);
        let hash_bits = (usize::BITS - indexed.leading_zeros()).clamp(8, HASH_BITS_MAX);
        HashChains {
            head: zeroed_table(1 << hash_bits),
            previous: zeroed_table(indexed),
            hash_bits,
            step_shift: step.trailing_zeros(),
        }
    }

    fn step(&self) -> usize {
        1 << self.step_shift
    }

    /// How many windows from a position on to look up: one per offset into
    /// the step finds every match at least `step + WINDOW - 1` bytes long
    /// where it starts, not some bytes later.
    fn lookups(&self) -> usize {
        match self.step() {
            step @ ..=MAX_OFFSET_LOOKUPS => step,
            _ => 1,
        }
    }

    fn slot(&self, window: u64) -> usize {
        (window.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.hash_bits)) as usize
    }

    /// Indexes `position` (a multiple of the step).
    fn insert(&mut self, data: &[u8], position: usize) {
        let Some(window) = window_at(data, position) else {
            return;
        };
        let slot = self.slot(window);
        if let (Some(head), Some(previous)) = (
            self.head.get_mut(slot),
            self.previous.get_mut(position >> self.step_shift),
        ) {
            *previous = *head;
            // Below u32::MAX: `create_with_metadata` checks the sizes.
            *head = position as u32 + 1;
        }
    }

    /// Asks the processor to load the head slot `position` will use. Each
    /// insert's slot is a cache miss; requested some inserts ahead, the
    /// misses overlap (the 64 MiB noise pair's time down by about a quarter).
    fn prefetch(&self, data: &[u8], position: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(window) = window_at(data, position)
            && let Some(head) = self.head.get(self.slot(window))
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: a prefetch is a hint: it changes no memory and cannot
            // fault, and the address is an element of `self.head` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((head as *const u32).cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (data, position);
    }

    /// Indexes every step-th position in `start..end` (`start` a multiple
    /// of the step).
    fn insert_range(&mut self, data: &[u8], start: usize, end: usize) {
        let ahead = PREFETCH_DISTANCE << self.step_shift;
        for position in (start..end).step_by(self.step()) {
            self.prefetch(data, position + ahead);
            self.insert(data, position);
        }
    }

    /// Positions whose window may equal `window`, latest first.
    fn candidates(&self, window: u64) -> impl Iterator<Item = usize> + '_ {
        let stored = |p: &u32| p.checked_sub(1).map(|p| p as usize);
        let first = self.head.get(self.slot(window)).and_then(stored);
        std::iter::successors(first, move |&p| {
            self.previous.get(p >> self.step_shift).and_then(stored)
        })
        .take(MAX_CHAIN)
    }
}

/// A table of `len` zeros. Index tables of large images are hit at random,
/// one TLB miss per access with 4 KiB pages: asking for huge pages before
/// the first write saves about a fifth of a 64 MiB pair's time where the
/// kernel gives them on request (transparent huge pages in `madvise` mode).
fn zeroed_table(len: usize) -> Vec<u32> {
    let mut table = vec![0u32; len];
    #[cfg(target_os = "linux")]
    super::advise_whole_blocks(
        table.as_mut_ptr().cast(),
        len.saturating_mul(size_of::<u32>()),
        2 << 20,
        super::PageAdvice::HugePages,
    );
    table
}

/// Whether a match at `candidate` can be as long as `longest`: only if it
/// agrees on that length's last byte (one compare rejects most candidates;
/// an equally long one may still be cheaper to encode).
fn may_be_longer(data: &[u8], candidate: usize, rest: &[u8], longest: usize) -> bool {
    let last = longest.saturating_sub(1);
    let here = candidate.checked_add(last).and_then(|at| data.get(at));
    here.is_some() && here == rest.get(last)
}

/// The `WINDOW` bytes at `position`, as one number.
fn window_at(data: &[u8], position: usize) -> Option<u64> {
    let bytes = data.get(position..position.checked_add(WINDOW)?)?;
    let mut word = [0u8; 8];
    word[..WINDOW].copy_from_slice(bytes);
    Some(u64::from_le_bytes(word))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchKind {
    SourceRead,
    SourceCopy,
    TargetCopy,
}

#[derive(Debug, Clone, Copy)]
struct Match {
    kind: MatchKind,
    from: usize,
    length: usize,
    /// Bytes saved over sending the same bytes as literals.
    gain: i64,
}

/// Greedy matching with one step of look-ahead over hash indexes of the
/// source and of the target written so far.
struct DeltaEncoder<'a> {
    source: &'a [u8],
    target: &'a [u8],
    source_index: HashChains,
    target_index: HashChains,
    /// Target positions below this are in `target_index`.
    target_indexed: usize,
}

impl<'a> DeltaEncoder<'a> {
    fn new(source: &'a [u8], target: &'a [u8]) -> Self {
        let steps = (index_step(source.len()), target_index_step(target.len()));
        Self::with_steps(source, target, steps)
    }

    /// An encoder indexing every `source_step`-th position of the source
    /// and every `target_step`-th of the target (powers of two).
    fn with_steps(
        source: &'a [u8],
        target: &'a [u8],
        (source_step, target_step): (usize, usize),
    ) -> Self {
        let mut source_index = HashChains::new(source.len(), source_step);
        source_index.insert_range(source, 0, source.len());
        DeltaEncoder {
            source,
            target,
            source_index,
            target_index: HashChains::new(target.len(), target_step),
            target_indexed: 0,
        }
    }

    fn index_target_up_to(&mut self, end: usize) {
        if self.target_indexed < end {
            let start = self.target_indexed;
            self.target_index.insert_range(self.target, start, end);
            self.target_indexed = end.next_multiple_of(self.target_index.step());
        }
    }

    fn encode(mut self, writer: &mut ActionWriter<'_>) {
        let mut position = 0;
        let mut look_ahead: Option<Option<Match>> = None;
        // Lookups since the last match: in data with nothing to copy, each
        // costs cache misses for nothing, so the encoder steps faster
        // (backward extension recovers the start of a match found late).
        let mut failed_lookups: usize = 0;
        while position < self.target.len() {
            self.index_target_up_to(position);
            let best = match look_ahead.take() {
                Some(found) => found,
                None => self.best_match(position, writer),
            };
            let Some(found) = best else {
                let step =
                    (1 + (failed_lookups >> SKIP_STRENGTH)).min(self.target.len() - position);
                writer.literal(step);
                position += step;
                failed_lookups += 1;
                continue;
            };
            failed_lookups = 0;
            if found.length < MAX_LAZY {
                // A literal now may let a better match start one byte later.
                self.index_target_up_to(position + 1);
                let next = self.best_match(position + 1, writer);
                if next.is_some_and(|next| next.gain > found.gain) {
                    writer.literal(1);
                    position += 1;
                    look_ahead = Some(next);
                    continue;
                }
            }
            let back = self.extend_backwards(&found, position, writer.pending_literals);
            writer.take_back_literals(back);
            let (from, length) = (found.from - back, found.length + back);
            match found.kind {
                MatchKind::SourceRead => writer.source_read(length),
                MatchKind::SourceCopy => writer.source_copy(from as u64, length),
                MatchKind::TargetCopy => writer.target_copy(from as u64, length),
            }
            position += found.length;
        }
    }

    /// How many of the pending literal bytes before `position` the match
    /// also covers when started earlier.
    fn extend_backwards(&self, found: &Match, position: usize, pending: usize) -> usize {
        let copied_from = match found.kind {
            MatchKind::SourceRead | MatchKind::SourceCopy => self.source,
            MatchKind::TargetCopy => self.target,
        };
        let limit = pending.min(found.from).min(position);
        let before_match = copied_from.get(found.from - limit..found.from);
        let before_here = self.target.get(position - limit..position);
        match (before_match, before_here) {
            (Some(a), Some(b)) => a
                .iter()
                .rev()
                .zip(b.iter().rev())
                .take_while(|(x, y)| x == y)
                .count(),
            _ => 0,
        }
    }

    /// The match at `position` that saves the most bytes, if any saves some.
    fn best_match(&self, position: usize, writer: &ActionWriter<'_>) -> Option<Match> {
        let rest = self.target.get(position..).filter(|r| !r.is_empty())?;
        let mut best: Option<Match> = None;
        let mut consider = |kind: MatchKind, from: usize, length: usize| {
            if length == 0 {
                return;
            }
            let mut cost = vlv_len(((length as u64) - 1) << 2);
            match kind {
                MatchKind::SourceRead => {}
                MatchKind::SourceCopy => {
                    cost += vlv_len(relative_word(writer.source_cursor, from as u64));
                }
                MatchKind::TargetCopy => {
                    cost += vlv_len(relative_word(writer.target_cursor, from as u64));
                }
            }
            // One more byte for the TargetRead a match may split in two.
            let gain = length as i64 - cost as i64 - 1;
            if gain > 0 && best.is_none_or(|b| gain > b.gain) {
                best = Some(Match {
                    kind,
                    from,
                    length,
                    gain,
                });
            }
        };

        let unchanged = common_prefix(self.source.get(position..).unwrap_or_default(), rest);
        consider(MatchKind::SourceRead, position, unchanged);
        if unchanged >= GOOD_MATCH {
            return best;
        }
        // Continuing where the last copies stopped costs the least.
        let source_next = writer.source_cursor as usize;
        let from_source_next =
            common_prefix(self.source.get(source_next..).unwrap_or_default(), rest);
        consider(MatchKind::SourceCopy, source_next, from_source_next);
        let target_next = writer.target_cursor as usize;
        let from_target_next = if target_next < position {
            common_prefix(self.target.get(target_next..).unwrap_or_default(), rest)
        } else {
            0
        };
        consider(MatchKind::TargetCopy, target_next, from_target_next);

        let mut longest = unchanged.max(from_source_next).max(from_target_next);
        // An index holds every `step`-th position, so a match starting here
        // is found through the window `offset` bytes in whose start is
        // indexed.
        for offset in 0..self.source_index.lookups() {
            let Some(window) = window_at(self.target, position + offset) else {
                break;
            };
            for candidate in self.source_index.candidates(window) {
                if longest >= GOOD_MATCH {
                    break;
                }
                let Some(start) = candidate.checked_sub(offset) else {
                    continue;
                };
                if !may_be_longer(self.source, start, rest, longest) {
                    continue;
                }
                let length = common_prefix(self.source.get(start..).unwrap_or_default(), rest);
                if length >= MIN_MATCH {
                    consider(MatchKind::SourceCopy, start, length);
                    longest = longest.max(length);
                }
            }
        }
        for offset in 0..self.target_index.lookups() {
            let Some(window) = window_at(self.target, position + offset) else {
                break;
            };
            for candidate in self.target_index.candidates(window) {
                if longest >= GOOD_MATCH {
                    break;
                }
                let Some(start) = candidate.checked_sub(offset) else {
                    continue;
                };
                if start >= position || !may_be_longer(self.target, start, rest, longest) {
                    continue;
                }
                // The target is known in full, so an overlapping copy compares
                // against the bytes it will itself have written.
                let length = common_prefix(self.target.get(start..).unwrap_or_default(), rest);
                if length >= MIN_MATCH {
                    consider(MatchKind::TargetCopy, start, length);
                    longest = longest.max(length);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> ApplyOptions {
        ApplyOptions::default()
    }

    /// Wraps `body` (after the magic) with checksums for `source`/`target`.
    fn assemble(body: &[u8], source: &[u8], target: &[u8]) -> Vec<u8> {
        let mut patch = MAGIC.to_vec();
        patch.extend_from_slice(body);
        patch.extend_from_slice(&crc32fast::hash(source).to_le_bytes());
        patch.extend_from_slice(&crc32fast::hash(target).to_le_bytes());
        let crc = crc32fast::hash(&patch);
        patch.extend_from_slice(&crc.to_le_bytes());
        patch
    }

    #[test]
    fn parses_each_action_kind() {
        // Source "AB"; each kind of action once, then an overlapping copy.
        let body = [
            0x82, 0x86, 0x80, // sizes 2 and 6, no metadata
            0x82, 0x82, // SourceCopy length 1 from +1: "B"
            0x81, b'A', // TargetRead "A"
            0x83, 0x80, // TargetCopy length 1 from +0 (offset 0): "B"
            0x8b, 0x80, // TargetCopy length 3 from +0 (offset 1): "ABA"
        ];
        let patch = assemble(&body, b"AB", b"BABABA");
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(
            parsed.actions,
            vec![
                BpsAction::SourceCopy {
                    source_offset: 1,
                    length: 1
                },
                BpsAction::TargetRead { bytes: b"A" },
                BpsAction::TargetCopy {
                    target_offset: 0,
                    length: 1
                },
                BpsAction::TargetCopy {
                    target_offset: 1,
                    length: 3
                },
            ]
        );
        assert_eq!(parsed.apply(b"AB", &opts()).unwrap(), b"BABABA");
        assert_eq!(parsed.output_size(2), 6);
    }

    #[test]
    fn metadata_is_exposed() {
        let patch = create_with_metadata(b"", b"x", "<a>é</a>".as_bytes()).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.metadata_text(), Some("<a>é</a>"));
        assert_eq!(parsed.apply(b"", &opts()).unwrap(), b"x");
    }

    #[test]
    fn linear_exact_bytes() {
        let source = b"0123456789";
        let target = b"0123X56789zzzzzz";
        let patch = create_linear(source, target).unwrap();
        let body = [
            0x8a, 0x90, 0x80, // sizes 10 and 16, no metadata
            0x8c, // SourceRead 4
            0x81, b'X', // TargetRead "X"
            0x90, // SourceRead 5
            0x81, b'z', // TargetRead "z"
            0x93, 0x94, // TargetCopy 5 from +10 (offset 10)
        ];
        assert_eq!(patch, assemble(&body, source, target));
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(
            parsed.actions,
            vec![
                BpsAction::SourceRead { length: 4 },
                BpsAction::TargetRead { bytes: b"X" },
                BpsAction::SourceRead { length: 5 },
                BpsAction::TargetRead { bytes: b"z" },
                BpsAction::TargetCopy {
                    target_offset: 10,
                    length: 5
                },
            ]
        );
        assert_eq!(parsed.apply(source, &opts()).unwrap(), target);
    }

    #[test]
    fn delta_finds_moved_blocks() {
        // Pseudo-random bytes, so the block occurs once in the source.
        let block: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut source = vec![0x11u8; 500];
        source.extend_from_slice(&block);
        let mut target = block.clone();
        target.extend_from_slice(&[0x22; 100]);
        let patch = create(&source, &target).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert!(
            patch.len() < 40,
            "patch is {} bytes: {:?}",
            patch.len(),
            parsed.actions
        );
        assert!(matches!(
            parsed.actions.first(),
            Some(BpsAction::SourceCopy {
                source_offset: 500,
                ..
            })
        ));
        assert_eq!(parsed.apply(&source, &opts()).unwrap(), target);
    }

    /// A delta patch made with the index steps large images get.
    fn create_with_steps(source: &[u8], target: &[u8], steps: (usize, usize)) -> Vec<u8> {
        let mut writer = ActionWriter::new(source, target, b"");
        DeltaEncoder::with_steps(source, target, steps).encode(&mut writer);
        writer.finish()
    }

    #[test]
    fn sparse_index_finds_copies_where_they_start() {
        let source: Vec<u8> = (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // Two blocks whose source offsets are not multiples of the step.
        let mut target = source[1001..21_001].to_vec();
        target.extend_from_slice(&source[30_003..50_003]);
        let patch = create_with_steps(&source, &target, (4, 4));
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.apply(&source, &opts()).unwrap(), target);
        assert_eq!(
            parsed.actions,
            [
                BpsAction::SourceCopy {
                    source_offset: 1001,
                    length: 20_000
                },
                BpsAction::SourceCopy {
                    source_offset: 30_003,
                    length: 20_000
                },
            ]
        );
    }

    #[test]
    fn sparse_target_index_finds_repeats_and_extends_them_back() {
        // The target index of images over 32 MiB holds every 16th position
        // and is looked up at the position only: a repeat starting 3 bytes
        // into the target is found some bytes late, and backward extension
        // gives the literals back to the copy.
        let mut state = 1u64;
        let block: Vec<u8> = (0..1001)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect();
        let mut target = block.clone();
        target.extend_from_slice(&block[3..903]);
        let patch = create_with_steps(b"", &target, (4, 16));
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.apply(b"", &opts()).unwrap(), target);
        assert_eq!(
            parsed.actions,
            [
                BpsAction::TargetRead { bytes: &block },
                BpsAction::TargetCopy {
                    target_offset: 3,
                    length: 900
                },
            ]
        );
    }

    #[test]
    fn huge_target_is_too_large_before_allocating() {
        let mut body = vec![0x80];
        write_vlv(&mut body, 1 << 60);
        body.push(0x80);
        let patch = assemble(&body, b"", b"");
        assert_eq!(
            parse(&patch, &Limits::default()),
            Err(PatchError::TooLarge {
                format: NAME,
                size: 1 << 60,
                max: Limits::DEFAULT_MAX_IMAGE_SIZE
            })
        );
    }

    fn parse_body(body: &[u8]) -> Result<BpsPatch<'static>, PatchError> {
        let patch = assemble(body, b"", b"").leak();
        parse(patch, &Limits::default())
    }

    #[test]
    fn hostile_actions_are_refused() {
        let corrupt_cases: &[&[u8]] = &[
            // SourceRead past a 1-byte source.
            &[0x81, 0x82, 0x80, 0x84],
            // SourceCopy before the start of the source.
            &[0x81, 0x81, 0x80, 0x82, 0x83],
            // SourceCopy past the end.
            &[0x81, 0x81, 0x80, 0x82, 0x82],
            // TargetCopy with nothing written.
            &[0x81, 0x81, 0x80, 0x83, 0x80],
            // TargetCopy reading ahead of the output.
            &[0x80, 0x82, 0x80, 0x81, b'a', 0x83, 0x82],
            // TargetRead longer than the target.
            &[0x80, 0x81, 0x80, 0x85, b'a', b'b'],
            // Too few bytes for the declared target.
            &[0x80, 0x82, 0x80, 0x81, b'a'],
            // Offset VLV overflows 64 bits.
            &[
                0x81, 0x81, 0x80, 0x82, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f,
                0x7f,
            ],
        ];
        for case in corrupt_cases {
            assert!(
                matches!(parse_body(case), Err(PatchError::Corrupt { .. })),
                "{case:02x?} gave {:?}",
                parse_body(case)
            );
        }
        // TargetRead data missing.
        assert!(matches!(
            parse_body(&[0x80, 0x82, 0x80, 0x85, b'a']),
            Err(PatchError::Truncated { .. })
        ));
        // Metadata longer than the patch.
        assert!(matches!(
            parse_body(&[0x80, 0x80, 0x90]),
            Err(PatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"BPS1\x80\x80", &Limits::default()),
            Err(PatchError::Truncated { .. })
        ));
    }

    #[test]
    fn checksums_are_checked() {
        let patch = create(b"source", b"target").unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert!(matches!(
            parsed.apply(b"sourcf", &opts()),
            Err(PatchError::ChecksumMismatch { what: "source", .. })
        ));
        let lenient = ApplyOptions {
            ignore_checksums: true,
            ..opts()
        };
        assert!(parsed.apply(b"sourcf", &lenient).is_ok());
        // A short source with checks off fails cleanly when read past its end.
        let linear = create_linear(b"abcdefgh", b"abcdefgX").unwrap();
        let parsed = parse(&linear, &Limits::default()).unwrap();
        assert!(matches!(
            parsed.apply(b"abc", &lenient),
            Err(PatchError::Unsupported { .. })
        ));
        let mut damaged = patch.clone();
        damaged[5] ^= 0x40;
        assert!(matches!(
            parse(&damaged, &Limits::default()),
            Err(PatchError::Damaged {
                checksum: "CRC32",
                ..
            })
        ));
        // A wrong target CRC (patch CRC recomputed) is caught after applying.
        let mut wrong_target = patch[..patch.len() - 4].to_vec();
        let at = wrong_target.len() - 1;
        wrong_target[at] ^= 1;
        let crc = crc32fast::hash(&wrong_target);
        wrong_target.extend_from_slice(&crc.to_le_bytes());
        let parsed = parse(&wrong_target, &Limits::default()).unwrap();
        assert!(matches!(
            parsed.apply(b"source", &opts()),
            Err(PatchError::WrongResult { .. })
        ));
    }

    fn similar_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(0u8..6, 0..3000),
            proptest::collection::vec(
                (any::<usize>(), any::<usize>(), 0usize..64, any::<u8>()),
                0..12,
            ),
            0usize..3500,
        )
            .prop_map(|(source, edits, new_len)| {
                let mut target = source.clone();
                target.resize(new_len, 0x5a);
                for (at, from, len, value) in edits {
                    let len = len.min(target.len());
                    let at = at % (target.len() - len + 1);
                    let from = from % (source.len() - len.min(source.len()) + 1);
                    if value % 2 == 0 {
                        // Move a block from elsewhere in the source.
                        for k in 0..len {
                            if let (Some(t), Some(s)) =
                                (target.get_mut(at + k), source.get(from + k))
                            {
                                *t = *s;
                            }
                        }
                    } else if let Some(t) = target.get_mut(at) {
                        *t = value;
                    }
                }
                (source, target)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes, &Limits::default());
        }

        #[test]
        fn valid_crc_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256),
                                          source in proptest::collection::vec(any::<u8>(), 0..64)) {
            let patch = assemble(&body, b"", b"");
            if let Ok(parsed) = parse(&patch, &Limits { max_image_size: 1 << 16 }) {
                let lenient = ApplyOptions { ignore_checksums: true, limits: Limits { max_image_size: 1 << 16 } };
                if let Ok(out) = parsed.apply(&source, &lenient) {
                    prop_assert_eq!(out.len() as u64, parsed.output_size(source.len() as u64));
                }
            }
        }

        #[test]
        fn random_pairs_round_trip(source in proptest::collection::vec(any::<u8>(), 0..2048),
                                   target in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for patch in [create(&source, &target).unwrap(), create_linear(&source, &target).unwrap()] {
                let parsed = parse(&patch, &Limits::default()).unwrap();
                prop_assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
                prop_assert_eq!(&parsed.apply(&source, &opts()).unwrap(), &target);
            }
        }

        #[test]
        fn sparse_index_round_trips((source, target) in similar_pair(), shift in 1u32..5) {
            let steps = (1 << shift, 1 << (5 - shift));
            let patch = create_with_steps(&source, &target, steps);
            let parsed = parse(&patch, &Limits::default()).unwrap();
            prop_assert_eq!(&parsed.apply(&source, &opts()).unwrap(), &target);
        }

        #[test]
        fn similar_pairs_round_trip((source, target) in similar_pair()) {
            let delta = create(&source, &target).unwrap();
            let linear = create_linear(&source, &target).unwrap();
            for patch in [&delta, &linear] {
                let parsed = parse(patch, &Limits::default()).unwrap();
                prop_assert_eq!(&parsed.apply(&source, &opts()).unwrap(), &target);
            }
        }
    }
}
