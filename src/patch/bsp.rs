//! BSP, the binary scripted patch of aaaaaa123456789 (ax6): the patch is a
//! program. Its bytecode (specification 0.6.0) works on a file buffer that
//! starts as the source, with 256 word variables, a stack, a current file
//! pointer that can be locked, a message buffer, SHA-1 checks, embedded IPS
//! patches and nested BSPs; the script's exit status 0 means the buffer is
//! the result.
//!
//! It runs here in a bounded interpreter: a budget of instruction steps
//! (bulk operations count per 64 bytes they touch), the file buffer no
//! larger than `--max-size`, a bounded stack and nesting depth, and no
//! access to anything outside the script and the buffer. `print` output is
//! collected and logged; a `menu` takes its first option (nobody is there
//! to choose), and says so.
//!
//! No format magic exists: a `.bsp` file name says it is one.

mod decode;

use sha1::Digest;

use self::decode::{
    Calc, Condition, DecodeError, Instr, LongKind, Operand, SeekKind, ShiftKind, decode,
};
use super::{ApplyOptions, Limits, PatchError, PatchSummary};

pub const NAME: &str = "BSP";

/// Instruction steps one run may take: far more than any real patch needs
/// (they spend their time in bulk instructions), and a few seconds of work.
pub const INSTRUCTION_BUDGET: u64 = 1 << 30;
/// A bulk instruction costs one more step per this many bytes it touches.
const BYTES_PER_STEP: u64 = 64;
/// Words on the stacks of all running scripts together.
pub const MAX_STACK_WORDS: usize = 1 << 20;
/// How deep `bsppatch` may nest scripts.
pub const MAX_NESTING: u32 = 16;
/// The message buffer, and one printed message, hold at most this much.
const MAX_MESSAGE_LEN: usize = 4096;
/// Messages kept from one run; later ones are counted, not kept.
const MAX_MESSAGES: usize = 256;
/// The patch space and the file buffer are at most 4 GiB - 1 bytes.
const MAX_SPACE: u64 = u32::MAX as u64;
const SHA1_LEN: usize = 20;
/// What `info` shows of a script's messages.
const MESSAGES_SHOWN: usize = 8;

/// A BSP script with what reading it (not running it) finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BspPatch<'a> {
    pub script: &'a [u8],
    /// SHA-1s the script compares the untouched input with.
    pub source_sha1s: Vec<[u8; SHA1_LEN]>,
    /// SHA-1s it compares the buffer with after changing it.
    pub result_sha1s: Vec<[u8; SHA1_LEN]>,
    /// Text it prints or offers in menus, in the order found.
    pub messages: Vec<String>,
    pub has_menu: bool,
}

/// What running a script gives besides the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BspRun {
    pub image: Vec<u8>,
    pub messages: Vec<String>,
}

pub fn parse<'a>(bytes: &'a [u8], _limits: &Limits) -> Result<BspPatch<'a>, PatchError> {
    if bytes.is_empty() {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: "the script is empty".into(),
        });
    }
    if bytes.len() as u64 > MAX_SPACE {
        return Err(PatchError::Corrupt {
            format: NAME,
            detail: format!(
                "the script is {} bytes, over the 4 GiB - 1 a BSP can be",
                bytes.len()
            ),
        });
    }
    let mut patch = BspPatch {
        script: bytes,
        source_sha1s: Vec::new(),
        result_sha1s: Vec::new(),
        messages: Vec::new(),
        has_menu: false,
    };
    patch.read_statically();
    Ok(patch)
}

impl<'a> BspPatch<'a> {
    /// No size or checksum is stated: only running the script tells.
    pub fn summary(&self) -> PatchSummary {
        PatchSummary::default()
    }

    /// Whether the script checks its input's SHA-1 before changing it.
    pub fn verifies_source(&self) -> bool {
        !self.source_sha1s.is_empty()
    }

    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let run = self.run(source, opts, INSTRUCTION_BUDGET)?;
        for message in &run.messages {
            log::info!("BSP script says: {}", crate::text::str_as_text(message));
        }
        Ok(run.image)
    }

    /// Runs the script on `source` within `budget` instruction steps.
    /// With `opts.ignore_checksums`, SHA-1 checks of the input report a
    /// match (the script then takes its path for the expected input).
    pub fn run(
        &self,
        source: &[u8],
        opts: &ApplyOptions,
        budget: u64,
    ) -> Result<BspRun, PatchError> {
        let max_size = opts.limits.max_image_size.min(MAX_SPACE);
        if source.len() as u64 > max_size {
            return Err(PatchError::TooLarge {
                format: NAME,
                size: source.len() as u64,
                max: max_size,
            });
        }
        let mut machine = Machine {
            buffer: source.to_vec(),
            pointer: 0,
            locked: false,
            touched: false,
            sha1: None,
            steps: 0,
            budget,
            max_size,
            stack_words: 0,
            messages: Vec::new(),
            dropped_messages: 0,
            source_checks: Vec::new(),
            pretend_source_matches: opts.ignore_checksums,
        };
        let status = machine.run_script(self.script, 0)?;
        if machine.dropped_messages > 0 {
            machine.messages.push(format!(
                "({} more messages not kept)",
                machine.dropped_messages
            ));
        }
        if status == 0 {
            return Ok(BspRun {
                image: machine.buffer,
                messages: machine.messages,
            });
        }
        // A script that failed after every check of its input failed was
        // given the wrong input: that is a mismatch, worth another layout.
        if !machine.source_checks.is_empty() && machine.source_checks.iter().all(|c| !c.matched) {
            let expected: Vec<String> = machine
                .source_checks
                .iter()
                .map(|c| format!("SHA-1 {}", crate::digest::hex(&c.expected)))
                .collect();
            return Err(PatchError::ChecksumMismatch {
                format: NAME,
                what: "source",
                expected: expected.join(" or "),
                actual: format!("SHA-1 {}", crate::digest::hex(&sha1_of(source))),
            });
        }
        let said = match machine.messages.last() {
            Some(message) => format!(" (its last message: {})", crate::text::str_as_text(message)),
            None => String::new(),
        };
        Err(PatchError::Unsupported {
            format: NAME,
            detail: format!("its script stopped with exit status {status}{said}"),
        })
    }

    /// Follows the script from address 0 along every branch whose target
    /// is a constant, noting SHA-1 checks (of the input while nothing has
    /// written to it, else of a result) and the text it prints. Bounded:
    /// each address is visited at most twice (before and after a write).
    fn read_statically(&mut self) {
        let space = self.script;
        let mut seen = vec![0u8; space.len()];
        let mut pending: Vec<(u32, bool)> = vec![(0, false)];
        while let Some((address, touched)) = pending.pop() {
            let mark = if touched { 2 } else { 1 };
            match seen.get_mut(address as usize) {
                Some(flags) if *flags & mark == 0 => *flags |= mark,
                _ => continue,
            }
            let Ok((instr, next)) = decode(space, address) else {
                continue;
            };
            let follow = |target: Operand, pending: &mut Vec<(u32, bool)>, now: bool| {
                if let Operand::Imm(target) = target {
                    pending.push((target, now));
                }
            };
            let writes = matches!(
                instr,
                Instr::Write { .. }
                    | Instr::Truncate(_)
                    | Instr::TruncatePos
                    | Instr::Data { .. }
                    | Instr::Fill { .. }
                    | Instr::IpsPatch { .. }
                    | Instr::BspPatch { .. }
            );
            let after = touched || writes;
            match instr {
                Instr::Jump(target) => {
                    follow(target, &mut pending, after);
                    continue;
                }
                Instr::Exit(_) | Instr::Return | Instr::JumpTable(_) => continue,
                Instr::Call(target) | Instr::If { target, .. } | Instr::Branch { target, .. } => {
                    follow(target, &mut pending, after)
                }
                Instr::CheckSha1 {
                    address: Operand::Imm(at),
                    ..
                } => {
                    if let Some(hash) = read_array::<SHA1_LEN>(space, at) {
                        let list = if touched {
                            &mut self.result_sha1s
                        } else {
                            &mut self.source_sha1s
                        };
                        if !list.contains(&hash) {
                            list.push(hash);
                        }
                    }
                }
                Instr::Print(Operand::Imm(at)) | Instr::BufString(Operand::Imm(at)) => {
                    if let Some(text) = string_at(space, at).ok().filter(|t| !t.is_empty())
                        && self.messages.len() < MESSAGES_SHOWN
                        && !self.messages.contains(&text)
                    {
                        self.messages.push(text);
                    }
                }
                Instr::Menu { .. } => self.has_menu = true,
                _ => {}
            }
            pending.push((next, after));
        }
    }
}

fn read_array<const N: usize>(space: &[u8], at: u32) -> Option<[u8; N]> {
    let start = at as usize;
    space.get(start..start.checked_add(N)?)?.try_into().ok()
}

fn sha1_of(bytes: &[u8]) -> [u8; SHA1_LEN] {
    sha1::Sha1::digest(bytes).into()
}

/// The NUL-terminated UTF-8 string at `at` in the patch space.
fn string_at(space: &[u8], at: u32) -> Result<String, String> {
    let rest = space
        .get(at as usize..)
        .ok_or_else(|| format!("a string at {at:#x} starts past the end of the script"))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("the string at {at:#x} has no NUL byte before the script ends"))?;
    let text = std::str::from_utf8(&rest[..end])
        .map_err(|_| format!("the string at {at:#x} is not valid UTF-8"))?;
    Ok(truncated(text, MAX_MESSAGE_LEN).to_string())
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Why a run stopped early.
enum Stop {
    /// A fatal error the specification names (bad opcode, reading past an
    /// end, division by zero...).
    Fatal(String),
    /// A bound of this interpreter, already a user-facing error.
    Limit(PatchError),
}

impl From<String> for Stop {
    fn from(detail: String) -> Self {
        Stop::Fatal(detail)
    }
}

impl From<&str> for Stop {
    fn from(detail: &str) -> Self {
        Stop::Fatal(detail.to_string())
    }
}

struct SourceCheck {
    expected: [u8; SHA1_LEN],
    matched: bool,
}

/// What all nested scripts share: the file buffer and its pointer, the
/// budget, and what the run reports.
struct Machine {
    buffer: Vec<u8>,
    pointer: u32,
    locked: bool,
    /// Whether anything has written to the buffer yet.
    touched: bool,
    /// The buffer's SHA-1 while it is unchanged since computing it.
    sha1: Option<[u8; SHA1_LEN]>,
    steps: u64,
    budget: u64,
    max_size: u64,
    stack_words: usize,
    messages: Vec<String>,
    dropped_messages: usize,
    source_checks: Vec<SourceCheck>,
    pretend_source_matches: bool,
}

/// One script's own state.
struct Frame<'s> {
    space: &'s [u8],
    ip: u32,
    vars: [u32; 256],
    stack: Vec<u32>,
    message: String,
    /// The message buffer overflowed: appends are ignored until cleared.
    message_full: bool,
}

impl<'s> Frame<'s> {
    fn value(&self, operand: Operand) -> u32 {
        match operand {
            Operand::Imm(value) => value,
            Operand::Var(var) => self.vars[usize::from(var)],
        }
    }

    fn set(&mut self, var: u8, value: u32) {
        self.vars[usize::from(var)] = value;
    }

    fn read_space(&self, at: u32, width: u8) -> Result<u32, Stop> {
        let start = at as usize;
        let bytes = start
            .checked_add(usize::from(width))
            .and_then(|end| self.space.get(start..end))
            .ok_or_else(|| {
                format!("it reads {width} bytes at address {at:#x}, past the end of the script")
            })?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    fn space_slice(&self, at: u32, len: u32) -> Result<&'s [u8], Stop> {
        let start = at as usize;
        start
            .checked_add(len as usize)
            .and_then(|end| self.space.get(start..end))
            .ok_or_else(|| {
                Stop::Fatal(format!(
                    "it reads {len} bytes at address {at:#x}, past the end of the script"
                ))
            })
    }

    /// Appends to the message buffer, or drops this and every later append
    /// once it is full, as the specification asks.
    fn buffer_text(&mut self, text: &str) {
        if self.message_full {
            return;
        }
        if self.message.len() + text.len() > MAX_MESSAGE_LEN {
            self.message_full = true;
            return;
        }
        self.message.push_str(text);
    }
}

fn stack_index(len: usize, position: u32) -> Option<usize> {
    let signed = position as i32;
    if signed >= 0 {
        let from_top = usize::try_from(signed).ok()?;
        (from_top < len).then(|| len - 1 - from_top)
    } else {
        let from_bottom = usize::try_from(-(i64::from(signed)) - 1).ok()?;
        (from_bottom < len).then_some(from_bottom)
    }
}

impl Machine {
    /// Runs the script in `space` (nested `depth` deep) to its exit status.
    fn run_script(&mut self, space: &[u8], depth: u32) -> Result<u32, PatchError> {
        let mut frame = Frame {
            space,
            ip: 0,
            vars: [0; 256],
            stack: Vec::new(),
            message: String::new(),
            message_full: false,
        };
        let outcome = self.execute(&mut frame, depth);
        self.stack_words -= frame.stack.len();
        outcome
    }

    fn execute(&mut self, frame: &mut Frame<'_>, depth: u32) -> Result<u32, PatchError> {
        loop {
            let at = frame.ip;
            match self.step(frame, depth) {
                Ok(None) => {}
                Ok(Some(status)) => return Ok(status),
                Err(Stop::Limit(error)) => return Err(error),
                Err(Stop::Fatal(detail)) => {
                    let nested = if depth > 0 {
                        format!(" of a script nested {depth} deep")
                    } else {
                        String::new()
                    };
                    return Err(PatchError::Corrupt {
                        format: NAME,
                        detail: format!("at address {at:#x}{nested}: {detail}"),
                    });
                }
            }
        }
    }

    fn charge(&mut self, bytes: u64) -> Result<(), Stop> {
        self.steps += 1 + bytes / BYTES_PER_STEP;
        if self.steps > self.budget {
            return Err(Stop::Limit(PatchError::Unsupported {
                format: NAME,
                detail: format!(
                    "the script ran more than {} instructions; a runaway loop?",
                    self.budget
                ),
            }));
        }
        Ok(())
    }

    fn push(&mut self, frame: &mut Frame<'_>, value: u32) -> Result<(), Stop> {
        self.grow_stack(frame, 1)?;
        frame.stack.push(value);
        Ok(())
    }

    fn grow_stack(&mut self, frame: &mut Frame<'_>, words: u64) -> Result<(), Stop> {
        let total = self.stack_words as u64 + words;
        if total > MAX_STACK_WORDS as u64 {
            return Err(Stop::Limit(PatchError::Unsupported {
                format: NAME,
                detail: format!(
                    "the script's stack grew past {MAX_STACK_WORDS} words; a runaway recursion?"
                ),
            }));
        }
        self.stack_words = total as usize;
        frame.stack.reserve(words as usize);
        Ok(())
    }

    fn pop(&mut self, frame: &mut Frame<'_>, what: &str) -> Result<u32, Stop> {
        let value = frame
            .stack
            .pop()
            .ok_or_else(|| format!("{what} with an empty stack"))?;
        self.stack_words -= 1;
        Ok(value)
    }

    fn shrink_stack(&mut self, frame: &mut Frame<'_>, words: usize) -> Result<(), Stop> {
        let len = frame.stack.len();
        let kept = len
            .checked_sub(words)
            .ok_or_else(|| format!("it drops {words} values from a stack of {len}"))?;
        frame.stack.truncate(kept);
        self.stack_words -= words;
        Ok(())
    }

    fn advance(&mut self, by: u64) {
        if !self.locked {
            // Writes keep their end within 4 GiB - 1, reads within the buffer.
            self.pointer = (u64::from(self.pointer) + by).min(MAX_SPACE) as u32;
        }
    }

    /// Makes the buffer at least `end` bytes long (zero-filled).
    fn reach(&mut self, end: u64) -> Result<(), Stop> {
        if end > MAX_SPACE {
            return Err(Stop::Fatal(format!(
                "it writes up to byte {end:#x}, past the 4 GiB - 1 a BSP file buffer can hold"
            )));
        }
        if end > self.max_size {
            return Err(Stop::Limit(PatchError::TooLarge {
                format: NAME,
                size: end,
                max: self.max_size,
            }));
        }
        if end > self.buffer.len() as u64 {
            self.buffer.resize(end as usize, 0);
        }
        Ok(())
    }

    fn changed(&mut self) {
        self.touched = true;
        self.sha1 = None;
    }

    /// The buffer bytes `at..at + len`, grown to hold them.
    fn window(&mut self, at: u32, len: u64) -> Result<&mut [u8], Stop> {
        self.charge(len)?;
        let end = u64::from(at) + len;
        self.reach(end)?;
        self.changed();
        Ok(&mut self.buffer[at as usize..end as usize])
    }

    fn write_at(&mut self, at: u32, bytes: &[u8]) -> Result<(), Stop> {
        self.window(at, bytes.len() as u64)?.copy_from_slice(bytes);
        Ok(())
    }

    fn read_buffer(&self, at: u32, width: u8) -> Result<u32, Stop> {
        let start = at as usize;
        let bytes = start
            .checked_add(usize::from(width))
            .and_then(|end| self.buffer.get(start..end))
            .ok_or_else(|| {
                format!(
                    "it reads {width} bytes at position {at:#x} of a {}-byte file buffer",
                    self.buffer.len()
                )
            })?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    fn say(&mut self, text: String) {
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(text);
        } else {
            self.dropped_messages += 1;
        }
    }

    fn resize(&mut self, len: u32) -> Result<(), Stop> {
        let len = u64::from(len);
        self.charge(len.saturating_sub(self.buffer.len() as u64))?;
        self.reach(len)?;
        self.buffer.truncate(len as usize);
        self.changed();
        Ok(())
    }

    /// Executes one instruction; `Some(status)` when the script exits.
    fn step(&mut self, frame: &mut Frame<'_>, depth: u32) -> Result<Option<u32>, Stop> {
        self.charge(0)?;
        let at = frame.ip;
        let (instr, next) = decode(frame.space, at).map_err(|error| match error {
            DecodeError::CutShort => {
                Stop::Fatal("the instruction there runs past the end of the script".to_string())
            }
            DecodeError::Undefined(op) => Stop::Fatal(format!("opcode {op:#04x} is not defined")),
        })?;
        frame.ip = next;
        match instr {
            Instr::Nop => {}
            Instr::Return => {
                if frame.stack.is_empty() {
                    return Ok(Some(0));
                }
                frame.ip = self.pop(frame, "return")?;
            }
            Instr::ReturnIf { var, when_zero } => {
                if (frame.vars[usize::from(var)] == 0) == when_zero {
                    if frame.stack.is_empty() {
                        return Ok(Some(0));
                    }
                    frame.ip = self.pop(frame, "return")?;
                }
            }
            Instr::Jump(target) => frame.ip = frame.value(target),
            Instr::Call(target) => {
                let target = frame.value(target);
                self.push(frame, next)?;
                frame.ip = target;
            }
            Instr::Branch {
                call,
                when_zero,
                var,
                target,
            } => {
                if (frame.vars[usize::from(var)] == 0) == when_zero {
                    let target = frame.value(target);
                    if call {
                        self.push(frame, next)?;
                    }
                    frame.ip = target;
                }
            }
            Instr::If {
                condition,
                var,
                value,
                target,
            } => {
                let (left, right) = (frame.vars[usize::from(var)], frame.value(value));
                let taken = match condition {
                    Condition::Less => left < right,
                    Condition::LessOrEqual => left <= right,
                    Condition::Greater => left > right,
                    Condition::GreaterOrEqual => left >= right,
                    Condition::Equal => left == right,
                    Condition::NotEqual => left != right,
                };
                if taken {
                    frame.ip = frame.value(target);
                }
            }
            Instr::JumpTable(var) => {
                let entry = u64::from(frame.vars[usize::from(var)])
                    .checked_mul(4)
                    .and_then(|offset| offset.checked_add(u64::from(next)))
                    .filter(|&entry| entry <= MAX_SPACE)
                    .ok_or_else(|| "its jump table index reaches past 4 GiB".to_string())?;
                frame.ip = frame.read_space(entry as u32, 4)?;
            }
            Instr::Exit(status) => return Ok(Some(frame.value(status))),
            Instr::Push(value) => {
                let value = frame.value(value);
                self.push(frame, value)?;
            }
            Instr::Pop(var) => {
                let value = self.pop(frame, "pop")?;
                frame.set(var, value);
            }
            Instr::PushPos => {
                let pointer = self.pointer;
                self.push(frame, pointer)?;
            }
            Instr::PopPos => {
                let value = self.pop(frame, "poppos")?;
                if !self.locked {
                    self.pointer = value;
                }
            }
            Instr::StackRead { var, position } => {
                let position = frame.value(position);
                let index = stack_index(frame.stack.len(), position).ok_or_else(|| {
                    format!(
                        "stackread of position {} in a stack of {}",
                        position as i32,
                        frame.stack.len()
                    )
                })?;
                let value = frame.stack[index];
                frame.set(var, value);
            }
            Instr::StackWrite { position, value } => {
                let (position, value) = (frame.value(position), frame.value(value));
                let index = stack_index(frame.stack.len(), position).ok_or_else(|| {
                    format!(
                        "stackwrite to position {} in a stack of {}",
                        position as i32,
                        frame.stack.len()
                    )
                })?;
                frame.stack[index] = value;
            }
            Instr::StackShift(amount) => {
                let amount = frame.value(amount) as i32;
                if amount >= 0 {
                    self.resize_stack(frame, frame.stack.len() as u64 + amount as u64)?;
                } else {
                    self.shrink_stack(frame, amount.unsigned_abs() as usize)?;
                }
            }
            Instr::SetStackSize(size) => {
                let size = frame.value(size);
                self.resize_stack(frame, u64::from(size))?;
            }
            Instr::GetStackSize(var) => {
                let size = u32::try_from(frame.stack.len()).unwrap_or(u32::MAX);
                frame.set(var, size);
            }
            Instr::Set { var, value } => {
                let value = frame.value(value);
                frame.set(var, value);
            }
            Instr::Increment(var) => {
                let value = frame.vars[usize::from(var)].wrapping_add(1);
                frame.set(var, value);
            }
            Instr::Decrement(var) => {
                let value = frame.vars[usize::from(var)].wrapping_sub(1);
                frame.set(var, value);
            }
            Instr::GetVariable { dest, index_var } => {
                let index = frame.vars[usize::from(index_var)] & 0xff;
                frame.set(dest, frame.vars[index as usize]);
            }
            Instr::Calc { kind, dest, a, b } => {
                let (a, b) = (frame.value(a), frame.value(b));
                let result = match kind {
                    Calc::Add => a.wrapping_add(b),
                    Calc::Subtract => a.wrapping_sub(b),
                    Calc::Multiply => a.wrapping_mul(b),
                    Calc::Divide => a.checked_div(b).ok_or("a division by zero")?,
                    Calc::Remainder => a
                        .checked_rem(b)
                        .ok_or("a remainder of a division by zero")?,
                    Calc::And => a & b,
                    Calc::Or => a | b,
                    Calc::Xor => a ^ b,
                };
                frame.set(dest, result);
            }
            Instr::Shift {
                kind,
                dest,
                value,
                count,
            } => {
                let (value, count) = (frame.value(value), frame.value(count) & 31);
                let result = match kind {
                    ShiftKind::Left => value << count,
                    ShiftKind::Right => value >> count,
                    ShiftKind::RotateLeft => value.rotate_left(count),
                    ShiftKind::RightArithmetic => ((value as i32) >> count) as u32,
                };
                frame.set(dest, result);
            }
            Instr::Long {
                kind,
                low,
                high,
                a,
                b,
            } => {
                let (a, b) = (frame.value(a), frame.value(b));
                self.long_calc(frame, kind, low, high, a, b);
            }
            Instr::Get {
                var,
                width,
                address,
            } => {
                let value = frame.read_space(frame.value(address), width)?;
                frame.set(var, value);
            }
            Instr::GetStep {
                var,
                width,
                address_var,
                forward,
            } => {
                let address = frame.vars[usize::from(address_var)];
                let value = frame.read_space(address, width)?;
                let moved = if forward {
                    address.wrapping_add(u32::from(width))
                } else {
                    address.wrapping_sub(u32::from(width))
                };
                frame.set(address_var, moved);
                // The same variable for both: it keeps the value read.
                frame.set(var, value);
            }
            Instr::Length(var) => frame.set(var, self.buffer.len() as u32),
            Instr::Pos(var) => frame.set(var, self.pointer),
            Instr::Read {
                var,
                width,
                advance,
            } => {
                let value = self.read_buffer(self.pointer, width)?;
                frame.set(var, value);
                if advance {
                    self.advance(u64::from(width));
                }
            }
            Instr::Write { width, value } => {
                let bytes = frame.value(value).to_le_bytes();
                self.write_at(self.pointer, &bytes[..usize::from(width)])?;
                self.advance(u64::from(width));
            }
            Instr::Fill {
                width,
                count,
                value,
            } => {
                let (count, value) = (frame.value(count), frame.value(value));
                let pattern = value.to_le_bytes();
                let pattern = &pattern[..usize::from(width)];
                let len = u64::from(count) * u64::from(width);
                let window = self.window(self.pointer, len)?;
                for chunk in window.chunks_exact_mut(usize::from(width)) {
                    chunk.copy_from_slice(pattern);
                }
                self.advance(len);
            }
            Instr::Data {
                xor,
                address,
                length,
            } => {
                let (address, length) = (frame.value(address), frame.value(length));
                let data = frame.space_slice(address, length)?;
                let window = self.window(self.pointer, u64::from(length))?;
                if xor {
                    // Past the old end the buffer was zero: XOR is a copy.
                    for (byte, patch_byte) in window.iter_mut().zip(data) {
                        *byte ^= patch_byte;
                    }
                } else {
                    window.copy_from_slice(data);
                }
                self.advance(u64::from(length));
            }
            Instr::Truncate(len) => {
                let len = frame.value(len);
                self.resize(len)?;
            }
            Instr::TruncatePos => self.resize(self.pointer)?,
            Instr::LockPos => self.locked = true,
            Instr::UnlockPos => self.locked = false,
            Instr::Seek { kind, value } => {
                let value = frame.value(value);
                if !self.locked {
                    let len = self.buffer.len() as u32;
                    self.pointer = match kind {
                        SeekKind::To => Some(value),
                        SeekKind::Forward => self.pointer.checked_add(value),
                        SeekKind::Back => self.pointer.checked_sub(value),
                        SeekKind::FromEnd => len.checked_sub(value),
                    }
                    .ok_or_else(|| {
                        format!(
                            "a seek by {value} from position {} overflows",
                            match kind {
                                SeekKind::FromEnd => len,
                                _ => self.pointer,
                            }
                        )
                    })?;
                }
            }
            Instr::CheckSha1 { var, address } => {
                let expected: [u8; SHA1_LEN] = frame
                    .space_slice(frame.value(address), SHA1_LEN as u32)?
                    .try_into()
                    .map_err(|_| "a short SHA-1".to_string())?;
                let actual = match self.sha1 {
                    Some(hash) => hash,
                    None => {
                        self.charge(self.buffer.len() as u64 / 8)?;
                        let hash = sha1_of(&self.buffer);
                        self.sha1 = Some(hash);
                        hash
                    }
                };
                let mut mask = 0u32;
                for (bit, (a, b)) in actual.iter().zip(&expected).enumerate() {
                    if a != b {
                        mask |= 1 << bit;
                    }
                }
                if !self.touched {
                    if self.pretend_source_matches {
                        mask = 0;
                    }
                    self.source_checks.push(SourceCheck {
                        expected,
                        matched: mask == 0,
                    });
                }
                frame.set(var, mask);
            }
            Instr::IpsPatch { var, address } => {
                let end = self.ips_patch(frame, frame.value(address))?;
                frame.set(var, end);
            }
            Instr::BspPatch {
                var,
                address,
                length,
            } => {
                if depth + 1 > MAX_NESTING {
                    return Err(Stop::Limit(PatchError::Unsupported {
                        format: NAME,
                        detail: format!("its scripts nest more than {MAX_NESTING} deep"),
                    }));
                }
                let (address, length) = (frame.value(address), frame.value(length));
                let child = frame.space_slice(address, length)?;
                let status = self.run_script(child, depth + 1).map_err(Stop::Limit)?;
                frame.set(var, status);
            }
            Instr::Print(address) => {
                let text = string_at(frame.space, frame.value(address))?;
                self.say(text);
            }
            Instr::BufString(address) => {
                let text = string_at(frame.space, frame.value(address))?;
                frame.buffer_text(&text);
            }
            Instr::BufChar(value) => {
                let value = frame.value(value);
                let character = char::from_u32(value).ok_or_else(|| {
                    format!("bufchar of {value:#x}, which is no Unicode character")
                })?;
                frame.buffer_text(character.encode_utf8(&mut [0; 4]));
            }
            Instr::BufNumber(value) => {
                let text = frame.value(value).to_string();
                frame.buffer_text(&text);
            }
            Instr::PrintBuf => {
                let text = std::mem::take(&mut frame.message);
                frame.message_full = false;
                self.say(text);
            }
            Instr::ClearBuf => {
                frame.message.clear();
                frame.message_full = false;
            }
            Instr::Menu { var, address } => {
                let choice = self.menu(frame, frame.value(address))?;
                frame.set(var, choice);
            }
        }
        Ok(None)
    }

    fn resize_stack(&mut self, frame: &mut Frame<'_>, size: u64) -> Result<(), Stop> {
        let len = frame.stack.len() as u64;
        if size >= len {
            self.charge(size - len)?;
            self.grow_stack(frame, size - len)?;
            frame.stack.resize(size as usize, 0);
            Ok(())
        } else {
            self.shrink_stack(frame, (len - size) as usize)
        }
    }

    fn long_calc(
        &mut self,
        frame: &mut Frame<'_>,
        kind: LongKind,
        low: u8,
        high: u8,
        a: u32,
        b: u32,
    ) {
        let same = low == high;
        let high_value = frame.vars[usize::from(high)];
        match kind {
            LongKind::AddCarry => {
                let (sum, carried) = a.overflowing_add(b);
                if !same {
                    frame.set(low, sum);
                }
                frame.set(high, high_value.wrapping_add(u32::from(carried)));
            }
            LongKind::SubBorrow => {
                let (difference, borrowed) = a.overflowing_sub(b);
                if !same {
                    frame.set(low, difference);
                }
                frame.set(high, high_value.wrapping_sub(u32::from(borrowed)));
            }
            LongKind::Multiply => {
                let product = u64::from(a) * u64::from(b);
                frame.set(low, product as u32);
                // The same variable keeps the high word.
                frame.set(high, (product >> 32) as u32);
            }
            LongKind::MultiplyAccumulate => {
                let low_value = frame.vars[usize::from(low)];
                let total = ((u64::from(high_value) << 32) | u64::from(low_value))
                    .wrapping_add(u64::from(a) * u64::from(b));
                frame.set(high, (total >> 32) as u32);
                // The same variable keeps the low word.
                frame.set(low, total as u32);
            }
        }
    }

    /// Applies the IPS patch at `address` of the patch space at the
    /// current file pointer; returns the address after its `EOF`.
    fn ips_patch(&mut self, frame: &Frame<'_>, address: u32) -> Result<u32, Stop> {
        if frame.space_slice(address, 5)? != b"PATCH" {
            return Err(Stop::Fatal(format!(
                "the IPS patch at address {address:#x} does not start with PATCH"
            )));
        }
        let base = self.pointer;
        let mut at = address + 5;
        loop {
            self.charge(0)?;
            let offset = read_big_endian(frame.space_slice(at, 3)?);
            at += 3;
            if offset == 0x454f46 {
                return Ok(at);
            }
            let position = base.checked_add(offset).ok_or_else(|| {
                format!("an IPS record at {offset:#x} from position {base:#x} reaches past 4 GiB")
            })?;
            let size = read_big_endian(frame.space_slice(at, 2)?);
            at += 2;
            if size != 0 {
                let data = frame.space_slice(at, size)?;
                at += size;
                self.write_at(position, data)?;
            } else {
                let count = read_big_endian(frame.space_slice(at, 2)?);
                let value = frame.space_slice(at + 2, 1)?[0];
                at += 3;
                self.window(position, u64::from(count))?.fill(value);
            }
        }
    }

    /// Nobody can choose: the first option is taken, and said.
    fn menu(&mut self, frame: &Frame<'_>, address: u32) -> Result<u32, Stop> {
        let mut options = Vec::new();
        let mut at = address;
        loop {
            self.charge(0)?;
            let pointer = frame.read_space(at, 4)?;
            if pointer == u32::MAX {
                break;
            }
            options.push(string_at(frame.space, pointer)?);
            at = at
                .checked_add(4)
                .ok_or_else(|| "a menu's list runs past 4 GiB".to_string())?;
        }
        if options.is_empty() {
            return Ok(u32::MAX);
        }
        let shown = options.join(" / ");
        self.say(format!(
            "menu: took the first option, {:?}, of {}: {}",
            options[0],
            options.len(),
            truncated(&shown, MAX_MESSAGE_LEN)
        ));
        Ok(0)
    }
}

fn read_big_endian(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

#[cfg(test)]
mod tests;
