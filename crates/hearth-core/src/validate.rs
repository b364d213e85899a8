//! Validation of operator-supplied names.

/// Longest workspace name accepted.
pub const MAX_NAME_CHARS: usize = 255;

/// Checks a workspace (or token) name: non-empty after trimming, at most 255
/// characters, no control characters.
pub fn name(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(format!("{field} must be at most {MAX_NAME_CHARS} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(name("name", "seo-agent").is_ok());
        assert!(name("name", "  ").is_err());
        assert!(name("name", &"x".repeat(256)).is_err());
        assert!(name("name", &"x".repeat(255)).is_ok());
        assert_eq!(name("name", "a\nb").unwrap_err(), "name must not contain control characters");
    }
}
