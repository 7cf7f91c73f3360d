//! Logiqx XML DATs (No-Intro, Redump, TOSEC): `<datafile>` with a
//! `<header>` (name, version, and a `<clrmamepro header="nes.xml"/>` that
//! names a header skipper) and `<game>` (or MAME's `<machine>`) elements
//! holding `<rom name size crc md5 sha1/>`. Read as a stream of events by
//! quick-xml: nothing but the entries is kept.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use std::io::{BufRead, Read};

use super::{Dat, DatBuilder, DatError, RomFields, hex_fields};

/// Where the parser is inside the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inside {
    Other,
    HeaderName,
    HeaderVersion,
}

/// Reads through to a parser, counting the lines it consumed, so that a
/// DAT is parsed as it is read (never whole in memory) and an error still
/// names its line.
struct LineCounter<R> {
    inner: R,
    newlines: usize,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(out)?;
        self.newlines += out[..read].iter().filter(|&&b| b == b'\n').count();
        Ok(read)
    }
}

impl<R: BufRead> BufRead for LineCounter<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffered) = self.inner.fill_buf() {
            let end = amount.min(buffered.len());
            self.newlines += buffered[..end].iter().filter(|&&b| b == b'\n').count();
        }
        self.inner.consume(amount);
    }
}

pub fn parse(source: &str, bytes: &[u8]) -> Result<Dat, DatError> {
    parse_reader(source, bytes)
}

/// Parses a Logiqx DAT as it is read from `input`.
pub fn parse_reader(source: &str, input: impl BufRead) -> Result<Dat, DatError> {
    let mut reader = Reader::from_reader(LineCounter {
        inner: input,
        newlines: 0,
    });
    reader.config_mut().check_end_names = true;
    let syntax = |line: usize, problem: String| DatError::Syntax {
        file: source.to_string(),
        line,
        problem,
    };
    let mut builder = DatBuilder::new(source);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut in_game = false;
    let mut inside = Inside::Other;
    let mut text = String::new();
    let mut saw_datafile = false;
    let mut buf = Vec::new();
    loop {
        // The line the next event starts on.
        let line = reader.get_ref().newlines + 1;
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|error| syntax(line, error.to_string()))?;
        match event {
            Event::Start(ref element) | Event::Empty(ref element) => {
                let opens = matches!(event, Event::Start(_));
                let name = element.local_name().as_ref().to_vec();
                let in_header = stack.last().is_some_and(|parent| parent == b"header");
                handle_element(
                    element,
                    &name,
                    in_header,
                    &mut builder,
                    &mut in_game,
                    &mut saw_datafile,
                    stack.is_empty(),
                )
                .map_err(|problem| syntax(line, problem))?;
                if opens {
                    inside = match (&name[..], in_header) {
                        (b"name", true) => Inside::HeaderName,
                        (b"version", true) => Inside::HeaderVersion,
                        _ => Inside::Other,
                    };
                    text.clear();
                    stack.push(name);
                } else if name == b"game" || name == b"machine" {
                    // `<game/>`: opened and closed at once.
                    in_game = false;
                }
            }
            Event::End(element) => {
                let name = element.local_name().as_ref().to_vec();
                stack.pop();
                match inside {
                    Inside::HeaderName => builder.set_name(text.trim().to_string()),
                    Inside::HeaderVersion => builder.set_version(text.trim().to_string()),
                    Inside::Other => {}
                }
                inside = Inside::Other;
                if name == b"game" || name == b"machine" {
                    in_game = false;
                }
            }
            Event::Text(content) if inside != Inside::Other => {
                let decoded = content
                    .xml10_content()
                    .map_err(|error| syntax(line, error.to_string()))?;
                text.push_str(&decoded);
            }
            Event::CData(content) if inside != Inside::Other => {
                let decoded = content
                    .decode()
                    .map_err(|error| syntax(line, error.to_string()))?;
                text.push_str(&decoded);
            }
            Event::GeneralRef(reference) if inside != Inside::Other => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference
                            .decode()
                            .map_err(|error| syntax(line, error.to_string()))?;
                        predefined_entity(&name)
                            .ok_or_else(|| syntax(line, format!("unknown entity '&{name};'")))?
                            .to_string()
                    }
                    Err(error) => return Err(syntax(line, error.to_string())),
                };
                text.push_str(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if let Some(open) = stack.last() {
        return Err(syntax(
            reader.get_ref().newlines + 1,
            format!(
                "the file ends inside <{}>: an unclosed tag (cut short?)",
                String::from_utf8_lossy(open)
            ),
        ));
    }
    if !saw_datafile {
        return Err(syntax(
            1,
            "no <datafile> element: not a Logiqx DAT".to_string(),
        ));
    }
    let last_line = reader.get_ref().newlines + 1;
    builder
        .finish()
        .map_err(|problem| syntax(last_line, problem))
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

/// What an opening (or empty) element means.
fn handle_element(
    element: &BytesStart<'_>,
    name: &[u8],
    in_header: bool,
    builder: &mut DatBuilder,
    in_game: &mut bool,
    saw_datafile: &mut bool,
    at_root: bool,
) -> Result<(), String> {
    match name {
        b"datafile" if at_root => *saw_datafile = true,
        b"clrmamepro" | b"romcenter" if in_header => {
            if let Some(header) = attribute(element, b"header")? {
                builder.set_skipper_from(&header);
            }
        }
        b"game" | b"machine" | b"software" => {
            let game_name =
                attribute(element, b"name")?.ok_or("a game has no name attribute".to_string())?;
            builder.game(game_name)?;
            *in_game = true;
        }
        b"rom" => {
            if !*in_game {
                return Err("a <rom> outside any <game>".into());
            }
            let fields = RomFields {
                name: attribute(element, b"name")?,
                size: attribute(element, b"size")?,
                crc: attribute(element, b"crc")?,
                md5: attribute(element, b"md5")?,
                sha1: attribute(element, b"sha1")?,
            };
            builder.rom(&fields)?;
        }
        _ => {}
    }
    Ok(())
}

/// The unescaped value of attribute `key`, if the element has it.
fn attribute(element: &BytesStart<'_>, key: &[u8]) -> Result<Option<String>, String> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|error| error.to_string())?;
        if attribute.key.local_name().as_ref() == key {
            let value = attribute
                .unescape_value()
                .map_err(|error| error.to_string())?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// The DAT as Logiqx XML (for tests and generated fixtures).
pub fn write(dat: &Dat) -> String {
    use quick_xml::escape::escape;
    let mut out = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE datafile PUBLIC \"-//Logiqx//DTD ROM Management Datafile//EN\" \"http://www.logiqx.com/Dats/datafile.dtd\">\n<datafile>\n\t<header>\n",
    );
    out.push_str(&format!("\t\t<name>{}</name>\n", escape(dat.name.as_str())));
    if let Some(version) = &dat.version {
        out.push_str(&format!(
            "\t\t<version>{}</version>\n",
            escape(version.as_str())
        ));
    }
    if let Some(skipper) = &dat.skipper {
        out.push_str(&format!(
            "\t\t<clrmamepro header=\"{}\"/>\n",
            escape(skipper.as_str())
        ));
    }
    out.push_str("\t</header>\n");
    for game in dat.games() {
        out.push_str(&format!(
            "\t<game name=\"{}\">\n",
            escape(game.name.as_str())
        ));
        for rom in &game.roms {
            let (crc, md5, sha1) = hex_fields(rom);
            out.push_str(&format!(
                "\t\t<rom name=\"{}\" size=\"{}\"",
                escape(rom.name.as_str()),
                rom.size
            ));
            for (key, value) in [("crc", crc), ("md5", md5), ("sha1", sha1)] {
                if let Some(value) = value {
                    out.push_str(&format!(" {key}=\"{value}\""));
                }
            }
            out.push_str("/>\n");
        }
        out.push_str("\t</game>\n");
    }
    out.push_str("</datafile>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dat::tests::dat_strategy;
    use proptest::prelude::*;

    const SAMPLE: &str = r#"<?xml version="1.0"?>
<datafile>
	<header>
		<name>Nintendo - Nintendo Entertainment System (Headerless)</name>
		<version>20240101-000000</version>
		<clrmamepro header="No-Intro_NES.xml"/>
	</header>
	<game name="Game &amp; Watch (USA)">
		<description>Game</description>
		<rom name="Game &amp; Watch (USA).nes" size="40960" crc="0123ABCD" md5="00112233445566778899aabbccddeeff" sha1="00112233445566778899aabbccddeeff00112233" status="verified"/>
	</game>
	<game name="Other"><rom name="Other.nes" size="16" crc="1"/></game>
</datafile>
"#;

    #[test]
    fn reads_header_games_and_roms() {
        let dat = parse("nes.dat", SAMPLE.as_bytes()).unwrap();
        assert_eq!(
            dat.name,
            "Nintendo - Nintendo Entertainment System (Headerless)"
        );
        assert_eq!(dat.version.as_deref(), Some("20240101-000000"));
        assert_eq!(dat.skipper.as_deref(), Some("nes.xml"));
        let games: Vec<String> = dat.games().map(|game| game.name).collect();
        assert_eq!(games, ["Game & Watch (USA)", "Other"]);
        assert_eq!(dat.rom_count(), 2);
        let roms: Vec<_> = dat.roms().collect();
        assert_eq!(roms[0].name, "Game & Watch (USA).nes");
        assert_eq!(roms[0].size, 40960);
        assert_eq!(roms[0].crc32, Some(0x0123_abcd));
        assert_eq!(roms[1].crc32, Some(1));
        assert_eq!(roms[1].sha1, None);
        assert_eq!(dat.game_of(1), Some(1));
        assert_eq!(dat.game_name(1).as_deref(), Some("Other"));
        assert_eq!(dat.rom(1), Some(roms[1].clone()));
    }

    fn error_of(text: &str) -> String {
        parse("bad.dat", text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn bad_dats_name_file_and_line() {
        assert_eq!(
            error_of("<datafile>\n<game name=\"A\">\n<rom name=\"a\" size=\"1\"/>\n"),
            "bad.dat: line 4: the file ends inside <game>: an unclosed tag (cut short?)"
        );
        assert_eq!(
            error_of(
                "<datafile>\n<game name=\"A\">\n<rom name=\"a\" size=\"1\" crc=\"zz\"/>\n</game></datafile>"
            ),
            "bad.dat: line 3: the rom 'a' has CRC32 'zz', not 8 hex digits"
        );
        assert_eq!(
            error_of(
                "<datafile>\n\n<game name=\"A\"><rom name=\"a\" size=\"big\"/></game></datafile>"
            ),
            "bad.dat: line 3: the rom 'a' has size 'big', not a number"
        );
        assert_eq!(
            error_of("<datafile>\n<game name=\"A\"></game>\n<game name=\"A\"></game></datafile>"),
            "bad.dat: line 3: the game 'A' is listed twice"
        );
        assert_eq!(
            error_of("<datafile>\n<game name=\"A\"><rom size=\"1\"/></game></datafile>"),
            "bad.dat: line 2: a rom has no name"
        );
        assert!(
            error_of("<datafile>\n<game name=\"A\">\n</datafile>").starts_with("bad.dat: line 3: ")
        );
        assert_eq!(
            error_of("<other/>"),
            "bad.dat: line 1: no <datafile> element: not a Logiqx DAT"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(text in "[<>a-z=\" /&;#\n]{0,200}") {
            let _ = parse("fuzz.dat", text.as_bytes());
        }

        #[test]
        fn small_reads_give_the_same_result_and_lines(
            text in "[<>a-z=\" /\n]{0,200}",
            capacity in 1usize..16,
        ) {
            let whole = parse("x.dat", text.as_bytes());
            let streamed =
                parse_reader("x.dat", std::io::BufReader::with_capacity(capacity, text.as_bytes()));
            prop_assert_eq!(whole, streamed);
        }

        #[test]
        fn written_dats_read_back(dat in dat_strategy()) {
            let text = write(&dat);
            let read = parse("generated.dat", text.as_bytes()).unwrap();
            prop_assert_eq!(read, dat);
        }
    }
}
