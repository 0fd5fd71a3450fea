//! Webhooks: the events a plan can subscribe to, where they may be sent, and how each delivery
//! is signed. Signatures follow the Standard Webhooks specification (standardwebhooks.com), so
//! that its published verifiers work: `webhook-id`, `webhook-timestamp` and `webhook-signature`
//! headers, the last `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the
//! secret's bytes (the secret is `whsec_` and their base64).

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

/// What a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    ContactCreated,
    ContactUpdated,
    ContactDeleted,
    ConsentChanged,
    GroupChanged,
    ImportFinished,
    ExportFinished,
    BatchSent,
    BatchFailed,
    DeliveryUpdated,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::ContactDeleted,
        EventType::ConsentChanged,
        EventType::GroupChanged,
        EventType::ImportFinished,
        EventType::ExportFinished,
        EventType::BatchSent,
        EventType::BatchFailed,
        EventType::DeliveryUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ContactCreated => "contact.created",
            EventType::ContactUpdated => "contact.updated",
            EventType::ContactDeleted => "contact.deleted",
            EventType::ConsentChanged => "consent.changed",
            EventType::GroupChanged => "group.changed",
            EventType::ImportFinished => "import.finished",
            EventType::ExportFinished => "export.finished",
            EventType::BatchSent => "batch.sent",
            EventType::BatchFailed => "batch.failed",
            EventType::DeliveryUpdated => "delivery.updated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Its bit in a set of event types as stored: the position in [`EventType::ALL`], which
    /// only grows at its end.
    pub fn bit(self) -> i64 {
        let position = Self::ALL
            .iter()
            .position(|kind| *kind == self)
            .unwrap_or_default();
        1 << position
    }

    /// The types a stored set holds.
    pub fn from_bits(bits: i64) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|kind| bits & kind.bit() != 0)
            .collect()
    }

    /// A set of types, as stored.
    pub fn bits(kinds: &[Self]) -> i64 {
        kinds.iter().fold(0, |bits, kind| bits | kind.bit())
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest URL a webhook may have.
pub const MAX_URL_CHARS: usize = 2_000;

/// Why a URL cannot be a webhook's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not an absolute URL")]
    NotUrl,
    #[error("must be http or https")]
    Scheme,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("is longer than {MAX_URL_CHARS} characters")]
    TooLong,
    #[error(
        "points to a private, loopback or link-local address ({0}); an operator can allow \
         these with ROSTER_WEBHOOK_ALLOW_PRIVATE"
    )]
    Private(IpAddr),
}

/// A webhook's URL: absolute http(s), without credentials, and — unless `allow_private` —
/// not naming a private address outright (names are checked again when they are resolved, at
/// each delivery).
pub fn check_url(input: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    if input.chars().count() > MAX_URL_CHARS {
        return Err(UrlError::TooLong);
    }
    let url = reqwest::Url::parse(input).map_err(|_| UrlError::NotUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(UrlError::NotUrl),
    };
    if let Some(ip) = ip.filter(|ip| !allow_private && !is_public(*ip)) {
        return Err(UrlError::Private(ip));
    }
    Ok(url)
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918, unique
/// local), link-local (cloud metadata lives there), shared (carrier-grade NAT), documentation,
/// benchmarking, multicast, broadcast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_unspecified()
                || ip.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && ip.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(ip) => {
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(mapped));
            }
            let segments = ip.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., high, low] = segments;
                let v4 = std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
                return is_public(IpAddr::V4(v4));
            }
            // The deprecated IPv4-compatible block (::/96) is never a public receiver.
            if segments[..6] == [0; 6] {
                return false;
            }
            let first = segments[0];
            // 6to4 (2002::/16), a local NAT64 (64:ff9b:1::/48) and the old site-local block
            // (fec0::/10) can all lead inside.
            if first == 0x2002
                || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
                || (first & 0xffc0) == 0xfec0
            {
                return false;
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && segments[1] == 0x0db8)
        }
    }
}

/// A new signing secret: `whsec_` and the base64 of 24 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", BASE64.encode(bytes))
}

/// The `webhook-signature` header of a delivery: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the secret's bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret_bytes(secret);
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The key a secret stands for: the bytes its base64 encodes (the text itself for a secret
/// that is not `whsec_` base64, which Roster never makes).
fn secret_bytes(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// How long to wait after failed attempt number `attempts` (from 1), given a random `jitter`
/// in `0.0..1.0`: `first` doubling to at most `most`, each spread over its upper half so that
/// retries from many deliveries do not arrive together.
pub fn retry_delay_millis(attempts: u32, jitter: f64, first: i64, most: i64) -> i64 {
    let full = first
        .saturating_mul(1 << attempts.saturating_sub(1).min(30))
        .min(most);
    full / 2 + (full as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
            assert_eq!(EventType::from_bits(kind.bit()), [kind]);
        }
        let some = [EventType::ContactCreated, EventType::BatchSent];
        assert_eq!(EventType::from_bits(EventType::bits(&some)), some);
        assert_eq!(EventType::parse("contact.exploded"), None);
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn only_public_http_urls_are_taken() {
        assert!(check_url("https://hooks.example.com/roster", false).is_ok());
        assert!(check_url("http://93.184.216.34:8080/x", false).is_ok());
        assert_eq!(
            check_url("ftp://example.com/", false),
            Err(UrlError::Scheme)
        );
        assert_eq!(check_url("not a url", false), Err(UrlError::NotUrl));
        assert_eq!(
            check_url("https://user:pw@example.com/", false),
            Err(UrlError::Credentials)
        );
        for private in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://[::7f00:1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:a00:1::]/",
            "http://[fec0::1]/",
            "http://192.0.0.8/",
        ] {
            assert!(
                matches!(check_url(private, false), Err(UrlError::Private(_))),
                "{private}"
            );
            assert!(check_url(private, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn retries_back_off_with_jitter() {
        let delay = |attempts, jitter| retry_delay_millis(attempts, jitter, 5_000, 3_600_000);
        assert_eq!(delay(1, 0.0), 2_500);
        assert_eq!(delay(1, 1.0), 5_000);
        assert_eq!(delay(2, 1.0), 10_000);
        assert_eq!(delay(40, 1.0), 3_600_000);
        assert!(delay(3, 0.5) > delay(2, 0.5));
    }
}
