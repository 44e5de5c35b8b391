//! POSIX shell words: the one quoter (guest commands are shell lines) and
//! the one renderer of a host command for messages and logs.

use std::process::Command;

/// Quote one word for a POSIX shell: single quotes, `'` as `'\''`.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// An argv as one shell line that runs exactly that argv: every word quoted,
/// so spaces, `$`, quotes and `;` reach the program as they were given.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|word| quote(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `program arg...` for messages (not for a shell: words are not quoted).
pub fn render(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_defuses_the_shell() {
        assert_eq!(quote("a'b; reboot"), r"'a'\''b; reboot'");
        assert_eq!(quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(quote(""), "''");
    }

    /// What `sh -c` makes of the line is the argv we started from.
    #[test]
    fn command_line_round_trips_through_sh() {
        let argv = ["printf", "[%s]", "a  b", "$HOME", "it's", "", "*", "x;y"];
        let line = command_line(&argv);
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[a  b][$HOME][it's][][*][x;y]"
        );
        let exit = std::process::Command::new("sh")
            .args(["-c", &command_line(&["sh", "-c", "exit 7"])])
            .status()
            .unwrap();
        assert_eq!(exit.code(), Some(7));
    }

    #[test]
    fn render_shows_program_and_arguments() {
        let mut command = Command::new("make");
        command.args(["-C", "/src", "bzImage"]);
        assert_eq!(render(&command), "make -C /src bzImage");
    }
}
