//! Character classes of XML 1.0 (§2.2, §2.3).

/// True for a character XML 1.0 allows in a document (`Char`, §2.2),
/// literally or by character reference: TAB, LF, CR and everything from
/// U+0020 on except the surrogates, U+FFFE and U+FFFF.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// True if `text` is XML white space only (`S`, §2.3: SP, TAB, CR, LF);
/// true for the empty string.
pub fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_production() {
        for good in [
            '\t',
            '\n',
            '\r',
            ' ',
            'a',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFD}',
            '\u{10000}',
        ] {
            assert!(is_xml_char(good), "{good:?}");
        }
        for bad in ['\0', '\u{1}', '\u{1f}', '\u{FFFE}', '\u{FFFF}'] {
            assert!(!is_xml_char(bad), "{bad:?}");
        }
    }

    #[test]
    fn whitespace() {
        assert!(is_xml_whitespace(""));
        assert!(is_xml_whitespace(" \t\r\n"));
        assert!(!is_xml_whitespace("\u{a0}"));
        assert!(!is_xml_whitespace(" x "));
    }
}
