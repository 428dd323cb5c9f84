//! Reading an emergency kit (the text `zsm signup` writes, cli/auth.go):
//! its `Server:`, `Identity:` and `Secret Key:` lines.
//!
//! Only the Secret Key's text is taken from here; the core checks that it is
//! one. A kit that does not have exactly one Secret Key line is refused, so
//! a wrong file gives a clear error rather than a failed login.

use zeroize::Zeroizing;

use crate::error::{AppError, AppResult};
use crate::view::KitInfo;

/// A kit is a page of text; anything much larger is not one.
pub const MAX_KIT_BYTES: usize = 16 * 1024;

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(name)?;
    let value = rest.strip_prefix(':')?.trim();
    (!value.is_empty()).then_some(value)
}

fn check_size(text: &str) -> AppResult<()> {
    if text.len() > MAX_KIT_BYTES {
        return Err(AppError::Invalid(
            "that file is too large to be an emergency kit".into(),
        ));
    }
    Ok(())
}

/// The server and identity a kit names (either may be missing).
pub fn info(text: &str) -> AppResult<KitInfo> {
    check_size(text)?;
    let mut k = KitInfo {
        server: None,
        identity: None,
    };
    for line in text.lines() {
        if let Some(v) = field(line, "Server") {
            k.server.get_or_insert_with(|| v.to_owned());
        } else if let Some(v) = field(line, "Identity") {
            k.identity.get_or_insert_with(|| v.to_owned());
        }
    }
    Ok(k)
}

/// The text of the kit's one `Secret Key:` line.
pub fn secret_key(text: &str) -> AppResult<Zeroizing<String>> {
    check_size(text)?;
    let mut found = text.lines().filter_map(|l| field(l, "Secret Key"));
    match (found.next(), found.next()) {
        (Some(k), None) => Ok(Zeroizing::new(k.to_owned())),
        (None, _) => Err(AppError::Invalid(
            "that file is not an emergency kit: it has no \"Secret Key:\" line".into(),
        )),
        (Some(_), Some(_)) => Err(AppError::Invalid(
            "that file has more than one \"Secret Key:\" line; type the key instead".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIT: &str = "zsm Emergency Kit
-----------------
Created:     2026-11-29
Server:      http://127.0.0.1:8080
Identity:    ada@example.test
Secret Key:  ZSM1-ABCDEF-GHJKLM-NPQRST-VWXYZ2-34

Your password and this Secret Key together open your account. Nobody,
not zsm and not the server's operator, can recover or reset either.
";

    #[test]
    fn reads_the_cli_kit() {
        let i = info(KIT).unwrap();
        assert_eq!(i.server.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(i.identity.as_deref(), Some("ada@example.test"));
        assert_eq!(secret_key(KIT).unwrap().as_str(), "ZSM1-ABCDEF-GHJKLM-NPQRST-VWXYZ2-34");
    }

    #[test]
    fn accepts_crlf() {
        let crlf = KIT.replace('\n', "\r\n");
        assert_eq!(
            secret_key(&crlf).unwrap().as_str(),
            "ZSM1-ABCDEF-GHJKLM-NPQRST-VWXYZ2-34"
        );
    }

    #[test]
    fn refuses_what_is_not_a_kit() {
        assert_eq!(secret_key("hello\nworld\n").unwrap_err().code(), "invalid_input");
        assert_eq!(secret_key("Secret Key:\n").unwrap_err().code(), "invalid_input");
        let twice = format!("{KIT}Secret Key: ZSM1-OTHER\n");
        assert_eq!(secret_key(&twice).unwrap_err().code(), "invalid_input");
        let huge = "x".repeat(MAX_KIT_BYTES + 1);
        assert_eq!(secret_key(&huge).unwrap_err().code(), "invalid_input");
        assert_eq!(info(&huge).unwrap_err().code(), "invalid_input");
    }
}
