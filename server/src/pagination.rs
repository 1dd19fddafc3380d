//! Pages of a list: `pageSize` (1..=10000, default 100) and an opaque `pageToken` the previous
//! page handed out (the offset of the next item; lists are in a stable order).

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// The page size when none is asked for.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page.
pub(crate) const MAX_PAGE_SIZE: usize = 10_000;

/// Which page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Items per page, 1 to 10000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub page_size: Option<usize>,
    /// The `nextPageToken` of the previous page.
    pub page_token: Option<String>,
}

impl PageQuery {
    /// Where the asked-for page starts, and how many items it holds at most.
    pub(crate) fn bounds(&self) -> Result<PageBounds, ApiError> {
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::invalid_field(
                "pageSize",
                format!("{size} is not in 1..={MAX_PAGE_SIZE}"),
            ));
        }
        let start = match &self.page_token {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                ApiError::invalid_field("pageToken", "is not a token this server handed out")
            })?,
        };
        Ok(PageBounds { start, size })
    }

    /// The page of `items` this query asks for, and the token of the next one.
    pub(crate) fn page<T>(&self, items: Vec<T>) -> Result<(Vec<T>, Option<String>), ApiError> {
        Ok(self.bounds()?.cut(items))
    }
}

/// A checked page: its first item's offset and its largest size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageBounds {
    pub start: usize,
    pub size: usize,
}

impl PageBounds {
    /// This page of the whole list `items`, and the token of the next one.
    pub(crate) fn cut<T>(self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let total = items.len();
        let page: Vec<T> = items.into_iter().skip(self.start).take(self.size).collect();
        let next = self.next_token(page.len(), total);
        (page, next)
    }

    /// The token of the page after this one, which held `length` of `total` items; `None`
    /// after the last.
    pub(crate) fn next_token(self, length: usize, total: usize) -> Option<String> {
        let end = self.start.saturating_add(length);
        (end < total).then(|| end.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(size: Option<usize>, token: Option<&str>) -> PageQuery {
        PageQuery {
            page_size: size,
            page_token: token.map(str::to_string),
        }
    }

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<usize> = (0..25).collect();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = query(Some(10), token.as_deref())
                .page(items.clone())
                .unwrap();
            seen.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn bad_sizes_and_tokens_name_their_parameter() {
        let items = vec![1, 2, 3];
        for (query, field) in [
            (query(Some(0), None), "pageSize"),
            (query(Some(MAX_PAGE_SIZE + 1), None), "pageSize"),
            (query(None, Some("x")), "pageToken"),
        ] {
            match query.page(items.clone()) {
                Err(ApiError::Invalid { fields, .. }) => assert_eq!(fields[0].path, field),
                other => panic!("expected an invalid {field}, got {other:?}"),
            }
        }
        let (page, next) = query(None, Some("7")).page(items).unwrap();
        assert!(page.is_empty() && next.is_none());
    }
}
