//! The limits every request is held to. Each is documented in the OpenAPI text and answered with
//! 400, 413, 414 or 431 naming it.

/// Largest request body: room for [`MAX_NUMBERS_PER_REQUEST`] numbers in any reasonable format.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Numbers in `members`, `add` or `remove` of one native request.
pub const MAX_NUMBERS_PER_REQUEST: usize = 100_000;

/// Contact ids in one bulk request (delete, memberships).
pub const MAX_IDS_PER_REQUEST: usize = 10_000;

/// Numbers in `members`, `add` or `remove` of one Sinch request, as Sinch documents.
pub const SINCH_MAX_NUMBERS_PER_REQUEST: usize = 10_000;

/// Child groups of one group on the Sinch surface, as Sinch documents.
pub const SINCH_MAX_CHILD_GROUPS: usize = 10;

/// Child groups of one group on the native API.
pub const MAX_CHILD_GROUPS: usize = 100;

/// Page sizes on the native API.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// Page sizes on the Sinch surface, as Sinch documents.
pub const SINCH_DEFAULT_PAGE_SIZE: i64 = 30;
pub const SINCH_MAX_PAGE_SIZE: i64 = 100;

/// How many invalid elements one error response lists before summarising the rest.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// Entries in a Sinch batch's `to`, as Sinch documents.
pub const SINCH_MAX_BATCH_RECIPIENTS: usize = 1000;

/// Largest file an import accepts.
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// Groups (existing and new) one import adds its contacts to.
pub const MAX_IMPORT_GROUPS: usize = 100;

/// Longest request target (path and query), in bytes: hyper's HTTP/1 parser refuses longer ones
/// (a constant of hyper's, not a setting), answered 414.
pub const MAX_URI_BYTES: usize = 65_534;

/// Largest request head (request line and headers), in bytes, answered 431: hyper's read buffer,
/// set explicitly so that the documented number is ours.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// Headers in one request, answered 431 (hyper's default: raising it costs every request a heap
/// allocation).
pub const MAX_HEADERS: usize = 100;
