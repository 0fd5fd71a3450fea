//! `roster import` and `roster export`: the API's engines, run from the command line against
//! the database directly.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::DatabaseArg;
use crate::domain::filter::FilterExpr;
use crate::domain::group::GroupName;
use crate::domain::ids::{GroupId, PlanId};
use crate::domain::msisdn::RegionCode;
use crate::export::{ExportFormat, Stager};
use crate::import::engine::{self, ImportJob, RejectedRows};
use crate::import::mapping::Mapping;
use crate::import::read;
use crate::store::{
    self, Actor, ContactQuery, ExistingContacts, ImportReport, ImportWrite, RejectedRow,
};

/// Rejected rows printed at the end of an import (all of them go to --errors).
const PRINTED_REJECTIONS: usize = 20;

#[derive(Args)]
pub struct ImportArgs {
    /// The file: CSV, XLSX, XLS, ODS or vCard.
    file: PathBuf,
    /// The plan's id.
    #[arg(long)]
    plan: String,
    /// A group every imported contact joins: a group id, or a name (the plan's group of that
    /// name, created if missing). Repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// `COLUMN=FIELD` (column by header or 1-based position; FIELD is phone, first_name,
    /// last_name, email, gender, time_zone, opted_out, groups, fields.NAME or ignore). Columns
    /// not named keep the suggested mapping. Repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
    /// Region of numbers in national format (ISO 3166-1 alpha-2); the plan's by default.
    #[arg(long)]
    default_region: Option<String>,
    /// Existing contacts: update (cells with a value overwrite), skip, or replace_fields.
    #[arg(long, default_value = "update", value_parser = ["update", "skip", "replace_fields"])]
    mode: String,
    /// The sheet of a spreadsheet to read (the first by default).
    #[arg(long)]
    sheet: Option<String>,
    /// Write every rejected row to this CSV file: its number and the reason, then its cells
    /// under the file's headers, to correct and import again.
    #[arg(long)]
    errors: Option<PathBuf>,
    /// Groups with double opt-in get pending members, each sent the group's confirmation
    /// request once, instead of members.
    #[arg(long)]
    confirm: bool,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The plan's id.
    #[arg(long)]
    plan: String,
    /// Only the effective members of this group (its id).
    #[arg(long)]
    group: Option<String>,
    /// Only the contacts matching this filter expression.
    #[arg(long)]
    q: Option<String>,
    #[arg(long, default_value = "csv", value_parser = ["csv", "xlsx", "vcf"])]
    format: String,
    /// The file to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    #[command(flatten)]
    database: DatabaseArg,
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let plan_id = PlanId::parse(&args.plan)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a plan id", args.plan))?;
    let mode = match args.mode.as_str() {
        "skip" => ExistingContacts::Skip,
        "replace_fields" => ExistingContacts::ReplaceFields,
        _ => ExistingContacts::Update,
    };
    let overrides = args
        .map
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(column, field)| (column.to_owned(), field.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--map {pair:?} is not COLUMN=FIELD"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut groups, mut group_names) = (Vec::new(), Vec::new());
    for group in &args.groups {
        match GroupId::parse(group) {
            Some(id) => groups.push(id),
            None => group_names.push(
                GroupName::parse(group, GroupName::NATIVE_MAX_CHARS)
                    .map_err(|error| anyhow::anyhow!("--group {group:?} {error}"))?,
            ),
        }
    }
    let file = args.file.clone();
    let sheet = args.sheet.clone();
    let (detected, headers, suggested) = tokio::task::spawn_blocking(move || {
        let mut source = std::fs::File::open(&file)
            .with_context(|| format!("cannot open {}", file.display()))?;
        let name = file.file_name().and_then(|name| name.to_str());
        let detected = read::detect(&mut source, name)?;
        let table = read::open(std::fs::File::open(&file)?, &detected, sheet.as_deref())?;
        let suggested = read::suggest_mapping(&table.headers);
        anyhow::Ok((detected, table.headers, suggested))
    })
    .await??;
    let mapping = Mapping::with_overrides(&headers, &suggested, &overrides)
        .map_err(|error| anyhow::anyhow!("mapping: {error}"))?;
    eprintln!(
        "columns: {}",
        headers
            .iter()
            .zip(mapping.targets())
            .map(|(header, target)| format!("{header} → {target}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let store = args.database.connect().await?;
    let plan = match store.get_plan(&plan_id).await {
        Err(store::StoreError::NotFound(_)) => anyhow::bail!("no plan with id {}", args.plan),
        other => other?,
    };
    let region = match args
        .default_region
        .as_deref()
        .or(plan.default_region.as_deref())
    {
        Some(code) => Some(
            RegionCode::parse(code)
                .map_err(|error| anyhow::anyhow!("--default-region {code:?} {error}"))?,
        ),
        None => None,
    };

    // Opened first: a path that cannot be written is refused before anything is imported.
    let errors_file = match &args.errors {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => None,
    };
    let rejections = Arc::new(Mutex::new(Rejections::new(errors_file.is_some())));
    let seen = rejections.clone();
    let progress = Arc::new(AtomicU64::new(0));
    let job = ImportJob {
        plan: plan_id,
        file: args.file.clone(),
        detected: detected.clone(),
        sheet: args.sheet.clone(),
        mapping,
        region,
        write: ImportWrite {
            mode,
            groups,
            group_names,
            job: None,
            by: Actor::cli(),
            confirm: args.confirm,
        },
        progress: progress.clone(),
        on_rejected: Some(Box::new(SharedRejections(seen))),
    };
    let ticker = tokio::spawn(show_progress(progress));
    let outcome = engine::run(store, job).await;
    ticker.abort();
    let report = outcome?;
    let rejections = std::mem::replace(
        &mut *rejections.lock().unwrap_or_else(|e| e.into_inner()),
        Rejections::new(false),
    );
    if let Some(out) = errors_file {
        let (file, sheet) = (args.file.clone(), args.sheet.clone());
        let mut all = rejections.all;
        tokio::task::spawn_blocking(move || {
            // Duplicates are found by the writer, after the reader's invalid rows.
            all.sort_by_key(|row| row.row);
            let table = read::open(std::fs::File::open(&file)?, &detected, sheet.as_deref())?;
            crate::import::rejected::write_rejected(table, all.into_iter(), out)?;
            anyhow::Ok(())
        })
        .await??;
    }
    print_report(&report, &rejections.first);
    if report.created + report.updated + report.unchanged + report.skipped == 0 {
        anyhow::bail!("nothing was imported");
    }
    Ok(())
}

/// Rejected rows: the first few kept to print; all of them kept for the errors file if asked.
struct Rejections {
    first: Vec<RejectedRow>,
    keep_all: bool,
    all: Vec<RejectedRow>,
}

impl Rejections {
    fn new(keep_all: bool) -> Self {
        Self {
            first: Vec::new(),
            keep_all,
            all: Vec::new(),
        }
    }

    fn see(&mut self, row: &RejectedRow) {
        if self.first.len() < PRINTED_REJECTIONS {
            self.first.push(row.clone());
        }
        if self.keep_all {
            self.all.push(row.clone());
        }
    }
}

/// The rejections the import fills in as it reads.
struct SharedRejections(Arc<Mutex<Rejections>>);

impl SharedRejections {
    fn rejections(&self) -> std::sync::MutexGuard<'_, Rejections> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RejectedRows for SharedRejections {
    fn see(&mut self, row: &RejectedRow) {
        self.rejections().see(row);
    }

    fn start_over(&mut self) {
        let mut rejections = self.rejections();
        *rejections = Rejections::new(rejections.keep_all);
    }
}

/// A bar on a terminal; a line every few seconds otherwise (logs, CI).
async fn show_progress(rows: Arc<AtomicU64>) {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed} {pos} rows read ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        loop {
            bar.set_position(rows.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            eprintln!("{} rows read", rows.load(Ordering::Relaxed));
        }
    }
}

fn print_report(report: &ImportReport, rejected: &[RejectedRow]) {
    println!("rows read:        {}", report.rows);
    println!("created:          {}", report.created);
    println!("updated:          {}", report.updated);
    println!("unchanged:        {}", report.unchanged);
    println!("skipped:          {}", report.skipped);
    println!("added to groups:  {}", report.added_to_groups);
    println!("duplicates:       {}", report.duplicates);
    println!("invalid:          {}", report.invalid);
    if report.opted_out > 0 || report.opt_ins_refused > 0 {
        println!("opted out:        {}", report.opted_out);
        println!("opt-ins refused:  {}", report.opt_ins_refused);
    }
    for group in &report.groups {
        println!(
            "group {} ({}){}: {} added",
            group.id,
            group.name.as_deref().unwrap_or("unnamed"),
            if group.created { ", new" } else { "" },
            group.added
        );
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for row in rejected {
        println!("row {}: {}", row.row, row.reason);
    }
    let listed = rejected.len() as u64;
    if report.invalid + report.duplicates > listed {
        println!(
            "… and {} more rejected rows (--errors FILE lists them all)",
            report.invalid + report.duplicates - listed
        );
    }
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let plan = PlanId::parse(&args.plan)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a plan id", args.plan))?;
    let format = ExportFormat::parse(&args.format)
        .ok_or_else(|| anyhow::anyhow!("--format must be csv, xlsx or vcf"))?;
    let group = args
        .group
        .as_deref()
        .map(|text| {
            GroupId::parse(text)
                .ok_or_else(|| anyhow::anyhow!("--group {text:?} is not a group id"))
        })
        .transpose()?;
    let filter = args
        .q
        .as_deref()
        .map(|text| FilterExpr::parse(text).map_err(|error| anyhow::anyhow!("--q: {error}")))
        .transpose()?;
    let store = args.database.connect().await?;
    if let Err(store::StoreError::NotFound(_)) = store.get_plan(&plan).await {
        anyhow::bail!("no plan with id {}", args.plan);
    }
    if let Some(group) = &group {
        store
            .get_group(&plan, group)
            .await
            .map_err(|_| anyhow::anyhow!("no group with id {group}"))?;
    }
    let query = ContactQuery::selection(group, filter);
    let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
    let output = args.output.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut stager = Stager::new()?;
        while let Some(chunk) = receiver.blocking_recv() {
            for contact in chunk {
                stager.push(contact)?;
            }
        }
        let count = stager.count();
        if format.max_contacts().is_some_and(|max| count > max) {
            anyhow::bail!(
                "an XLSX sheet holds at most 1,048,575 contacts and this selection has {count}: use csv"
            );
        }
        let mut file = std::fs::File::create(&output)
            .with_context(|| format!("cannot write {}", output.display()))?;
        stager.render(format, &mut file)?;
        Ok(count)
    });
    let produced = store.export_contacts(&plan, &query, sender).await;
    let count = writer.await??;
    produced?;
    eprintln!("{count} contacts written to {}", args.output.display());
    Ok(())
}
