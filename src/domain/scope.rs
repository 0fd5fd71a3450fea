//! What an API token may do. A token has any of four scopes; a token made before scopes existed
//! (or made without naming any) has them all. Every route needs exactly one scope, decided from
//! its method and path alone, so that the rule is the same for the code that enforces it and the
//! OpenAPI document that states it.

use std::fmt;

/// One right a token may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Reading anything: contacts, groups, batches, imports, settings.
    Read,
    /// Changing contacts, groups, memberships, imports and exports (and reading, which a
    /// client that writes needs to see what it wrote).
    Write,
    /// Sending: creating, scheduling and canceling batches and recurring batches (and reading,
    /// which a sender needs to follow its batches).
    Send,
    /// The plan's settings and its tokens; an admin token may do everything.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Send, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Send => "send",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text.trim().to_ascii_lowercase())
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The scope a request needs, by its method and its route's path template
    /// (`/api/contacts/{id}`).
    pub fn required(method: &str, path: &str) -> Scope {
        let reads = matches!(method, "GET" | "HEAD" | "OPTIONS");
        // A dry run changes nothing: whoever may read may ask what a batch would do.
        let dry_run = path == "/api/batches/preview";
        let settings = path.starts_with("/api/settings") || path == "/api/keywords";
        let sending = path.starts_with("/api/batches")
            || path.starts_with("/api/batch-series")
            || (path.starts_with("/xms/v1/") && path.contains("/batches"));
        // Tokens, webhooks and the audit log are an admin's business even to read.
        if path.starts_with("/api/tokens")
            || path.starts_with("/api/webhooks")
            || path == "/api/audit"
        {
            Scope::Admin
        } else if reads || dry_run {
            Scope::Read
        } else if settings {
            Scope::Admin
        } else if sending {
            Scope::Send
        } else {
            Scope::Write
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a token holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope: what a token made without naming scopes holds.
    pub const FULL: Scopes = Scopes(0b1111);

    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Scopes(scopes.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }

    /// Scopes as stored and as the API lists them: `read,send`. An unknown name is `Err` with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .filter(|name| !name.trim().is_empty())
            .map(|name| Scope::parse(name).ok_or_else(|| name.trim().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Scopes::of)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether these scopes allow what `needed` guards: admin allows everything, and write and
    /// send allow reading too.
    pub fn allow(self, needed: Scope) -> bool {
        let held = |scope: Scope| self.0 & scope.bit() != 0;
        held(needed)
            || held(Scope::Admin)
            || (needed == Scope::Read && (held(Scope::Write) || held(Scope::Send)))
    }

    pub fn list(self) -> Vec<Scope> {
        Scope::ALL
            .into_iter()
            .filter(|scope| self.0 & scope.bit() != 0)
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.list().into_iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// What a token is for, as its creator calls it: 1 to 100 characters, no control characters.
pub fn token_name(input: &str) -> Result<String, super::contact::TextFieldError> {
    super::contact::bounded_text(input, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_scope_of_what_they_do() {
        let cases = [
            ("GET", "/api/contacts", Scope::Read),
            ("POST", "/api/contacts", Scope::Write),
            ("DELETE", "/api/contactgroups/{id}", Scope::Write),
            ("POST", "/api/batches", Scope::Send),
            ("POST", "/api/batches/preview", Scope::Read),
            ("DELETE", "/api/batches/{id}", Scope::Send),
            ("POST", "/api/batch-series/{id}/pause", Scope::Send),
            ("POST", "/xms/v1/{service_plan_id}/batches", Scope::Send),
            ("POST", "/xms/v1/{service_plan_id}/groups", Scope::Write),
            (
                "GET",
                "/xms/v1/{service_plan_id}/batches/{batch_id}",
                Scope::Read,
            ),
            ("PUT", "/api/settings/sending", Scope::Admin),
            ("GET", "/api/settings/sending", Scope::Read),
            ("PUT", "/api/keywords", Scope::Admin),
            ("GET", "/api/tokens", Scope::Admin),
            ("GET", "/api/audit", Scope::Admin),
            ("GET", "/api/webhooks/{id}/deliveries", Scope::Admin),
            ("POST", "/api/inbound", Scope::Write),
        ];
        for (method, path, scope) in cases {
            assert_eq!(Scope::required(method, path), scope, "{method} {path}");
        }
    }

    #[test]
    fn scopes_allow_what_they_imply() {
        let write = Scopes::of([Scope::Write]);
        assert!(write.allow(Scope::Read) && write.allow(Scope::Write));
        assert!(!write.allow(Scope::Send) && !write.allow(Scope::Admin));
        let send = Scopes::of([Scope::Send]);
        assert!(send.allow(Scope::Send) && send.allow(Scope::Read));
        assert!(!send.allow(Scope::Write) && !send.allow(Scope::Admin));
        assert!(
            Scope::ALL
                .into_iter()
                .all(|scope| Scopes::FULL.allow(scope))
        );
        let admin = Scopes::of([Scope::Admin]);
        assert!(Scope::ALL.into_iter().all(|scope| admin.allow(scope)));
        assert_eq!(
            Scopes::parse("send, READ").unwrap().to_string(),
            "read,send"
        );
        assert_eq!(
            Scopes::parse("read,everything"),
            Err("everything".to_owned())
        );
        assert!(Scopes::parse("").unwrap().is_empty());
    }
}
