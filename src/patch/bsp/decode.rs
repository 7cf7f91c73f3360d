//! Instruction decoding, shared by the interpreter and the static reading
//! `info` does: one table of opcodes, from the specification's opcode list.

/// An operand the specification calls "any": an immediate or a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Imm(u32),
    Var(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calc {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekKind {
    To,
    Forward,
    Back,
    FromEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftKind {
    Left,
    Right,
    RotateLeft,
    RightArithmetic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongKind {
    AddCarry,
    SubBorrow,
    Multiply,
    MultiplyAccumulate,
}

/// One decoded instruction. Widths are in bytes (1, 2 or 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instr {
    Nop,
    Return,
    Jump(Operand),
    Call(Operand),
    Exit(Operand),
    Push(Operand),
    Pop(u8),
    Length(u8),
    /// `readbyte` and kin (`advance`), `getfilebyte` and kin (not).
    Read {
        var: u8,
        width: u8,
        advance: bool,
    },
    Pos(u8),
    Get {
        var: u8,
        width: u8,
        address: Operand,
    },
    /// `getbyteinc` / `getbytedec` and kin.
    GetStep {
        var: u8,
        width: u8,
        address_var: u8,
        forward: bool,
    },
    CheckSha1 {
        var: u8,
        address: Operand,
    },
    Write {
        width: u8,
        value: Operand,
    },
    Truncate(Operand),
    TruncatePos,
    Calc {
        kind: Calc,
        dest: u8,
        a: Operand,
        b: Operand,
    },
    If {
        condition: Condition,
        var: u8,
        value: Operand,
        target: Operand,
    },
    /// `jumpz`, `jumpnz`, `callz`, `callnz`.
    Branch {
        call: bool,
        when_zero: bool,
        var: u8,
        target: Operand,
    },
    Seek {
        kind: SeekKind,
        value: Operand,
    },
    Print(Operand),
    Menu {
        var: u8,
        address: Operand,
    },
    /// `writedata` and `xordata`.
    Data {
        xor: bool,
        address: Operand,
        length: Operand,
    },
    Fill {
        width: u8,
        count: Operand,
        value: Operand,
    },
    LockPos,
    UnlockPos,
    JumpTable(u8),
    Set {
        var: u8,
        value: Operand,
    },
    IpsPatch {
        var: u8,
        address: Operand,
    },
    StackWrite {
        position: Operand,
        value: Operand,
    },
    StackRead {
        var: u8,
        position: Operand,
    },
    StackShift(Operand),
    ReturnIf {
        var: u8,
        when_zero: bool,
    },
    PushPos,
    PopPos,
    BspPatch {
        var: u8,
        address: Operand,
        length: Operand,
    },
    Increment(u8),
    Decrement(u8),
    BufString(Operand),
    BufChar(Operand),
    BufNumber(Operand),
    PrintBuf,
    ClearBuf,
    SetStackSize(Operand),
    GetStackSize(u8),
    Shift {
        kind: ShiftKind,
        dest: u8,
        value: Operand,
        count: Operand,
    },
    GetVariable {
        dest: u8,
        index_var: u8,
    },
    Long {
        kind: LongKind,
        low: u8,
        high: u8,
        a: Operand,
        b: Operand,
    },
}

/// Why an instruction could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The instruction runs past the end of the patch space.
    CutShort,
    Undefined(u8),
}

struct Cursor<'a> {
    space: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.space.get(self.at).ok_or(DecodeError::CutShort)?;
        self.at += 1;
        Ok(byte)
    }

    fn halfword(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from(self.byte()?) | u32::from(self.byte()?) << 8)
    }

    fn word(&mut self) -> Result<u32, DecodeError> {
        Ok(self.halfword()? | self.halfword()? << 16)
    }

    /// An immediate of `width` bytes, or a variable.
    fn operand(&mut self, is_var: bool, width: u8) -> Result<Operand, DecodeError> {
        if is_var {
            return Ok(Operand::Var(self.byte()?));
        }
        Ok(Operand::Imm(match width {
            1 => u32::from(self.byte()?),
            2 => self.halfword()?,
            _ => self.word()?,
        }))
    }

    fn any(&mut self, is_var: bool) -> Result<Operand, DecodeError> {
        self.operand(is_var, 4)
    }
}

const WIDTHS: [u8; 3] = [1, 2, 4];

/// Decodes the instruction at `address`; returns it and the address after it.
pub fn decode(space: &[u8], address: u32) -> Result<(Instr, u32), DecodeError> {
    let mut c = Cursor {
        space,
        at: address as usize,
    };
    let op = c.byte()?;
    // Pairs of opcodes: the odd one takes a variable where the even one
    // takes an immediate. Quads: bit 1 for the first such operand, bit 0
    // for the second.
    let odd = op & 1 == 1;
    let first_var = op & 2 != 0;
    let second_var = op & 1 != 0;
    let width_of = |base: u8, step: u8| WIDTHS[usize::from((op - base) / step)];
    use Instr::*;
    let instr = match op {
        0x00 => Nop,
        0x01 => Return,
        0x02 | 0x03 => Jump(c.any(odd)?),
        0x04 | 0x05 => Call(c.any(odd)?),
        0x06 | 0x07 => Exit(c.any(odd)?),
        0x08 | 0x09 => Push(c.any(odd)?),
        0x0a => Pop(c.byte()?),
        0x0b => Length(c.byte()?),
        0x0c..=0x0e => Read {
            var: c.byte()?,
            width: width_of(0x0c, 1),
            advance: true,
        },
        0x0f => Pos(c.byte()?),
        0x10..=0x15 => Get {
            var: c.byte()?,
            width: width_of(0x10, 2),
            address: c.any(odd)?,
        },
        0x16 | 0x17 => CheckSha1 {
            var: c.byte()?,
            address: c.any(odd)?,
        },
        0x18..=0x1d => {
            let width = width_of(0x18, 2);
            Write {
                width,
                value: c.operand(odd, width)?,
            }
        }
        0x1e | 0x1f => Truncate(c.any(odd)?),
        0x20..=0x3f => Calc {
            kind: [
                self::Calc::Add,
                self::Calc::Subtract,
                self::Calc::Multiply,
                self::Calc::Divide,
                self::Calc::Remainder,
                self::Calc::And,
                self::Calc::Or,
                self::Calc::Xor,
            ][usize::from((op - 0x20) / 4)],
            dest: c.byte()?,
            a: c.any(first_var)?,
            b: c.any(second_var)?,
        },
        0x40..=0x57 => If {
            condition: [
                Condition::Less,
                Condition::LessOrEqual,
                Condition::Greater,
                Condition::GreaterOrEqual,
                Condition::Equal,
                Condition::NotEqual,
            ][usize::from((op - 0x40) / 4)],
            var: c.byte()?,
            value: c.any(first_var)?,
            target: c.any(second_var)?,
        },
        0x58..=0x5f => {
            let kind = (op - 0x58) / 2;
            Branch {
                call: kind >= 2,
                when_zero: kind % 2 == 0,
                var: c.byte()?,
                target: c.any(odd)?,
            }
        }
        0x60..=0x67 => Seek {
            kind: [
                SeekKind::To,
                SeekKind::Forward,
                SeekKind::Back,
                SeekKind::FromEnd,
            ][usize::from((op - 0x60) / 2)],
            value: c.any(odd)?,
        },
        0x68 | 0x69 => Print(c.any(odd)?),
        0x6a | 0x6b => Menu {
            var: c.byte()?,
            address: c.any(odd)?,
        },
        0x6c..=0x6f | 0x7c..=0x7f => Data {
            xor: op < 0x70,
            address: c.any(first_var)?,
            length: c.any(second_var)?,
        },
        0x70..=0x7b => {
            let width = width_of(0x70, 4);
            Fill {
                width,
                count: c.any(first_var)?,
                value: c.operand(second_var, width)?,
            }
        }
        0x80 => LockPos,
        0x81 => UnlockPos,
        0x82 => TruncatePos,
        0x83 => JumpTable(c.byte()?),
        0x84 | 0x85 => Set {
            var: c.byte()?,
            value: c.any(odd)?,
        },
        0x86 | 0x87 => IpsPatch {
            var: c.byte()?,
            address: c.any(odd)?,
        },
        0x88..=0x8b => StackWrite {
            position: c.any(first_var)?,
            value: c.any(second_var)?,
        },
        0x8c | 0x8d => StackRead {
            var: c.byte()?,
            position: c.any(odd)?,
        },
        0x8e | 0x8f => StackShift(c.any(odd)?),
        0x90 | 0x91 => ReturnIf {
            var: c.byte()?,
            when_zero: op == 0x90,
        },
        0x92 => PushPos,
        0x93 => PopPos,
        0x94..=0x97 => BspPatch {
            var: c.byte()?,
            address: c.any(first_var)?,
            length: c.any(second_var)?,
        },
        0x98..=0x9a | 0x9c..=0x9e => GetStep {
            var: c.byte()?,
            width: WIDTHS[usize::from((op & 3) % 3)],
            address_var: c.byte()?,
            forward: op < 0x9b,
        },
        0x9b => Increment(c.byte()?),
        0x9f => Decrement(c.byte()?),
        0xa0 | 0xa1 => BufString(c.any(odd)?),
        0xa2 | 0xa3 => BufChar(c.any(odd)?),
        0xa4 | 0xa5 => BufNumber(c.any(odd)?),
        0xa6 => PrintBuf,
        0xa7 => ClearBuf,
        0xa8 | 0xa9 => SetStackSize(c.any(odd)?),
        0xaa => GetStackSize(c.byte()?),
        0xab => {
            let control = c.byte()?;
            let value_is_var = control & 0x80 != 0;
            let kind = [
                ShiftKind::Left,
                ShiftKind::Right,
                ShiftKind::RotateLeft,
                ShiftKind::RightArithmetic,
            ][usize::from((control >> 5) & 3)];
            let fixed = control & 0x1f;
            let dest = c.byte()?;
            let value = c.any(value_is_var)?;
            let count = if fixed == 0 {
                Operand::Var(c.byte()?)
            } else {
                Operand::Imm(u32::from(fixed))
            };
            Shift {
                kind,
                dest,
                value,
                count,
            }
        }
        0xac..=0xae => Read {
            var: c.byte()?,
            width: width_of(0xac, 1),
            advance: false,
        },
        0xaf => GetVariable {
            dest: c.byte()?,
            index_var: c.byte()?,
        },
        0xb0..=0xbf => Long {
            kind: [
                LongKind::AddCarry,
                LongKind::SubBorrow,
                LongKind::Multiply,
                LongKind::MultiplyAccumulate,
            ][usize::from((op - 0xb0) / 4)],
            low: c.byte()?,
            high: c.byte()?,
            a: c.any(first_var)?,
            b: c.any(second_var)?,
        },
        undefined => return Err(DecodeError::Undefined(undefined)),
    };
    // The patch space is at most 4 GiB - 1 bytes long, so this fits.
    Ok((instr, c.at as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every defined opcode's size, from the specification's table (the
    /// shifts' sizes depend on their second byte and are checked apart).
    #[rustfmt::skip]
    const SIZES: &[(u8, u32)] = &[
        (0x00, 1), (0x01, 1), (0x02, 5), (0x03, 2), (0x04, 5), (0x05, 2), (0x06, 5), (0x07, 2),
        (0x08, 5), (0x09, 2), (0x0a, 2), (0x0b, 2), (0x0c, 2), (0x0d, 2), (0x0e, 2), (0x0f, 2),
        (0x10, 6), (0x11, 3), (0x12, 6), (0x13, 3), (0x14, 6), (0x15, 3), (0x16, 6), (0x17, 3),
        (0x18, 2), (0x19, 2), (0x1a, 3), (0x1b, 2), (0x1c, 5), (0x1d, 2), (0x1e, 5), (0x1f, 2),
        (0x58, 6), (0x59, 3), (0x5a, 6), (0x5b, 3), (0x5c, 6), (0x5d, 3), (0x5e, 6), (0x5f, 3),
        (0x60, 5), (0x61, 2), (0x62, 5), (0x63, 2), (0x64, 5), (0x65, 2), (0x66, 5), (0x67, 2),
        (0x68, 5), (0x69, 2), (0x6a, 6), (0x6b, 3), (0x6c, 9), (0x6d, 6), (0x6e, 6), (0x6f, 3),
        (0x70, 6), (0x71, 6), (0x72, 3), (0x73, 3), (0x74, 7), (0x75, 6), (0x76, 4), (0x77, 3),
        (0x78, 9), (0x79, 6), (0x7a, 6), (0x7b, 3), (0x7c, 9), (0x7d, 6), (0x7e, 6), (0x7f, 3),
        (0x80, 1), (0x81, 1), (0x82, 1), (0x83, 2), (0x84, 6), (0x85, 3), (0x86, 6), (0x87, 3),
        (0x88, 9), (0x89, 6), (0x8a, 6), (0x8b, 3), (0x8c, 6), (0x8d, 3), (0x8e, 5), (0x8f, 2),
        (0x90, 2), (0x91, 2), (0x92, 1), (0x93, 1), (0x94, 10), (0x95, 7), (0x96, 7), (0x97, 4),
        (0x98, 3), (0x99, 3), (0x9a, 3), (0x9b, 2), (0x9c, 3), (0x9d, 3), (0x9e, 3), (0x9f, 2),
        (0xa0, 5), (0xa1, 2), (0xa2, 5), (0xa3, 2), (0xa4, 5), (0xa5, 2), (0xa6, 1), (0xa7, 1),
        (0xa8, 5), (0xa9, 2), (0xaa, 2), (0xac, 2), (0xad, 2), (0xae, 2), (0xaf, 3),
    ];

    #[test]
    fn every_opcode_has_the_size_the_specification_gives() {
        let mut sizes: Vec<(u8, u32)> = SIZES.to_vec();
        // The arithmetic, conditional and long-arithmetic quads.
        for base in (0x20..=0x54).step_by(4) {
            sizes.extend([(base, 10), (base + 1, 7), (base + 2, 7), (base + 3, 4)]);
        }
        for base in (0xb0..=0xbc).step_by(4) {
            sizes.extend([(base, 11), (base + 1, 8), (base + 2, 8), (base + 3, 5)]);
        }
        assert_eq!(sizes.len(), 191, "every defined opcode but 0xab");
        let space = [0u8; 16];
        for (op, size) in sizes {
            let mut bytes = space;
            bytes[0] = op;
            let (_, next) = decode(&bytes, 0).unwrap();
            assert_eq!(next, size, "opcode {op:#04x}");
            // Cut one byte short, it is refused.
            assert_eq!(
                decode(&bytes[..size as usize - 1], 0),
                Err(DecodeError::CutShort),
                "{op:#04x}"
            );
        }
        for op in 0xc0..=0xff {
            assert_eq!(decode(&[op], 0), Err(DecodeError::Undefined(op)));
        }
    }

    #[test]
    fn shifts_take_their_count_from_the_second_byte_or_a_variable() {
        // Immediate value, count 4: 7 bytes.
        let (instr, next) = decode(&[0xab, 0x44, 1, 0x78, 0x56, 0x34, 0x12], 0).unwrap();
        assert_eq!(next, 7);
        assert_eq!(
            instr,
            Instr::Shift {
                kind: ShiftKind::RotateLeft,
                dest: 1,
                value: Operand::Imm(0x1234_5678),
                count: Operand::Imm(4)
            }
        );
        // Immediate value, count in variable 9: 8 bytes.
        let (_, next) = decode(&[0xab, 0x20, 1, 0, 0, 0, 0, 9], 0).unwrap();
        assert_eq!(next, 8);
        // Variable value, fixed count: 4; variable count: 5.
        let (instr, next) = decode(&[0xab, 0xe3, 1, 2], 0).unwrap();
        assert_eq!(next, 4);
        assert_eq!(
            instr,
            Instr::Shift {
                kind: ShiftKind::RightArithmetic,
                dest: 1,
                value: Operand::Var(2),
                count: Operand::Imm(3)
            }
        );
        assert_eq!(decode(&[0xab, 0x80, 1, 2, 3], 0).unwrap().1, 5);
    }

    #[test]
    fn operand_forms_follow_the_opcode_bits() {
        // add #1, #2, 7  (variable, variable, word)
        let (instr, _) = decode(&[0x22, 1, 2, 7, 0, 0, 0], 0).unwrap();
        assert_eq!(
            instr,
            Instr::Calc {
                kind: Calc::Add,
                dest: 1,
                a: Operand::Var(2),
                b: Operand::Imm(7)
            }
        );
        // fillhalfword #3, 0xBEEF (variable, halfword)
        let (instr, next) = decode(&[0x76, 3, 0xef, 0xbe], 0).unwrap();
        assert_eq!(next, 4);
        assert_eq!(
            instr,
            Instr::Fill {
                width: 2,
                count: Operand::Var(3),
                value: Operand::Imm(0xbeef)
            }
        );
        // gethalfworddec #1, #2
        let (instr, _) = decode(&[0x9d, 1, 2], 0).unwrap();
        assert_eq!(
            instr,
            Instr::GetStep {
                var: 1,
                width: 2,
                address_var: 2,
                forward: false
            }
        );
        // ifge #1, #2, label (variable, variable, word)
        let (instr, _) = decode(&[0x4e, 1, 2, 0x10, 0, 0, 0], 0).unwrap();
        assert_eq!(
            instr,
            Instr::If {
                condition: Condition::GreaterOrEqual,
                var: 1,
                value: Operand::Var(2),
                target: Operand::Imm(0x10)
            }
        );
        // callnz #5, #6
        let (instr, _) = decode(&[0x5f, 5, 6], 0).unwrap();
        assert_eq!(
            instr,
            Instr::Branch {
                call: true,
                when_zero: false,
                var: 5,
                target: Operand::Var(6)
            }
        );
    }
}
