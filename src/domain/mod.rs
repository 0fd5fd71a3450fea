//! Pure types and rules: phone numbers, group names, keywords and the group update algebra.
//! Nothing here touches the network or the database, and every value that exists is valid.

pub mod algebra;
pub mod auto_update;
pub mod batch;
pub mod contact;
pub mod delivery;
pub mod erasure;
pub mod fast_e164;
pub mod filter;
pub mod group;
pub mod ids;
pub mod import;
pub mod keywords;
pub mod message;
pub mod msisdn;
pub mod quiet;
pub mod recurrence;
pub mod scope;
pub mod secret;
pub mod sending;
pub mod sms;
pub mod template;
pub mod text;
pub mod time;
pub mod webhook;
