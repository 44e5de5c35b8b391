//! The error-chain formatter: an error and its causes on one line.

/// `error: cause: cause's cause`. thiserror's `Display` shows only the
/// outermost message; the causes live behind `source()`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // `#[error(transparent)]` layers repeat their cause's message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to write the report")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct Transparent(#[from] Outer);

    #[test]
    fn causes_are_joined_once() {
        let io = std::io::Error::other("disk full");
        assert_eq!(chain(&Outer(io)), "failed to write the report: disk full");
        let wrapped = Transparent(Outer(std::io::Error::other("disk full")));
        assert_eq!(chain(&wrapped), "failed to write the report: disk full");
    }
}
