//! A wrapper that keeps secrets out of logs, panics and debug output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// A secret value: an access or refresh token, a client secret, an authorisation code,
/// a PKCE verifier, or a body that contains one of those.
///
/// `Debug` prints `<redacted>` and there is no `Display`, so formatting a secret into a log
/// message cannot leak it; the only way in is [`Secret::expose`], which is easy to grep for.
/// The memory is zeroed when the value is dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize = String>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Every call site is a place where a secret leaves the wrapper.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The secret itself, to change in place (e.g. a buffer being filled), so that no
    /// copy escapes the wrapper.
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl Secret<String> {
    /// The secret as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Secrets cross the control socket (for `show`, `dump` and `restore`) as plain strings.
impl<T: Zeroize + Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn serialises_transparently() {
        let s = Secret::new("tok".to_owned());
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, "\"tok\"");
        let back: Secret = serde_json::from_str(&j).unwrap();
        assert_eq!(back.as_str(), "tok");
    }
}
