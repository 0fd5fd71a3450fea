//! How the page's long lists are sorted and paged, as their addresses hold it: `sort` and `dir`
//! (a column header toggles them), `size` (rows a page), and a box to jump to a page.

use maud::{Markup, html};
use serde::{Deserialize, Serialize};

/// Rows a page unless the address says otherwise, and what it may say.
pub const DEFAULT_SIZE: u64 = 50;
const SIZES: [u64; 4] = [25, 50, 100, 200];

/// The sort and page size of a list, from its address (text all: it is flattened into each
/// list's query, where serde reads numbers only as text), and a page to jump to (`go`, from 1).
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct View {
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    #[serde(default)]
    pub size: String,
    #[serde(default)]
    pub go: String,
}

impl View {
    /// The sort asked for when it is one of `allowed`, else the list's default (`allowed[0]`).
    pub fn sort<'a>(&'a self, allowed: &[&'a str]) -> &'a str {
        allowed
            .iter()
            .copied()
            .find(|key| *key == self.sort)
            .unwrap_or(allowed[0])
    }

    /// `asc` or `desc` as asked; empty for the API's own default of the sort.
    pub fn direction(&self) -> &str {
        match self.dir.as_str() {
            "asc" | "desc" => &self.dir,
            _ => "",
        }
    }

    pub fn size(&self) -> u64 {
        self.size
            .parse()
            .ok()
            .filter(|size| SIZES.contains(size))
            .unwrap_or(DEFAULT_SIZE)
    }

    /// The page to show (from 0): the one jumped to, else `page` from the address.
    pub fn page(&self, page: u64) -> u64 {
        self.go
            .parse::<u64>()
            .map_or(page, |go| go.saturating_sub(1))
    }

    /// The address's parameters for this view, to carry into links.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if !self.sort.is_empty() {
            params.push(("sort", self.sort.clone()));
        }
        if !self.direction().is_empty() {
            params.push(("dir", self.direction().to_owned()));
        }
        if self.size() != DEFAULT_SIZE {
            params.push(("size", self.size().to_string()));
        }
        params
    }
}

/// `address` (which has a query) with the view's parameters added.
pub fn with_view(address: &str, view: &View) -> String {
    let params = view.params();
    if params.is_empty() {
        return address.to_owned();
    }
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    format!("{address}&{query}")
}

/// A column header that sorts the list by `key`, and the other way when it already does
/// (`natural` is the way the API sorts it first: names up, dates and sizes down).
pub fn sort_header(
    base: &str,
    view: &View,
    allowed: &[&str],
    (key, label, natural): (&str, &str, &str),
) -> Markup {
    let current = view.sort(allowed) == key;
    let shown = if current && !view.direction().is_empty() {
        view.direction()
    } else {
        natural
    };
    let next = if current {
        if shown == "asc" { "desc" } else { "asc" }
    } else {
        natural
    };
    let mut params = vec![("sort", key.to_owned()), ("dir", next.to_owned())];
    if view.size() != DEFAULT_SIZE {
        params.push(("size", view.size().to_string()));
    }
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    let join = if base.contains('?') { '&' } else { '?' };
    let sorted = match (current, shown) {
        (false, _) => None,
        (true, "asc") => Some("ascending"),
        (true, _) => Some("descending"),
    };
    html! {
        // Counts are right-aligned in their column; so is their header.
        th scope="col" aria-sort=[sorted] class=[(key == "size").then_some("number")] {
            a.sort href={ (base) (join) (query) } {
                (label)
                @if let Some(sorted) = sorted { span aria-hidden="true" { @if sorted == "ascending" { " ▲" } @else { " ▼" } } }
            }
        }
    }
}

/// Rows a page, and a page to jump to, as one small GET form that keeps the list's other
/// parameters (`base`'s query).
pub fn controls(base: &str, view: &View, page: u64, pages: Option<u64>) -> Markup {
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let kept: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    html! {
        form.list-controls method="get" action=(path) {
            @for (name, value) in &kept {
                @if name != "size" && name != "page" && name != "go" { input type="hidden" name=(name) value=(value); }
            }
            div.field {
                label for="list-size" { "Rows a page" }
                select id="list-size" name="size" {
                    @for size in SIZES { option value=(size) selected[size == view.size()] { (size) } }
                }
            }
            @if let Some(pages) = pages.filter(|pages| *pages > 1) {
                div.field {
                    label for="list-page" { "Page (of " (pages) ")" }
                    input id="list-page" name="go" type="number" min="1" max=(pages) value=(page + 1);
                }
            }
            button.secondary type="submit" { "Show" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_toggle_their_direction() {
        let view = View {
            sort: "name".into(),
            dir: "asc".into(),
            size: "100".into(),
            go: String::new(),
        };
        let allowed = ["name", "size"];
        let name = sort_header(
            "/groups?status=ACTIVE",
            &view,
            &allowed,
            ("name", "Name", "asc"),
        )
        .into_string();
        assert!(
            name.contains("sort=name&amp;dir=desc&amp;size=100"),
            "{name}"
        );
        assert!(name.contains("aria-sort=\"ascending\""), "{name}");
        let size = sort_header("/groups", &view, &allowed, ("size", "Size", "desc")).into_string();
        assert!(size.contains("/groups?sort=size&amp;dir=desc"), "{size}");
        assert!(!size.contains("aria-sort"), "{size}");
    }

    #[test]
    fn unknown_views_fall_back() {
        let view = View {
            sort: "evil".into(),
            dir: "sideways".into(),
            size: "7".into(),
            go: "x".into(),
        };
        assert_eq!(view.sort(&["name", "size"]), "name");
        assert_eq!(view.direction(), "");
        assert_eq!(view.size(), DEFAULT_SIZE);
        assert_eq!(view.page(3), 3);
        let jumped = View {
            go: "12".into(),
            ..View::default()
        };
        assert_eq!(jumped.page(0), 11);
        assert!(view.params().iter().all(|(name, _)| *name == "sort"));
    }
}
