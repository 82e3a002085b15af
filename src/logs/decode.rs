//! Bytes of a log file → text: UTF-8 (a BOM dropped, invalid bytes replaced), UTF-16 with a
//! BOM (what PowerShell's `>` and `Out-File` write on Windows), and a refusal for files that are
//! not text at all (an executable, an image, a model) so they are skipped with one line instead
//! of being searched for llama.cpp lines.

use std::borrow::Cow;

/// How many leading bytes are looked at to tell text from binary.
const SNIFF: usize = 8192;

/// Why a file is not a text log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotText {
    /// ELF, PE, Mach-O, gzip-in-gzip…: an executable or archive.
    Executable(&'static str),
    /// NUL bytes in the text (binary data).
    Binary,
}

impl std::fmt::Display for NotText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotText::Executable(kind) => write!(f, "a {kind}"),
            NotText::Binary => f.write_str("binary data (NUL bytes)"),
        }
    }
}

/// The text of a log file's bytes (already gunzipped).
pub fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, NotText> {
    for (magic, kind) in [
        (&b"\x7fELF"[..], "ELF executable"),
        (&b"MZ"[..], "Windows executable"),
        (&b"\xcf\xfa\xed\xfe"[..], "Mach-O executable"),
        (&b"GGUF"[..], "GGUF model file"),
    ] {
        if bytes.starts_with(magic) {
            return Err(NotText::Executable(kind));
        }
    }
    if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        return Ok(Cow::Owned(utf16(rest, u16::from_le_bytes)));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        return Ok(Cow::Owned(utf16(rest, u16::from_be_bytes)));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes[..bytes.len().min(SNIFF)].contains(&0) {
        return Err(NotText::Binary);
    }
    Ok(String::from_utf8_lossy(bytes))
}

/// UTF-16 code units → text; unpaired surrogates and a trailing odd byte become U+FFFD.
fn utf16(b: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = b.chunks(2).map(|c| match c {
        [a, b] => unit([*a, *b]),
        _ => 0xfffd,
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_le_and_be_with_bom() {
        let le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("n_ctx = 4096\r\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_text(&le).unwrap(), "n_ctx = 4096\r\n");
        let be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain("é".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode_text(&be).unwrap(), "é");
        // odd trailing byte: replaced, no panic
        assert!(decode_text(&[0xff, 0xfe, 0x41])
            .unwrap()
            .contains('\u{fffd}'));
    }

    #[test]
    fn binaries_are_not_text() {
        assert_eq!(
            decode_text(b"\x7fELF\x02\x01"),
            Err(NotText::Executable("ELF executable"))
        );
        assert_eq!(decode_text(b"abc\0def"), Err(NotText::Binary));
        assert_eq!(decode_text(b"\xef\xbb\xbfplain").unwrap(), "plain");
    }
}
