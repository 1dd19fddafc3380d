//! How input is echoed back in messages: cut to a readable length, with a marker.
//!
//! Error texts and summaries quote what the user gave (a name, a value, an expression) so the
//! reader can find it; an input of a megabyte must not become a megabyte of terminal output or
//! log line. Every place that echoes input goes through [`echo`]. It is a crate of its own, at
//! the bottom of the workspace, because every crate that prints input needs it: the pure ones
//! (the experiment API's validation, the pipeline spec) as much as the store and the drivers.
//! It must not depend on anything.

use std::borrow::Cow;
use std::fmt;

/// How many characters of an echoed value are shown before the marker.
pub const ECHO_CHARACTERS: usize = 100;

/// `text` shown in full when short, else its first [`ECHO_CHARACTERS`] characters and a marker
/// saying how long it was: `abc… (1048576 bytes in all)`.
pub fn echo(text: &str) -> Echo<'_> {
    Echo(text)
}

/// A value to echo, cut when displayed (see [`echo`]).
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a>(&'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&cut(self.0, ECHO_CHARACTERS))
    }
}

/// `text` whole when it has at most `characters` characters, else cut there with the marker;
/// for whole messages that may embed input, as a last bound.
pub fn cut(text: &str, characters: usize) -> Cow<'_, str> {
    match text.char_indices().nth(characters) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len())),
    }
}

/// Like `{:?}` of a string (quoted, escaped), cut as [`echo`] cuts.
pub fn echo_quoted(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARACTERS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_whole_and_long_ones_cut_with_their_length() {
        assert_eq!(echo("abc").to_string(), "abc");
        assert_eq!(echo_quoted("a\"b"), "\"a\\\"b\"");
        let long = "é".repeat(1_000_000);
        let shown = echo(&long).to_string();
        assert!(shown.starts_with(&"é".repeat(ECHO_CHARACTERS)));
        assert!(shown.ends_with("… (2000000 bytes in all)"), "{shown}");
        assert!(shown.len() < 300);
        let quoted = echo_quoted(&long);
        assert!(quoted.ends_with("\"… (2000000 bytes in all)"));
        assert!(quoted.len() < 300);
    }
}
