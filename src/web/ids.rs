//! Ids taken from the page's paths.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::layout::WebError;
use crate::domain::ids::{BatchId, ContactId, ExportId, GroupId, ImportId};

/// An id from the page's path, parsed as its kind before any use: anything else (a space, `<`,
/// an encoded `/` that would lead the page's call into another API route) is the page's own 404.
pub struct PageId<T>(pub T);

/// What a page's path can name.
pub trait FromPath: Sized {
    fn from_path(text: &str) -> Option<Self>;
}

macro_rules! from_path {
    ($($id:ty),*) => {
        $(impl FromPath for $id {
            fn from_path(text: &str) -> Option<Self> {
                <$id>::parse(text)
            }
        })*
    };
}

from_path!(GroupId, ContactId, ImportId, ExportId, BatchId);

impl<S: Send + Sync, T: FromPath> FromRequestParts<S> for PageId<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| WebError::NotFound)?;
        T::from_path(&text).map(PageId).ok_or(WebError::NotFound)
    }
}
