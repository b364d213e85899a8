//! Shortening for people: a digest to its first hex digits, free text to a
//! number of characters. The CLI and the harnesses print through these, so a
//! digest reads the same in every command.

/// Hex digits shown of a digest: enough to tell digests apart.
pub const SHORT_HEX_DIGITS: usize = 12;

/// The first [`SHORT_HEX_DIGITS`] hex digits of a sha256, without any
/// `sha256:` prefix (`0123456789ab`).
pub fn short_hex(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..SHORT_HEX_DIGITS).unwrap_or(hex)
}

/// `sha256:` and the first [`SHORT_HEX_DIGITS`] hex digits
/// (`sha256:0123456789ab`), whether or not `digest` has the prefix.
pub fn short_digest(digest: &str) -> String {
    format!("sha256:{}", short_hex(digest))
}

/// `text` cut to `max_chars` characters, the last of them an ellipsis.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_shortened_with_their_prefix() {
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
        assert_eq!(short_digest("abc"), "sha256:abc");
    }

    #[test]
    fn short_hex_is_the_same_with_or_without_the_prefix() {
        assert_eq!(short_hex("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_hex("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_hex("abc"), "abc");
    }

    #[test]
    fn text_is_cut_to_the_limit_ending_in_an_ellipsis() {
        let short = truncate(&"é".repeat(50), 10);
        assert_eq!(short.chars().count(), 10);
        assert!(short.ends_with('…'));
        assert_eq!(truncate("0123456789", 10), "0123456789");
    }
}
