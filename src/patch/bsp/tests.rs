use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

/// A tiny assembler: opcodes and operands as bytes, labels patched in.
#[derive(Default)]
pub(crate) struct Asm {
    code: Vec<u8>,
    labels: HashMap<&'static str, u32>,
    fixups: Vec<(usize, &'static str)>,
}

impl Asm {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Raw bytes: an opcode and its byte operands.
    pub(crate) fn b(mut self, bytes: &[u8]) -> Self {
        self.code.extend_from_slice(bytes);
        self
    }

    pub(crate) fn w(mut self, word: u32) -> Self {
        self.code.extend_from_slice(&word.to_le_bytes());
        self
    }

    /// The address of `label`, as a word.
    pub(crate) fn at(mut self, label: &'static str) -> Self {
        self.fixups.push((self.code.len(), label));
        self.w(0)
    }

    pub(crate) fn label(mut self, name: &'static str) -> Self {
        self.labels.insert(name, self.code.len() as u32);
        self
    }

    /// A NUL-terminated string.
    pub(crate) fn s(self, text: &str) -> Self {
        self.b(text.as_bytes()).b(&[0])
    }

    pub(crate) fn done(mut self) -> Vec<u8> {
        for (at, label) in &self.fixups {
            let address = self.labels[label];
            self.code[*at..*at + 4].copy_from_slice(&address.to_le_bytes());
        }
        self.code
    }
}

fn run(script: &[u8], source: &[u8]) -> Result<BspRun, PatchError> {
    parse(script, &Limits::default()).unwrap().run(
        source,
        &ApplyOptions::default(),
        INSTRUCTION_BUDGET,
    )
}

fn output(script: &[u8], source: &[u8]) -> Vec<u8> {
    run(script, source).unwrap().image
}

fn error(script: &[u8], source: &[u8]) -> String {
    run(script, source).unwrap_err().to_string()
}

/// `writeword #var` for each variable, then `exit 0`.
fn dump(asm: Asm, vars: &[u8]) -> Vec<u8> {
    let mut asm = asm;
    for var in vars {
        asm = asm.b(&[0x1d, *var]);
    }
    asm.b(&[0x06]).w(0).done()
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn arithmetic_follows_the_specification() {
    let script = dump(
        Asm::new()
            .b(&[0x84, 1])
            .w(7) // set #1, 7
            .b(&[0x22, 2, 1])
            .w(5) // add #2, #1, 5 = 12
            .b(&[0x25, 3])
            .w(3)
            .b(&[1]) // subtract #3, 3, #1 = -4
            .b(&[0x2b, 4, 2, 1]) // multiply #4, #2, #1 = 84
            .b(&[0x2e, 5, 4])
            .w(10) // divide #5, #4, 10 = 8
            .b(&[0x32, 6, 4])
            .w(10) // remainder #6, #4, 10 = 4
            .b(&[0x34, 7])
            .w(0xF0F0)
            .w(0xFF00) // and = 0xF000
            .b(&[0x38, 8])
            .w(0xF0)
            .w(0x0F) // or = 0xFF
            .b(&[0x3c, 9])
            .w(0xFF)
            .w(0x0F) // xor = 0xF0
            .b(&[0xab, 0x44, 10])
            .w(0x1234_5678) // rotateleft #10, 0x12345678, 4
            .b(&[0xab, 0x64, 11])
            .w(0x8000_0000) // shiftrightarith #11, 0x80000000, 4
            .b(&[0x84, 20])
            .w(36) // a variable count uses its low five bits: 4
            .b(&[0xab, 0xa0, 12, 11, 20]) // shiftright #12, #11, #20
            .b(&[0xab, 0x01, 13])
            .w(3) // shiftleft #13, 3, 1
            .b(&[0x9b, 13, 0x9f, 1]) // increment #13, decrement #1
            .b(&[0x84, 21])
            .w(9)
            .b(&[0xaf, 14, 21]), // getvariable #14, #21 = #9
        &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 1, 14],
    );
    assert_eq!(
        words(&output(&script, &[])),
        [
            12,
            0xFFFF_FFFC,
            84,
            8,
            4,
            0xF000,
            0xFF,
            0xF0,
            0x2345_6781,
            0xF800_0000,
            0x0F80_0000,
            7,
            6,
            0xF0
        ]
    );
}

#[test]
fn long_arithmetic_follows_the_specification_examples() {
    let script = dump(
        Asm::new()
            .b(&[0xb8, 1, 2])
            .w(0x1234_5678)
            .w(0x8765_4321) // longmul #1, #2
            .b(&[0x84, 3])
            .w(0xfedc_ba98)
            .b(&[0x84, 4])
            .w(0x7654_3210)
            .b(&[0xbc, 3, 4])
            .w(0x0123_4567)
            .w(0x89ab_cdef) // longmulacum #3, #4
            .b(&[0xb0, 5, 6])
            .w(0xFFFF_FFFF)
            .w(2) // addcarry #5, #6: 1, carry 1
            .b(&[0xb4, 7, 8])
            .w(1)
            .w(2) // subborrow #7, #8: -1, borrow: #8 = -1
            .b(&[0x84, 9])
            .w(10)
            .b(&[0xbc, 9, 9])
            .w(3)
            .w(4) // mulacum #9, 3, 4 = 22
            .b(&[0xb8, 10, 10])
            .w(0x1_0000)
            .w(0x3_0000), // longmul #10, #10: the high word, 3
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert_eq!(
        words(&output(&script, &[])),
        [
            0x70b8_8d78,
            0x09a0_cd05,
            0xc82b_00c1,
            0x76f0_d5ae,
            1,
            1,
            0xFFFF_FFFF,
            0xFFFF_FFFF,
            22,
            3
        ]
    );
}

#[test]
fn checksha1_gives_a_mask_of_the_bytes_that_differ() {
    // The specification's example: the empty input's hash with its first
    // and sixth bytes changed.
    let mut hash = crate::digest::hex(&sha1_of(b""));
    hash.replace_range(0..2, "ff");
    hash.replace_range(10..12, "ff");
    let hash: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let script = dump(
        Asm::new()
            .b(&[0x16, 1])
            .at("hash")
            .b(&[0x1d, 1])
            .b(&[0x06])
            .w(0)
            .label("hash")
            .b(&hash),
        &[],
    );
    assert_eq!(output(&script, &[]), 0x21u32.to_le_bytes());
    let patch = parse(&script, &Limits::default()).unwrap();
    assert_eq!(patch.source_sha1s, [<[u8; 20]>::try_from(hash).unwrap()]);
    assert!(patch.verifies_source());
}

#[test]
fn the_stack_calls_and_returns() {
    let script = dump(
        Asm::new()
            .b(&[0x08])
            .w(10)
            .b(&[0x08])
            .w(20)
            .b(&[0x08])
            .w(30) // stack, bottom to top: 10 20 30
            .b(&[0x8c, 1])
            .w(0) // stackread #1, 0 = 30 (next popped)
            .b(&[0x8c, 2])
            .w(-1i32 as u32) // stackread #2, -1 = 10 (first pushed)
            .b(&[0x88])
            .w(1)
            .w(99) // stackwrite 1, 99: 20 becomes 99
            .b(&[0x8e])
            .w(2) // stackshift 2: two zeros on top
            .b(&[0xaa, 3]) // getstacksize #3 = 5
            .b(&[0x8e])
            .w(-2i32 as u32)
            .b(&[0x0a, 4, 0x0a, 5]) // pop #4 = 30, pop #5 = 99
            .b(&[0x04])
            .at("double") // call double with #5
            .b(&[0xa8])
            .w(0) // setstacksize 0
            .b(&[0x02])
            .at("end")
            .label("double")
            .b(&[0x23, 6, 5, 5, 0x01]) // add #6, #5, #5; return
            .label("end"),
        &[1, 2, 3, 4, 5, 6],
    );
    assert_eq!(words(&output(&script, &[])), [30, 10, 5, 30, 99, 198]);
    // return with an empty stack exits with status 0.
    assert_eq!(output(&[0x18, 0xAB, 0x01], b"x"), [0xAB]);
    assert_eq!(
        error(&[0x0a, 1], b""),
        "BSP patch is corrupt: at address 0x0: pop with an empty stack"
    );
    assert_eq!(
        error(&[0x8c, 1, 3, 0, 0, 0], b""),
        "BSP patch is corrupt: at address 0x0: stackread of position 3 in a stack of 0"
    );
}

#[test]
fn conditionals_and_jump_tables_branch() {
    let script = dump(
        Asm::new()
            .b(&[0x84, 1])
            .w(5)
            .b(&[0x40, 1])
            .w(6)
            .at("less") // iflt #1, 6, less
            .b(&[0x06])
            .w(9)
            .label("less")
            .b(&[0x50, 1])
            .w(4)
            .at("bad") // ifeq #1, 4: not taken
            .b(&[0x5a, 1])
            .at("table") // jumpnz #1, table
            .label("bad")
            .b(&[0x06])
            .w(8)
            .label("table")
            .b(&[0x84, 2])
            .w(1)
            .b(&[0x83, 2]) // jumptable #2
            .at("bad")
            .at("one")
            .label("one")
            .b(&[0x5c, 3])
            .at("sub") // callz #3, sub
            .b(&[0x02])
            .at("end")
            .label("sub")
            .b(&[0x84, 4])
            .w(77)
            .b(&[0x90, 3]) // retz #3
            .label("end"),
        &[4],
    );
    assert_eq!(words(&output(&script, &[])), [77]);
}

#[test]
fn the_file_pointer_reads_writes_and_locks() {
    let script = Asm::new()
        .b(&[0x0c, 1]) // readbyte #1 = 'a', pointer 1
        .b(&[0x0d, 2]) // readhalfword #2 = "bc", pointer 3
        .b(&[0xac, 3]) // getfilebyte #3 = 'd', pointer stays
        .b(&[0x1a, b'X', b'Y']) // writehalfword "XY" at 3, pointer 5
        .b(&[0x80, 0x18, b'!', 0x18, b'?', 0x81]) // locked: both at 5, pointer stays
        .b(&[0x0f, 4]) // pos #4 = 5
        .b(&[0x66])
        .w(1) // seekend 1: pointer 5 (length 6)
        .b(&[0x70])
        .w(3)
        .b(b"z") // fillbyte 3, 'z': grows to 8
        .b(&[0x0b, 5]) // length #5 = 8
        .b(&[0x92, 0x60])
        .w(0)
        .b(&[0x6c])
        .at("mask")
        .w(2) // xordata mask, 2 at 0
        .b(&[0x93]) // poppos: back to 8
        .b(&[0x7c])
        .at("tail")
        .w(2) // writedata tail, 2 at 8
        .b(&[0x1d, 1, 0x1d, 2, 0x1d, 3, 0x1d, 4, 0x1d, 5])
        .b(&[0x06])
        .w(0)
        .label("mask")
        .b(&[0x20, 0x20])
        .label("tail")
        .b(b"<>")
        .done();
    let out = output(&script, b"abcdef");
    let mut expected = b"ABcXYzzz<>".to_vec();
    for word in [b'a' as u32, 0x6362, b'd' as u32, 5, 8] {
        expected.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(out, expected);
    // Truncating, and truncatepos.
    let script = Asm::new()
        .b(&[0x1e])
        .w(2)
        .b(&[0x60])
        .w(4)
        .b(&[0x0f, 1, 0x1d, 1]) // pos = 4; writes 4 bytes at 4 (grows to 8)
        .b(&[0x60])
        .w(6)
        .b(&[0x82]) // truncatepos: 6 bytes
        .b(&[0x06])
        .w(0)
        .done();
    assert_eq!(output(&script, b"abcdef"), b"ab\0\0\x04\0");
    assert_eq!(
        error(&[0x0e, 1], b"abc"),
        "BSP patch is corrupt: at address 0x0: it reads 4 bytes at position 0x0 of a 3-byte file buffer"
    );
    assert_eq!(
        error(&[0x64, 1, 0, 0, 0], b""),
        "BSP patch is corrupt: at address 0x0: a seek by 1 from position 0 overflows"
    );
}

#[test]
fn embedded_ips_patches_apply_at_the_file_pointer() {
    let script = Asm::new()
        .b(&[0x60])
        .w(1) // seek 1
        .b(&[0x86, 1])
        .at("ips")
        .b(&[0x0f, 2]) // the pointer does not move
        .b(&[0x60])
        .w(8)
        .b(&[0x1d, 1, 0x1d, 2])
        .b(&[0x06])
        .w(0)
        .label("ips")
        .b(b"PATCH")
        .b(&[0, 0, 1, 0, 2, b'x', b'y']) // at 1+1: "xy"
        .b(&[0, 0, 4, 0, 0, 0, 3, b'r']) // at 1+4: "rrr"
        .b(b"EOF")
        .label("after")
        .done();
    let after = script.len() as u32;
    let out = output(&script, b"........");
    let mut expected = b"..xy.rrr".to_vec();
    expected.extend_from_slice(&after.to_le_bytes());
    expected.extend_from_slice(&1u32.to_le_bytes());
    assert_eq!(out, expected);
}

#[test]
fn nested_scripts_share_the_buffer_and_report_their_status() {
    let child = Asm::new().b(&[0x18, b'C']).b(&[0x06]).w(3).done();
    let script = Asm::new()
        .b(&[0x94, 1])
        .at("child")
        .w(child.len() as u32)
        .b(&[0x1d, 1])
        .b(&[0x06])
        .w(0)
        .label("child")
        .b(&child)
        .done();
    assert_eq!(output(&script, b"xy"), b"C\x03\0\0\0");
    // A script that runs itself nests without end.
    let mut selfish = vec![0x94, 1, 0, 0, 0, 0];
    selfish.extend_from_slice(&10u32.to_le_bytes());
    assert_eq!(
        error(&selfish, b""),
        "BSP patch cannot be used here: its scripts nest more than 16 deep"
    );
}

#[test]
fn messages_are_collected() {
    let script = Asm::new()
        .b(&[0x68])
        .at("hello")
        .b(&[0xa0])
        .at("count")
        .b(&[0xa4])
        .w(42)
        .b(&[0xa2])
        .w(0xe9) // é
        .b(&[0xa6])
        .b(&[0x6a, 1])
        .at("menu")
        .b(&[0x1d, 1])
        .b(&[0x06])
        .w(0)
        .label("hello")
        .s("Hello")
        .label("count")
        .s("n=")
        .label("menu")
        .at("easy")
        .at("hard")
        .w(u32::MAX)
        .label("easy")
        .s("Easy")
        .label("hard")
        .s("Hard")
        .done();
    let run = run(&script, b"").unwrap();
    assert_eq!(run.image, [0, 0, 0, 0]);
    assert_eq!(
        run.messages,
        [
            "Hello",
            "n=42é",
            "menu: took the first option, \"Easy\", of 2: Easy / Hard"
        ]
    );
    let patch = parse(&script, &Limits::default()).unwrap();
    assert_eq!(patch.messages, ["Hello", "n="]);
    assert!(patch.has_menu);
    assert_eq!(
        error(&[0xa2, 0x00, 0xd8, 0, 0], b""),
        "BSP patch is corrupt: at address 0x0: bufchar of 0xd800, which is no Unicode character"
    );
    assert_eq!(
        error(&[0x68, 5, 0, 0, 0, b'x'], b""),
        "BSP patch is corrupt: at address 0x0: the string at 0x5 has no NUL byte before the script ends"
    );
    assert_eq!(
        error(&[0x68, 5, 0, 0, 0, 0xC0, 0x80, 0], b""),
        "BSP patch is corrupt: at address 0x0: the string at 0x5 is not valid UTF-8"
    );
}

#[test]
fn a_failing_script_says_why() {
    let script = Asm::new()
        .b(&[0x68])
        .at("why")
        .b(&[0x06])
        .w(2)
        .label("why")
        .s("This patch needs the Red version")
        .done();
    assert_eq!(
        error(&script, b""),
        "BSP patch cannot be used here: its script stopped with exit status 2 (its last message: This patch needs the Red version)"
    );
    // Every check of the input failed: another image is needed.
    let expected_hash = sha1_of(b"right");
    let script = Asm::new()
        .b(&[0x16, 1])
        .at("hash")
        .b(&[0x5a, 1])
        .at("wrong")
        .b(&[0x18, b'!'])
        .b(&[0x06])
        .w(0)
        .label("wrong")
        .b(&[0x07, 1])
        .label("hash")
        .b(&expected_hash)
        .done();
    assert_eq!(output(&script, b"right"), b"!ight");
    assert_eq!(
        error(&script, b"wrong"),
        format!(
            "BSP patch is for another image: the patch expects a source with SHA-1 {}, this one has SHA-1 {}",
            crate::digest::hex(&expected_hash),
            crate::digest::hex(&sha1_of(b"wrong"))
        )
    );
    // Checksums ignored, the check of the input reports a match.
    let lenient = ApplyOptions {
        ignore_checksums: true,
        ..ApplyOptions::default()
    };
    let patch = parse(&script, &Limits::default()).unwrap();
    assert_eq!(patch.apply(b"wrong", &lenient).unwrap(), b"!rong");
}

#[test]
fn hostile_scripts_stop_cleanly() {
    fn patch_of(script: &[u8]) -> BspPatch<'_> {
        parse(script, &Limits::default()).unwrap()
    }
    // jump 0, forever.
    let forever = [0x02, 0, 0, 0, 0];
    assert_eq!(
        patch_of(&forever)
            .run(b"", &ApplyOptions::default(), 100_000)
            .unwrap_err()
            .to_string(),
        "BSP patch cannot be used here: the script ran more than 100000 instructions; a runaway loop?"
    );
    // call 0, forever: the stack grows.
    assert_eq!(
        error(&[0x04, 0, 0, 0, 0], b""),
        "BSP patch cannot be used here: the script's stack grew past 1048576 words; a runaway recursion?"
    );
    assert_eq!(
        error(&[0xa8, 0xFF, 0xFF, 0xFF, 0xFF], b""),
        "BSP patch cannot be used here: the script's stack grew past 1048576 words; a runaway recursion?"
    );
    // A buffer past the maximum size, and past 4 GiB.
    let small = ApplyOptions {
        limits: Limits {
            max_image_size: 1000,
        },
        ..ApplyOptions::default()
    };
    assert_eq!(
        patch_of(&[0x1e, 0xE9, 0x03, 0, 0])
            .run(b"", &small, 1000)
            .unwrap_err()
            .to_string(),
        "BSP patch would make a 1001-byte image, over the maximum of 1000 bytes (raise --max-size if the patch is genuine)"
    );
    assert_eq!(
        error(&[0x60, 0xFF, 0xFF, 0xFF, 0xFF, 0x18, 1], b""),
        "BSP patch is corrupt: at address 0x5: it writes up to byte 0x100000000, past the 4 GiB - 1 a BSP file buffer can hold"
    );
    assert_eq!(
        error(&[0x2c, 1, 1, 0, 0, 0, 0, 0, 0, 0], b""),
        "BSP patch is corrupt: at address 0x0: a division by zero"
    );
    assert_eq!(
        error(&[0x00, 0xc5], b""),
        "BSP patch is corrupt: at address 0x1: opcode 0xc5 is not defined"
    );
    assert_eq!(
        error(&[0x00], b""),
        "BSP patch is corrupt: at address 0x1: the instruction there runs past the end of the script"
    );
    assert_eq!(
        error(&[0x7c, 0, 0, 0, 0, 100, 0, 0, 0], b""),
        "BSP patch is corrupt: at address 0x0: it reads 100 bytes at address 0x0, past the end of the script"
    );
    assert_eq!(
        parse(&[], &Limits::default()).unwrap_err().to_string(),
        "BSP patch is corrupt: the script is empty"
    );
}

#[test]
fn reading_the_script_finds_source_and_result_checks() {
    let source_hash = [0x11; 20];
    let result_hash = [0x22; 20];
    let script = Asm::new()
        .b(&[0x68])
        .at("title")
        .b(&[0x16, 1])
        .at("source")
        .b(&[0x5a, 1])
        .at("fail")
        .b(&[0x18, 0])
        .b(&[0x16, 1])
        .at("result")
        .b(&[0x06])
        .w(0)
        .label("fail")
        .b(&[0x06])
        .w(1)
        .label("title")
        .s("My Hack v1.0")
        .label("source")
        .b(&source_hash)
        .label("result")
        .b(&result_hash)
        .done();
    let patch = parse(&script, &Limits::default()).unwrap();
    assert_eq!(patch.source_sha1s, [source_hash]);
    assert_eq!(patch.result_sha1s, [result_hash]);
    assert_eq!(patch.messages, ["My Hack v1.0"]);
    assert!(!patch.has_menu);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes run to an exit status or an error, within the budget.
    #[test]
    fn random_bytecode_always_terminates(script in proptest::collection::vec(any::<u8>(), 1..200),
                                         source in proptest::collection::vec(any::<u8>(), 0..64)) {
        let opts = ApplyOptions {
            limits: Limits { max_image_size: 1 << 16 },
            ignore_checksums: false,
        };
        let patch = parse(&script, &opts.limits).unwrap();
        if let Ok(run) = patch.run(&source, &opts, 20_000) {
            prop_assert!(run.image.len() <= 1 << 16);
        }
    }

    /// Mostly defined opcodes, so that longer programs run.
    #[test]
    fn random_defined_bytecode_always_terminates(script in proptest::collection::vec(0u8..0xc0, 1..400)) {
        let opts = ApplyOptions {
            limits: Limits { max_image_size: 1 << 12 },
            ignore_checksums: false,
        };
        let patch = parse(&script, &opts.limits).unwrap();
        let _ = patch.run(b"source", &opts, 20_000);
    }
}
