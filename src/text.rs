//! Bytes and strings from files (ROM titles, patch metadata, file names a
//! patch records) shown as one line of text that a terminal prints as it
//! is: UTF-8 stays, everything that would act on the terminal or hide
//! itself is escaped, so the text tells its bytes exactly.

use std::fmt::Write;

/// `bytes` as text: UTF-8 as it is, each byte that is not UTF-8 as `\xNN`,
/// `\` and unprintable characters escaped (see [`str_as_text`]).
pub fn bytes_as_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut text, c);
        }
        for byte in chunk.invalid() {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

/// The longest start of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn up_to_char(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// A title field of a ROM header as text: the padding (NUL bytes and
/// spaces) that fills the field after the title is dropped.
pub fn padded_title(field: &[u8]) -> String {
    let padding = field
        .iter()
        .rev()
        .take_while(|&&b| b == 0 || b == b' ')
        .count();
    bytes_as_text(&field[..field.len() - padding])
}

/// `s` with `\` and unprintable characters escaped: `\n`, `\t`, `\r`; other
/// ASCII control bytes (ESC, DEL...) as `\xNN`, the byte they are; C1
/// controls and invisible format characters (bidirectional overrides,
/// zero-width spaces) as `\u{NNNN}`.
pub fn str_as_text(s: &str) -> String {
    let mut text = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut text, c);
    }
    text
}

fn push_escaped(text: &mut String, c: char) {
    match c {
        '\\' => text.push_str("\\\\"),
        '\n' => text.push_str("\\n"),
        '\t' => text.push_str("\\t"),
        '\r' => text.push_str("\\r"),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(text, "\\x{:02x}", u32::from(c));
        }
        c if c.is_control() || invisible(c) => {
            let _ = write!(text, "\\u{{{:x}}}", u32::from(c));
        }
        c => text.push(c),
    }
}

/// Format characters that print nothing yet change how the text around
/// them shows (Unicode's bidirectional controls and zero-width characters).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn up_to_char_never_cuts_a_character() {
        assert_eq!(up_to_char("abc", 10), "abc");
        assert_eq!(up_to_char("abc", 2), "ab");
        // "é" is two bytes: a cut inside it drops it whole.
        assert_eq!(up_to_char("aé", 2), "a");
        assert_eq!(up_to_char("aé", 3), "aé");
        assert_eq!(up_to_char("", 0), "");
    }
    use super::*;

    #[test]
    fn escapes_what_would_act_on_a_terminal() {
        assert_eq!(bytes_as_text(b"\x1b[31mRED\x1b[0m"), "\\x1b[31mRED\\x1b[0m");
        assert_eq!(
            bytes_as_text(b"a\tb\nc\rd\\e\x7f\x00"),
            "a\\tb\\nc\\rd\\\\e\\x7f\\x00"
        );
        assert_eq!(bytes_as_text(b"\x80ok\xc3"), "\\x80ok\\xc3");
        assert_eq!(
            bytes_as_text("caf\u{e9} \u{30b2}".as_bytes()),
            "caf\u{e9} \u{30b2}"
        );
        assert_eq!(
            str_as_text("a\u{202e}b\u{85}c\u{200b}"),
            "a\\u{202e}b\\u{85}c\\u{200b}"
        );
        assert_eq!(str_as_text("x/Q \"quoted\" 'too'"), "x/Q \"quoted\" 'too'");
    }
}
