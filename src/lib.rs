//! Roster keeps the contacts and contact groups of an SMS business and resolves a group into the
//! list of phone numbers to message at the moment a batch is sent.
//!
//! Dependencies point one way: `api` and `cli` use `domain` and `store`; `domain` does no I/O.

pub mod api;
pub mod cli;
pub mod domain;
pub mod export;
pub mod import;
pub mod send;
pub mod store;
