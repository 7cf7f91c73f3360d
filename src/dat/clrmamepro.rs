//! clrmamepro text DATs: `clrmamepro ( name "…" version … header "nes.xml" )`
//! then `game ( name "…" rom ( name "…" size … crc … md5 … sha1 … ) )`.
//!
//! Written by hand: no maintained crate reads this format, and its grammar
//! is four tokens (`(`, `)`, a quoted string, a bare word).

use super::{Dat, DatBuilder, DatError, RomFields, hex_fields};

/// Deepest nesting of blocks read: real DATs nest three deep.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    /// A bare word or a quoted string's contents.
    Word(&'a str),
}

struct Tokens<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl<'a> Tokens<'a> {
    /// The next token and the line it starts on.
    fn next_token(&mut self) -> Result<Option<(Token<'a>, usize)>, (usize, String)> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if b == b'\n' {
                self.line += 1;
            }
            if !b.is_ascii_whitespace() {
                break;
            }
            self.at += 1;
        }
        let Some(&first) = bytes.get(self.at) else {
            return Ok(None);
        };
        let line = self.line;
        let token = match first {
            b'(' => {
                self.at += 1;
                Token::Open
            }
            b')' => {
                self.at += 1;
                Token::Close
            }
            b'"' => {
                let start = self.at + 1;
                let Some(len) = bytes[start..].iter().position(|&b| b == b'"' || b == b'\n') else {
                    return Err((line, "a quoted string is not closed".into()));
                };
                if bytes[start + len] == b'\n' {
                    return Err((line, "a quoted string is not closed on its line".into()));
                }
                self.at = start + len + 1;
                Token::Word(&self.text[start..start + len])
            }
            _ => {
                let start = self.at;
                let len = bytes[start..]
                    .iter()
                    .position(|&b| b.is_ascii_whitespace() || b == b'(' || b == b')')
                    .unwrap_or(bytes.len() - start);
                self.at = start + len;
                Token::Word(&self.text[start..start + len])
            }
        };
        Ok(Some((token, line)))
    }
}

/// A block's entries: `key value` or `key ( … )`, each with its line.
#[derive(Debug)]
enum Value<'a> {
    Word(&'a str),
    Block(Entries<'a>),
}

type Entries<'a> = Vec<(&'a str, usize, Value<'a>)>;

fn read_block<'a>(
    tokens: &mut Tokens<'a>,
    depth: usize,
    opened_on: usize,
) -> Result<Entries<'a>, (usize, String)> {
    if depth > MAX_DEPTH {
        return Err((opened_on, format!("blocks nested deeper than {MAX_DEPTH}")));
    }
    let mut entries = Vec::new();
    loop {
        let Some((token, line)) = tokens.next_token()? else {
            return Err((
                tokens.line,
                format!(
                    "the file ends inside the block opened on line {opened_on}: a missing ')' (cut short?)"
                ),
            ));
        };
        let key = match token {
            Token::Close => return Ok(entries),
            Token::Open => return Err((line, "'(' where a key was expected".into())),
            Token::Word(key) => key,
        };
        let value = match tokens.next_token()? {
            Some((Token::Word(word), _)) => Value::Word(word),
            Some((Token::Open, open_line)) => {
                Value::Block(read_block(tokens, depth + 1, open_line)?)
            }
            Some((Token::Close, line)) => {
                return Err((line, format!("the key '{key}' has no value")));
            }
            None => return Err((tokens.line, format!("the file ends after the key '{key}'"))),
        };
        entries.push((key, line, value));
    }
}

fn word<'a>(entries: &[(&'a str, usize, Value<'a>)], key: &str) -> Option<&'a str> {
    entries.iter().find_map(|(k, _, value)| match value {
        Value::Word(word) if *k == key => Some(*word),
        _ => None,
    })
}

pub fn parse(source: &str, text: &str) -> Result<Dat, DatError> {
    let syntax = |line: usize, problem: String| DatError::Syntax {
        file: source.to_string(),
        line,
        problem,
    };
    let mut tokens = Tokens {
        text,
        at: 0,
        line: 1,
    };
    let mut builder = DatBuilder::new(source);
    let mut saw_block = false;
    while let Some((token, line)) = tokens.next_token().map_err(|(l, p)| syntax(l, p))? {
        let Token::Word(kind) = token else {
            return Err(syntax(
                line,
                "a block without a name ('(' or ')' alone)".into(),
            ));
        };
        match tokens.next_token().map_err(|(l, p)| syntax(l, p))? {
            Some((Token::Open, _)) => {}
            _ => return Err(syntax(line, format!("'{kind}' is not followed by '('"))),
        }
        let entries = read_block(&mut tokens, 1, line).map_err(|(l, p)| syntax(l, p))?;
        saw_block = true;
        match kind {
            "clrmamepro" => {
                if let Some(name) = word(&entries, "name") {
                    builder.set_name(name.to_string());
                }
                if let Some(version) = word(&entries, "version") {
                    builder.set_version(version.to_string());
                }
                if let Some(header) = word(&entries, "header") {
                    builder.set_skipper_from(header);
                }
            }
            "game" | "machine" | "resource" => {
                let name = word(&entries, "name")
                    .ok_or_else(|| syntax(line, "a game has no name".into()))?;
                builder
                    .game(name.to_string())
                    .map_err(|problem| syntax(line, problem))?;
                for (key, rom_line, value) in &entries {
                    let (&"rom", Value::Block(fields)) = (key, value) else {
                        continue;
                    };
                    let fields = RomFields {
                        name: word(fields, "name").map(String::from),
                        size: word(fields, "size").map(String::from),
                        crc: word(fields, "crc").map(String::from),
                        md5: word(fields, "md5").map(String::from),
                        sha1: word(fields, "sha1").map(String::from),
                    };
                    builder
                        .rom(&fields)
                        .map_err(|problem| syntax(*rom_line, problem))?;
                }
            }
            _ => {}
        }
    }
    if !saw_block {
        return Err(syntax(1, "no blocks: not a clrmamepro DAT".into()));
    }
    builder
        .finish()
        .map_err(|problem| syntax(tokens.line, problem))
}

/// The DAT as clrmamepro text (for tests and generated fixtures). Names
/// are quoted; the format has no escape for `"`.
pub fn write(dat: &Dat) -> String {
    let mut out = format!("clrmamepro (\n\tname \"{}\"\n", dat.name);
    if let Some(version) = &dat.version {
        out.push_str(&format!("\tversion \"{version}\"\n"));
    }
    if let Some(skipper) = &dat.skipper {
        out.push_str(&format!("\theader \"{skipper}\"\n"));
    }
    out.push_str(")\n");
    for game in dat.games() {
        out.push_str(&format!("\ngame (\n\tname \"{}\"\n", game.name));
        for rom in &game.roms {
            let (crc, md5, sha1) = hex_fields(rom);
            out.push_str(&format!("\trom ( name \"{}\" size {}", rom.name, rom.size));
            for (key, value) in [("crc", crc), ("md5", md5), ("sha1", sha1)] {
                if let Some(value) = value {
                    out.push_str(&format!(" {key} {value}"));
                }
            }
            out.push_str(" )\n");
        }
        out.push_str(")\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dat::tests::dat_strategy;
    use proptest::prelude::*;

    const SAMPLE: &str = "clrmamepro (\n\tname \"Nintendo - Super Nintendo Entertainment System\"\n\tdescription \"x\"\n\tversion 20240101\n)\n\ngame (\n\tname \"Some Game (USA)\"\n\tdescription \"Some Game (USA)\"\n\trom ( name \"Some Game (USA).sfc\" size 524288 crc 0A1B2C3D md5 00112233445566778899AABBCCDDEEFF sha1 00112233445566778899aabbccddeeff00112233 )\n)\n";

    #[test]
    fn reads_header_games_and_roms() {
        let dat = parse("snes.dat", SAMPLE).unwrap();
        assert_eq!(dat.name, "Nintendo - Super Nintendo Entertainment System");
        assert_eq!(dat.version.as_deref(), Some("20240101"));
        assert_eq!(dat.skipper, None);
        assert_eq!(dat.game_name(0).as_deref(), Some("Some Game (USA)"));
        let rom = dat.rom(0).unwrap();
        assert_eq!(rom.name, "Some Game (USA).sfc");
        assert_eq!(rom.size, 524_288);
        assert_eq!(rom.crc32, Some(0x0a1b_2c3d));
        assert_eq!(rom.md5.map(|m| m[15]), Some(0xff));
    }

    fn error_of(text: &str) -> String {
        parse("bad.dat", text).unwrap_err().to_string()
    }

    #[test]
    fn bad_dats_name_file_and_line() {
        assert_eq!(
            error_of("clrmamepro (\n\tname \"x\"\n"),
            "bad.dat: line 3: the file ends inside the block opened on line 1: a missing ')' (cut short?)"
        );
        assert_eq!(
            error_of("game (\n name \"A\"\n rom ( name \"a\" size ten )\n)\n"),
            "bad.dat: line 3: the rom 'a' has size 'ten', not a number"
        );
        assert_eq!(
            error_of("game ( name \"A\" )\ngame ( name \"A\" )\n"),
            "bad.dat: line 2: the game 'A' is listed twice"
        );
        assert_eq!(
            error_of("game (\n name \"A\"\n rom ( name \"a\" size 1 sha1 12 )\n)\n"),
            "bad.dat: line 3: the rom 'a' has SHA-1 '12', not 40 hex digits"
        );
        assert_eq!(
            error_of("game ( name \"A\nrom"),
            "bad.dat: line 1: a quoted string is not closed on its line"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(text in "[()a-z\" \n0-9]{0,200}") {
            let _ = parse("fuzz.dat", &text);
        }

        #[test]
        fn deep_nesting_is_refused(depth in 33usize..200) {
            let text = format!("game ( name \"a\" x {} )", "( y ".repeat(depth));
            prop_assert!(parse("deep.dat", &text).is_err());
        }

        #[test]
        fn written_dats_read_back(dat in dat_strategy()) {
            let text = write(&dat);
            let read = parse("generated.dat", &text).unwrap();
            prop_assert_eq!(read, dat);
        }
    }
}
