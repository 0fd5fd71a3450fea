//! The page shell, shared form controls, and how the page's errors are shown.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::dispatch::Reply;
use super::form::{Errors, error_id};
use super::session::Session;

/// The sections in the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Groups,
    Contacts,
    Send,
    Batches,
    Import,
    Export,
}

/// A whole page for a signed-in browser.
pub fn page(session: &Session, section: Section, title: &str, body: Markup) -> Markup {
    let link = |target: Section, href: &str, label: &str| {
        html! {
            @if target == section {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    shell(
        title,
        html! {
            header.top {
                nav aria-label="Main" {
                    a.brand href="/groups" { "Roster" }
                    (link(Section::Groups, "/groups", "Groups"))
                    (link(Section::Contacts, "/contacts", "Contacts"))
                    (link(Section::Send, "/send", "Send"))
                    (link(Section::Batches, "/batches", "Batches"))
                    (link(Section::Import, "/imports", "Import"))
                    (link(Section::Export, "/exports", "Export"))
                }
                form.sign-out method="post" action="/signout" {
                    input type="hidden" name="csrf" value=(session.csrf());
                    span.plan { (session.plan.name) }
                    button type="submit" { "Sign out" }
                }
            }
            main id="main" { (body) }
        },
    )
}

/// A page for a browser that has not signed in.
pub fn page_signed_out(title: &str, body: Markup) -> Markup {
    shell(title, html! { main id="main" class="narrow" { (body) } })
}

fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Roster" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (body)
            }
        }
    }
}

/// A labelled input whose error, if any, sits under it and is announced with it.
pub fn text_input(name: &str, label: &str, value: &str, kind: &str, errors: &Errors) -> Markup {
    let invalid = errors.has(name);
    html! {
        div.field {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value)
                aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then(|| error_id(name))];
            (errors.message(name))
        }
    }
}

/// An id an operator may need elsewhere (in an API call, a support ticket): small, with a
/// button that copies it where the page's script runs.
pub fn copyable_id(id: &str) -> Markup {
    html! {
        span.copyable {
            code.id { (id) }
            button.link type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

/// A hidden CSRF field for a form of this session.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// Links to the previous and next page of a list shown `page_size` at a time.
pub fn pager(base: &str, page: u64, shown: usize, page_size: u64, total: Option<u64>) -> Markup {
    let has_next = match total {
        Some(total) => (page + 1) * page_size < total,
        None => shown as u64 == page_size,
    };
    let join = if base.contains('?') { '&' } else { '?' };
    let pages = total.map(|total| total.div_ceil(page_size).max(1));
    if let Some(pages) = pages.filter(|pages| page >= *pages) {
        return html! {
            nav.pager aria-label="Pages" {
                span { "There is no page " (page + 1) ": the list has " (pages) " " (if pages == 1 { "page" } else { "pages" }) "." }
                a rel="prev" href={ (base) (join) "page=" (pages - 1) } { "Go to the last page" }
            }
        };
    }
    html! {
        nav.pager aria-label="Pages" {
            @if page > 0 {
                a rel="prev" href={ (base) (join) "page=" (page - 1) } { "← Previous" }
            }
            span { "Page " (page + 1) @if let Some(pages) = pages { " of " (pages) } }
            @if has_next {
                a rel="next" href={ (base) (join) "page=" (page + 1) } { "Next →" }
            }
        }
    }
}

/// A file's size as people read it: `812 bytes`, `14.2 kB`, `3.1 MB`.
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["kB", "MB", "GB"];
    if bytes < 1000 {
        return format!("{bytes} {}", if bytes == 1 { "byte" } else { "bytes" });
    }
    let mut size = bytes as f64 / 1000.0;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// Why a page could not be shown.
pub enum WebError {
    /// No session: the browser is sent to sign in.
    SignIn,
    /// A form without this session's CSRF token.
    Forbidden,
    /// A path naming nothing the page shows (an id that is not an id of its kind).
    NotFound,
    /// The API refused or failed a call the page needed in order to render.
    Api(Reply),
    Internal,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            WebError::SignIn => return Redirect::to("/signin").into_response(),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this page. Go back, reload the page and try again.".to_owned(),
            ),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "There is no such page: check the address.".to_owned(),
            ),
            WebError::Api(reply) => {
                let errors = Errors::from_reply(&reply);
                let message = errors
                    .summary
                    .unwrap_or_else(|| "The request was refused.".to_owned());
                (reply.status, message)
            }
            WebError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server; it has been logged.".to_owned(),
            ),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = page_signed_out(
            title,
            html! {
                h1 { (title) }
                p role="alert" { (message) }
                p { "Go to " a href="/groups" { "Groups" } ", " a href="/contacts" { "Contacts" } " or " a href="/batches" { "Batches" } "." }
            },
        );
        (status, Html(body.into_string())).into_response()
    }
}

/// A rendered page with a status.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(byte_size(1), "1 byte");
        assert_eq!(byte_size(812), "812 bytes");
        assert_eq!(byte_size(14_240), "14.2 kB");
        assert_eq!(byte_size(3_100_000), "3.1 MB");
        assert_eq!(byte_size(7_000_000_000_000), "7000.0 GB");
    }

    #[test]
    fn a_page_past_the_end_says_so() {
        let past = pager("/groups", 999, 0, 50, Some(2300)).into_string();
        assert!(
            past.contains("There is no page 1000: the list has 46 pages."),
            "{past}"
        );
        assert!(past.contains("page=45"), "{past}");
        let first = pager("/groups", 0, 50, 50, Some(2300)).into_string();
        assert!(first.contains("Page 1 of 46"), "{first}");
    }
}
