//! A PCI address: `0000:00:02.0` (domain, bus, device, function).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    /// Where integrated Intel graphics always sits on the host (and must sit in the guest).
    pub const IGD: Bdf = Bdf {
        domain: 0,
        bus: 0,
        device: 2,
        function: 0,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a PCI address: expected DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:00:02.0 (see `lspci -D`)")]
pub struct BdfError(pub String);

impl FromStr for Bdf {
    type Err = BdfError;

    /// `0000:00:02.0` or, with domain 0 implied, `00:02.0`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BdfError(text.to_string());
        let (rest, function) = text.rsplit_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, s] if d.len() == 4 => (*d, *b, *s),
            [b, s] => ("0000", *b, *s),
            _ => return Err(bad()),
        };
        let hex = |s: &str, width: usize| {
            (s.len() == width && s.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(s, 16).ok())
                .flatten()
        };
        let bdf = Bdf {
            domain: hex(domain, 4).ok_or_else(bad)? as u16,
            bus: hex(bus, 2).ok_or_else(bad)? as u8,
            device: hex(device, 2).filter(|d| *d < 32).ok_or_else(bad)? as u8,
            function: hex(function, 1).filter(|f| *f < 8).ok_or_else(bad)? as u8,
        };
        Ok(bdf)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl serde::Serialize for Bdf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Bdf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_forms_and_prints_the_full_one() {
        let igd: Bdf = "0000:00:02.0".parse().unwrap();
        assert_eq!(igd, Bdf::IGD);
        assert_eq!("00:02.0".parse::<Bdf>().unwrap(), Bdf::IGD);
        let dgpu: Bdf = "0001:3B:1f.7".parse().unwrap();
        assert_eq!(
            (dgpu.domain, dgpu.bus, dgpu.device, dgpu.function),
            (1, 0x3b, 0x1f, 7)
        );
        assert_eq!(dgpu.to_string(), "0001:3b:1f.7");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "auto",
            "00:02",
            "0:02.0",
            "00:20.0",
            "00:02.8",
            "000:00:02.0",
            "00:0g.0",
            "00:02.0.1",
            "+0:02.0",
        ] {
            let err = bad.parse::<Bdf>().unwrap_err();
            assert!(err.to_string().contains("lspci -D"), "{bad}: {err}");
        }
    }
}
