//! Imports: files of contacts (CSV, XLSX, XLS, ODS, vCard) read, previewed, mapped to contact
//! fields and written in one transaction.

pub mod engine;
pub mod job;
pub mod mapping;
pub mod preview;
pub mod read;
pub mod rejected;
pub mod rows;
