//! Finds the phone-number metadata that the `rlibphonenumber` crate ships (it embeds it but does
//! not expose it), so that `domain::fast_e164` can build its tables from the very same data.
//! The file is located through the version in Cargo.lock under cargo's registry sources, or
//! named by `ROSTER_PHONE_METADATA`. At run time the tables check themselves against the
//! library and stand down if they disagree, so a mismatched file can only cost speed.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    // `sqlx::migrate!` reads the migration folders at compile time but cannot ask to be rebuilt
    // when a file is added to them (not on stable Rust): this build script asks instead.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=ROSTER_PHONE_METADATA");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let found = env::var("ROSTER_PHONE_METADATA")
        .ok()
        .map(PathBuf::from)
        .or_else(find_in_registry);
    let bytes = match found.as_deref().map(fs::read) {
        Some(Ok(bytes)) => bytes,
        _ => {
            println!(
                "cargo:warning=rlibphonenumber's metadata.bin not found; the fast E.164 path is \
                 off (set ROSTER_PHONE_METADATA to its path to enable it)"
            );
            Vec::new()
        }
    };
    fs::write(out.join("phone_metadata.bin"), bytes).expect("write OUT_DIR/phone_metadata.bin");
}

fn find_in_registry() -> Option<PathBuf> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").ok()?);
    let lock = fs::read_to_string(manifest.join("Cargo.lock")).ok()?;
    let version = lock
        .split("[[package]]")
        .find(|block| block.contains("name = \"rlibphonenumber\""))?
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))?
        .trim_end_matches('"')
        .to_owned();
    let cargo_home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| env::var("HOME").map(|home| Path::new(&home).join(".cargo")))
        .ok()?;
    let relative = format!("rlibphonenumber-{version}/src/generated/metadata/metadata.bin");
    fs::read_dir(cargo_home.join("registry").join("src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(&relative))
        .find(|candidate| candidate.exists())
}
