//! One integration-test binary: every test talks HTTP to the real router (or runs the real
//! binary) over a fresh SQLite file and a fresh PostgreSQL database.

mod helpers;
mod postgres;

mod audit;
mod batches;
mod browser;
mod cli;
mod concurrency;
mod concurrency_processes;
mod contact_time_zone;
mod contacts;
mod crash;
mod double_opt_in;
mod erasure;
mod errors;
mod filter_model;
mod frequency_caps;
mod groups_native;
mod groups_sinch;
mod import_processes;
mod imports;
mod inbound;
mod isolation;
mod nul_text;
mod personalization;
mod phone_differential;
mod quiet_hours;
mod rate_limit;
mod scopes;
mod sdk;
mod sending_processes;
mod series;
mod smart_groups;
mod spreadsheet_bombs;
mod store_model;
mod upgrade;
mod web;
mod webhook_processes;
mod webhook_receiver;
mod webhooks;
mod write_wait;
