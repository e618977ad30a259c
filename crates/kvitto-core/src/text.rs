//! Input rules for subject references and free text (docs/EVENTS.md, "Input rules for text").
//!
//! A subject reference becomes a keyed pseudonym of its bytes, so two spellings of one
//! customer (NFC and NFD `Åsa-1`, a zero-width space, a trailing space, a BOM, a bidi
//! override) would be two customers: a withdrawal under a lookalike would leave the consent
//! in force, and one history could be split to keep part of it out of a bundle. New input is
//! therefore refused unless it has exactly one spelling; free text gets the same rules so that
//! a `reason` cannot hide or reorder what a regulator reads.
//!
//! These rules apply to **new input only** (drafts, library constructors). Values read back
//! from canonical bytes, bundles, projection snapshots or the key vault keep the rules they
//! were written under ([`crate::Text::stored`], [`crate::ExternalRef::stored`]): an old ledger
//! must still decode and verify.
//!
//! Error messages name the rule and the code point, never the value (references are
//! personal data).

/// General category Cf (format characters), as inclusive ranges, from Unicode 16.0.0
/// `DerivedGeneralCategory.txt`. Unicode 18.0.0 has exactly the same ranges (checked with
/// Python `unicodedata2` 18.0.0 over every code point), so Unicode 17.0 does too.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound/piastre mark above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x180E, 0x180E),   // Mongolian vowel separator
    (0x200B, 0x200F),   // zero-width space, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),   // bidi embeddings and overrides (LRE … RLO)
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x206F),   // bidi isolates, deprecated format characters
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),   // interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol beam and slur controls
    (0xE0001, 0xE0001), // language tag
    (0xE0020, 0xE007F), // tag characters
];

/// Whether `c` is a format character (Unicode general category Cf): invisible, or changing
/// how the text around it is shown — zero-width characters, the BOM, bidi overrides and
/// isolates, tags.
pub fn is_format_char(c: char) -> bool {
    let u = c as u32;
    FORMAT
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `U+XXXX` for messages.
fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// The rules both references and free text follow: no control character (except those
/// `allowed`), no format character, no leading or trailing whitespace, NFC.
fn check(s: &str, allowed_controls: &[char], what: &str) -> Result<(), String> {
    for c in s.chars() {
        if c.is_control() && !allowed_controls.contains(&c) {
            return Err(format!("contains control character {}", code_point(c)));
        }
        if is_format_char(c) {
            return Err(format!("contains {} (a format character: invisible or reordering text)", code_point(c)));
        }
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err("has leading or trailing whitespace".into());
    }
    if !unicode_normalization::is_nfc(s) {
        return Err(format!("is not in Unicode NFC form (normalise it to NFC: {what} must have one spelling)"));
    }
    Ok(())
}

/// The input rules for a subject reference: no control character at all, no format
/// character, no leading or trailing whitespace, Unicode NFC.
pub fn check_reference(s: &str) -> Result<(), String> {
    check(s, &[], "a reference")
}

/// The input rules for free text: those of [`check_reference`], except that `\n` and `\t`
/// are allowed inside the text.
pub fn check_free_text(s: &str) -> Result<(), String> {
    check(s, &['\n', '\t'], "text")
}

/// The input rule for the keys and string values of `details`: no control character other
/// than `\n` and `\t`. Details are arbitrary personal data kept encrypted and never keyed on,
/// so no NFC, format-character or whitespace rule.
pub fn check_details_string(s: &str) -> Result<(), String> {
    match s.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
        Some(c) => Err(format!("contains control character {}", code_point(c))),
        None => Ok(()),
    }
}

/// A JSON Schema (ECMA-262) pattern for text under these rules as far as a pattern can say
/// them: no control characters (but `\n` and `\t` inside, with `newlines_inside`), none of
/// the common format characters, no leading or trailing whitespace. NFC and the rarer format
/// characters are checked on input only.
pub fn schema_pattern(newlines_inside: bool) -> String {
    const FORMAT: &str = r"\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb";
    let edge = format!(r"[^\s\u0000-\u001f\u007f-\u009f{FORMAT}]");
    let inner = if newlines_inside {
        format!(r"[^\u0000-\u0008\u000b-\u001f\u007f-\u009f{FORMAT}]")
    } else {
        format!(r"[^\u0000-\u001f\u007f-\u009f{FORMAT}]")
    };
    format!("^{edge}(?:{inner}*{edge})?$")
}

/// Whether `c` could change how the text around it is shown, on a terminal or a page: C0
/// controls (but `\n` and `\t`, unless `one_line`), DEL, C1 controls, and the format
/// characters ([`is_format_char`]) — bidi overrides and isolates, zero-width characters, the
/// BOM, tag characters.
pub fn hazardous(c: char, one_line: bool) -> bool {
    (c.is_control() && (one_line || !matches!(c, '\n' | '\t'))) || is_format_char(c)
}

/// Untrusted text made safe to show: every [`hazardous`] character becomes a visible
/// `\uXXXX` escape (a surrogate pair above U+FFFF), which inside a JSON string is the same
/// value, so JSON stays exact while a `reason` cannot move a cursor, erase lines or reorder
/// what a regulator reads. `one_line` also escapes `\n` and `\t` (table cells). The CLI's
/// output and the regulators' page share it.
pub fn visible(s: &str, one_line: bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| hazardous(c, one_line)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hazardous(c, one_line) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazardous_is_every_control_and_format_character() {
        // The list this function had before it used the core table, and Cf it did not name.
        let old = [0x00, 0x1b, 0x7f, 0x85, 0x9f, 0xad, 0x61c, 0x180e, 0x200b, 0x200f, 0x202a, 0x202e, 0x2060, 0x2064];
        let old_too = [0x2066, 0x206f, 0xfeff, 0xfff9, 0xfffb, 0xe0001, 0xe0020, 0xe007f];
        for u in old.into_iter().chain(old_too).chain([0x600, 0x6dd, 0x110bd, 0x1d173]) {
            assert!(hazardous(char::from_u32(u).unwrap(), false), "U+{u:04X}");
        }
        assert!(!hazardous('\n', false) && !hazardous('\t', false) && hazardous('\n', true) && hazardous('\t', true));
        assert!(!hazardous('å', true) && !hazardous(' ', true) && !hazardous('\u{2028}', false));
    }

    fn ch(u: u32) -> char {
        char::from_u32(u).unwrap()
    }

    #[test]
    fn format_table_is_sorted_and_disjoint() {
        for w in FORMAT.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 + 1 < w[1].0, "{w:x?}");
        }
    }

    #[test]
    fn format_table_has_the_known_members_and_not_their_neighbours() {
        let members = [0xAD, 0x61C, 0x180E, 0xFEFF, 0xE0001, 0x600, 0x605, 0x6DD, 0x70F, 0x8E2, 0xFFF9, 0xFFFB]
            .into_iter()
            .chain(0x200B..=0x200F)
            .chain(0x202A..=0x202E)
            .chain(0x2060..=0x2064)
            .chain(0x2066..=0x206F)
            .chain(0xE0020..=0xE007F)
            .chain(0x13430..=0x1343F);
        for u in members {
            assert!(is_format_char(ch(u)), "U+{u:04X} is Cf");
        }
        let neighbours = [
            0xAC, 0xAE, 0x61B, 0x61D, 0x180D, 0x180F, 0x200A, 0x2010, 0x2029, 0x202F, 0x205F, 0x2065, 0x2070, 0xFEFE,
            0xFF00, 0xE0000, 0xE0002, 0xE001F, 0xE0080, 0x1342F, 0x13440,
        ];
        for u in neighbours {
            assert!(!is_format_char(ch(u)), "U+{u:04X} is not Cf");
        }
        // Letters, spaces and controls are other categories.
        for c in ['a', 'Å', ' ', '\u{a0}', '\n', '\u{7}', '\u{85}', '\u{2028}', '\u{30a}'] {
            assert!(!is_format_char(c), "{c:?}");
        }
    }

    /// Every code point of the table's ranges and the one on each side of them, against the
    /// boundaries listed independently here (from Python: `unicodedata2.category(chr(cp)) ==
    /// "Cf"` over 0..=0x10FFFF, Unicode 18.0.0).
    #[test]
    fn format_table_matches_the_generated_list() {
        const GENERATED: &str = "ad-ad 600-605 61c-61c 6dd-6dd 70f-70f 890-891 8e2-8e2 180e-180e 200b-200f \
            202a-202e 2060-2064 2066-206f feff-feff fff9-fffb 110bd-110bd 110cd-110cd 13430-1343f \
            1bca0-1bca3 1d173-1d17a e0001-e0001 e0020-e007f";
        let ranges: Vec<(u32, u32)> = GENERATED
            .split_whitespace()
            .map(|r| {
                let (a, b) = r.split_once('-').unwrap();
                (u32::from_str_radix(a, 16).unwrap(), u32::from_str_radix(b, 16).unwrap())
            })
            .collect();
        let expected = |u: u32| ranges.iter().any(|&(a, b)| (a..=b).contains(&u));
        for u in (0..=0x10FFFF).filter(|u| !(0xD800..=0xDFFF).contains(u)) {
            assert_eq!(is_format_char(ch(u)), expected(u), "U+{u:04X}");
        }
    }

    const NFC: &str = "\u{c5}sa-1";
    const NFD: &str = "A\u{30a}sa-1";

    #[test]
    fn reference_nfc_is_accepted_and_nfd_refused() {
        assert_eq!(check_reference(NFC), Ok(()));
        let e = check_reference(NFD).unwrap_err();
        assert!(e.contains("is not in Unicode NFC form") && e.contains("a reference must have one spelling"), "{e}");
        assert!(!e.contains("sa-1"), "the message must not echo the value: {e}");
    }

    #[test]
    fn reference_format_characters_are_refused_with_their_code_point() {
        for (s, cp) in [
            ("\u{c5}sa\u{200b}-1", "U+200B"),
            ("\u{feff}\u{c5}sa-1", "U+FEFF"),
            ("\u{202e}\u{c5}sa-1", "U+202E"),
            ("\u{c5}sa-1\u{2066}", "U+2066"),
            ("cust\u{ad}1", "U+00AD"),
            ("cust\u{e0041}", "U+E0041"),
        ] {
            let e = check_reference(s).unwrap_err();
            assert_eq!(e, format!("contains {cp} (a format character: invisible or reordering text)"));
        }
    }

    #[test]
    fn reference_leading_or_trailing_whitespace_is_refused() {
        for s in ["\u{c5}sa-1 ", " \u{c5}sa-1", "cust-1\u{a0}", "\u{3000}cust-1", "cust-1\u{2028}"] {
            assert_eq!(check_reference(s).unwrap_err(), "has leading or trailing whitespace", "{s:?}");
        }
        // Inside the reference a space is part of it.
        assert_eq!(check_reference("Åsa Öberg"), Ok(()));
    }

    #[test]
    fn reference_control_characters_are_refused_even_newline_and_tab() {
        assert_eq!(check_reference("cust\u{7}1").unwrap_err(), "contains control character U+0007");
        assert_eq!(check_reference("cust\n1").unwrap_err(), "contains control character U+000A");
        assert_eq!(check_reference("cust\t1").unwrap_err(), "contains control character U+0009");
        assert_eq!(check_reference("cust\u{85}1").unwrap_err(), "contains control character U+0085");
    }

    #[test]
    fn free_text_allows_newline_and_tab_inside_and_refuses_other_controls() {
        assert_eq!(check_free_text("rad ett\nrad två\tslut"), Ok(()));
        assert_eq!(check_free_text("bell\u{7}").unwrap_err(), "contains control character U+0007");
        assert_eq!(check_free_text("a\r\nb").unwrap_err(), "contains control character U+000D");
        assert_eq!(check_free_text("esc\u{1b}[2K").unwrap_err(), "contains control character U+001B");
        assert_eq!(check_free_text("ends in a newline\n").unwrap_err(), "has leading or trailing whitespace");
        assert!(check_free_text("kund\u{202e}fel").unwrap_err().contains("U+202E"));
        let e = check_free_text("A\u{30a}sa").unwrap_err();
        assert!(e.contains("NFC") && e.contains("text must have one spelling"), "{e}");
    }

    #[test]
    fn details_strings_refuse_controls_only() {
        assert_eq!(check_details_string("två\nrader\tok"), Ok(()));
        assert_eq!(check_details_string(" A\u{30a}sa\u{200b} "), Ok(()));
        assert_eq!(check_details_string("x\u{0}").unwrap_err(), "contains control character U+0000");
        assert_eq!(check_details_string("x\u{9b}").unwrap_err(), "contains control character U+009B");
    }
}
