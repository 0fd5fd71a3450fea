//! Concurrent writers: no acknowledged update is lost, and of several writers holding the same
//! `ETag` exactly one wins.

use reqwest::Method;
use serde_json::json;

use crate::contacts::swap_id_order;
use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    concurrent_additions_are_all_kept,
    one_of_many_stale_writers_wins,
    concurrent_child_group_changes_never_close_a_cycle,
    additions_racing_deletes_of_their_contacts_all_succeed,
    imports_of_the_same_numbers_at_once_both_finish,
    opt_outs_racing_each_other_and_deletes_all_succeed,
);

/// Groups (two of them children of the third) gaining numbers while the same numbers' contacts
/// are deleted in bulk: every request succeeds, whichever comes first. On PostgreSQL a delete
/// locks the groups it changes (with those above them) by id, then the contacts by key, as an
/// addition does; locked in its own order, an addition holding its group and a delete holding
/// the contacts each waited for the other, and one failed as a deadlock.
async fn additions_racing_deletes_of_their_contacts_all_succeed(app: TestApp) {
    let numbers: Vec<String> = (0..40)
        .map(|i| format!("+1415555{:04}", 7000 + i))
        .collect();
    // "Race A" and "Race B" are children of "Race C", whose size a change below them changes.
    let mut groups = Vec::new();
    for name in ["Race A", "Race B"] {
        let group = app.create_group(json!({"name": name})).await;
        groups.push(group["id"].as_str().unwrap().to_owned());
    }
    let parent = app
        .create_group(json!({"name": "Race C", "child_groups": groups}))
        .await;
    groups.push(parent["id"].as_str().unwrap().to_owned());
    for round in 0..8 {
        // Every number a contact in every group again.
        for group in &groups {
            let path = format!("/api/contactgroups/{group}");
            let added = app
                .send_json(Method::PATCH, &path, &json!({"add": numbers}))
                .await;
            assert_eq!(added.status(), 200, "round {round}: set-up");
        }
        let ids = ids_by_phone_prefix(&app, "%2B14155557").await;
        assert_eq!(ids.len(), numbers.len(), "round {round}");
        let mut requests = Vec::new();
        for (n, group) in groups.iter().enumerate() {
            // Numbers in another order for each group.
            let mut order = numbers.clone();
            order.rotate_left(n * 13);
            if n % 2 == 1 {
                order.reverse();
            }
            requests.push(
                app.request(Method::PATCH, &format!("/api/contactgroups/{group}"))
                    .json(&json!({"add": order})),
            );
        }
        for half in [&ids[..20], &ids[20..]] {
            requests.push(
                app.request(Method::DELETE, "/api/contacts")
                    .json(&json!({"ids": half})),
            );
        }
        let statuses = statuses_at_once(requests).await;
        assert!(
            statuses.iter().all(|status| *status == 200),
            "round {round}: {statuses:?}"
        );
    }
}

/// Opt-outs of the same contacts listed in different orders, and deletes of some of them, all
/// at once, with the contacts' ids in the reverse of their keys' order (as contacts made by two
/// instances at once, or moved from the first schema, can be): every request succeeds and the
/// contacts left are opted out. On PostgreSQL an opt-out locked the contacts in id order (its
/// statement sorts the ids), a delete by key: each came to wait for a contact the other held,
/// and one was stopped as a deadlock (503).
async fn opt_outs_racing_each_other_and_deletes_all_succeed(app: TestApp) {
    let group = app.create_group(json!({"name": "Opt-out race"})).await;
    let path = format!("/api/contactgroups/{}", group["id"].as_str().unwrap());
    for round in 0..8 {
        let numbers: Vec<String> = (0..60).map(|i| format!("+1415558{round}{i:03}")).collect();
        let added = app
            .send_json(Method::PATCH, &path, &json!({"add": numbers}))
            .await;
        assert_eq!(added.status(), 200, "round {round}: set-up");
        let ids = ids_by_phone_prefix(&app, &format!("%2B1415558{round}")).await;
        assert_eq!(ids.len(), numbers.len(), "round {round}");
        swap_id_order(&app, &ids).await;
        let mut reversed = ids.clone();
        reversed.reverse();
        let mut rotated = ids.clone();
        rotated.rotate_left(29);
        let mut requests = Vec::new();
        for order in [&ids, &reversed, &rotated] {
            requests.push(
                app.request(Method::POST, "/api/contacts/opt-out")
                    .json(&json!({"ids": order})),
            );
        }
        for part in [&reversed[..20], &ids[..20]] {
            requests.push(
                app.request(Method::DELETE, "/api/contacts")
                    .json(&json!({"ids": part})),
            );
        }
        let statuses = statuses_at_once(requests).await;
        assert!(
            statuses.iter().all(|status| *status == 200),
            "round {round}: {statuses:?}"
        );
        let left: serde_json::Value = app
            .get(&format!(
                "/api/contacts?phone=%2B1415558{round}&opted_out=true&count=true&limit=1"
            ))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(left["count"], 20, "round {round}: {left}");
    }
}

/// The ids of up to 100 contacts whose numbers start with `prefix` (URL-encoded), newest first.
async fn ids_by_phone_prefix(app: &TestApp, prefix: &str) -> Vec<String> {
    let listed: serde_json::Value = app
        .get(&format!("/api/contacts?phone={prefix}&limit=100"))
        .await
        .json()
        .await
        .unwrap();
    listed["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends the requests at once; their statuses, in the order given.
async fn statuses_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<u16> {
    let writes = requests
        .into_iter()
        .map(|request| async move { request.send().await.unwrap().status().as_u16() });
    futures::future::join_all(writes).await
}

/// Two spreadsheets sharing their numbers, committed at once into groups of their own, the
/// second listing them in the reverse order: both imports finish and every number is one
/// contact in both groups. On PostgreSQL each import is one transaction over chunks of 5,000
/// rows; side by side, each came to wait for a number the other had written and not yet
/// committed, and one failed as a deadlock.
async fn imports_of_the_same_numbers_at_once_both_finish(app: TestApp) {
    let numbers: Vec<String> = (0..6_000).map(|i| format!("+1415556{:04}", i)).collect();
    let file = |numbers: &mut dyn Iterator<Item = &String>| {
        let mut csv = String::from("phone,first_name\n");
        for number in numbers {
            csv.push_str(&format!("{number},Pat\n"));
        }
        csv.into_bytes()
    };
    let mut ids = Vec::new();
    for bytes in [file(&mut numbers.iter()), file(&mut numbers.iter().rev())] {
        let (status, preview) = crate::imports::upload(&app, "customers.csv", bytes).await;
        assert_eq!(status, 201, "upload: {preview}");
        ids.push(preview["id"].as_str().unwrap().to_owned());
    }
    let commits = ids.iter().enumerate().map(|(n, id)| {
        app.request(Method::POST, &format!("/api/imports/{id}/commit"))
            .json(&json!({"default_region": "US", "group_names": [format!("Sheet {n}")]}))
            .send()
    });
    for response in futures::future::join_all(commits).await {
        assert_eq!(response.unwrap().status(), 202, "commit");
    }
    for id in &ids {
        let import = crate::imports::wait_import(&app, id).await;
        assert_eq!(import["status"], "done", "{import}");
        let groups = import["report"]["groups"].as_array().unwrap();
        assert_eq!(groups[0]["added"], 6_000, "{import}");
    }
    let listed: serde_json::Value = app
        .get("/api/contacts?phone=%2B1415556&count=true&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 6_000, "{listed}");
}

async fn concurrent_additions_are_all_kept(app: TestApp) {
    let group = app.create_group(json!({"name": "Busy"})).await;
    let id = group["id"].as_str().unwrap().to_owned();
    let path = format!("/api/contactgroups/{id}");
    let writers = (0..32).map(|i| {
        let request = app.request(Method::PATCH, &path).json(
            &json!({"add": [format!("+1415555{:04}", 5000 + i)], "remove": ["+14155554999"]}),
        );
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(writers).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let expected: Vec<String> = (0..32)
        .map(|i| format!("+1415555{:04}", 5000 + i))
        .collect();
    assert_eq!(app.member_numbers(&id).await, expected);
    let response = app.get(&path).await;
    // Every write made a version of its own: none was applied over a stale read.
    assert_eq!(response.headers()["etag"], "\"33\"");
    let group: serde_json::Value = response.json().await.unwrap();
    assert_eq!(group["size"], 32);
}

async fn one_of_many_stale_writers_wins(app: TestApp) {
    let group = app.create_group(json!({"name": "Contended"})).await;
    let path = format!("/api/contactgroups/{}", group["id"].as_str().unwrap());
    let writers = (0..16).map(|i| {
        let request = app
            .request(Method::PATCH, &path)
            .header("If-Match", "\"1\"")
            .json(&json!({"add": [format!("+1415555{:04}", 6000 + i)]}));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let mut statuses = futures::future::join_all(writers).await;
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 412),
        "{statuses:?}"
    );
    let after: serde_json::Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(after["size"], 1);
}

async fn concurrent_child_group_changes_never_close_a_cycle(app: TestApp) {
    // Each round, A → B and B → A are requested at once: at most one may succeed.
    for _ in 0..8 {
        let a = app.create_group(json!({"name": "A"})).await;
        let b = app.create_group(json!({"name": "B"})).await;
        let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        let first = app
            .request(Method::PATCH, &format!("/api/contactgroups/{a_id}"))
            .json(&json!({"child_groups": [b_id]}))
            .send();
        let second = app
            .request(Method::PATCH, &format!("/api/contactgroups/{b_id}"))
            .json(&json!({"child_groups": [a_id]}))
            .send();
        let (first, second) = tokio::join!(first, second);
        let statuses = [
            first.unwrap().status().as_u16(),
            second.unwrap().status().as_u16(),
        ];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(statuses.contains(&400), "{statuses:?}");
    }
}

/// An import PostgreSQL stops as a deadlock starts over and finishes, its report saying so and
/// its rejected row listed once: committed through the API, then from the command line. A
/// transaction holds the contact of the import's second chunk, waits until the import waits
/// for it, then asks for the contact the import's first chunk holds; its own deadlock timeout
/// is long, so PostgreSQL stops the import. Before, the import failed whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_import_stopped_as_a_deadlock_starts_over() {
    use sqlx::Connection;
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (round, via) in ["api", "cli"].into_iter().enumerate() {
        // The first and the 5,001st number (the first of the second chunk) are contacts already.
        let number = |n: usize| format!("+1415{:07}", 5_000_000 + round * 100_000 + n);
        let (first, second) = (number(0), number(5_000));
        for phone in [&first, &second] {
            let created = app
                .send_json(Method::POST, "/api/contacts", &json!({"phone": phone}))
                .await;
            assert_eq!(created.status(), 201, "{via}: {phone}");
        }
        let mut csv = format!("phone,first_name\n{first},Ann\nnot a number,Bob\n");
        for n in 1..5_010 {
            csv.push_str(&format!("{},Pat\n", number(n)));
        }

        let mut holder = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        let mut holder = holder.begin().await.unwrap();
        sqlx::query("SET LOCAL deadlock_timeout = '60s'")
            .execute(&mut *holder)
            .await
            .unwrap();
        let lock = "SELECT 1 FROM contacts WHERE phone = $1 FOR UPDATE";
        sqlx::query(lock)
            .bind(&second)
            .execute(&mut *holder)
            .await
            .unwrap();

        let group = format!("Deadlock {via}");
        let running = match via {
            "api" => {
                let (status, preview) =
                    crate::imports::upload(&app, "customers.csv", csv.into_bytes()).await;
                assert_eq!(status, 201, "upload: {preview}");
                let id = preview["id"].as_str().unwrap().to_owned();
                let settings = json!({"default_region": "US", "group_names": [group]});
                let path = format!("/api/imports/{id}/commit");
                let committed = app.send_json(Method::POST, &path, &settings).await;
                assert_eq!(committed.status(), 202, "commit");
                Err(id)
            }
            _ => {
                let file = dir.path().join("customers.csv");
                std::fs::write(&file, csv).unwrap();
                let errors = dir.path().join("rejected.csv");
                let child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
                    .arg("import")
                    .arg(&file)
                    .args(["--plan", &app.plan_id, "--group", &group, "--errors"])
                    .arg(&errors)
                    .env("ROSTER_DATABASE_URL", &app.database_url)
                    .env("RUST_LOG", "warn")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                Ok((child, errors))
            }
        };

        // The import waits for the held contact; asking for the one it holds closes the cycle.
        let never = format!("{via}: the import never came to wait for the held contact");
        crate::contacts::wait_for_a_lock(&app.database_url, &never).await;
        sqlx::query(lock)
            .bind(&first)
            .execute(&mut *holder)
            .await
            .expect("PostgreSQL stops the import, not the holder");
        holder.rollback().await.unwrap();

        let (report, rejected) = match running {
            Err(id) => {
                let import = crate::imports::wait_import(&app, &id).await;
                assert_eq!(import["status"], "done", "{import}");
                let rejected = import["rejected"].as_array().unwrap().len();
                (import["report"].clone(), rejected)
            }
            Ok((child, errors)) => {
                let output = tokio::task::spawn_blocking(move || child.wait_with_output())
                    .await
                    .unwrap()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert!(output.status.success(), "{stdout}\n{output:?}");
                assert_eq!(stdout.matches("row 3: ").count(), 1, "{stdout}");
                assert!(stdout.contains("warning: PostgreSQL stopped"), "{stdout}");
                let errors = std::fs::read_to_string(errors).unwrap();
                let lines = errors.lines().count();
                // Its header, and the rejected row once.
                assert_eq!(lines, 2, "{errors}");
                let created = stdout
                    .lines()
                    .find_map(|line| line.strip_prefix("created:"))
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap();
                (
                    json!({"created": created, "warnings": ["PostgreSQL stopped"]}),
                    1,
                )
            }
        };
        assert_eq!(report["created"], 5_008, "{via}: {report}");
        assert_eq!(rejected, 1, "{via}: {report}");
        let warning = report["warnings"][0].as_str().unwrap_or_default();
        assert!(warning.starts_with("PostgreSQL stopped"), "{via}: {report}");
        let listed: serde_json::Value = app
            .get(&format!(
                "/api/contacts?phone=%2B1415{}&count=true&limit=1",
                50 + round
            ))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["count"], 5_010, "{via}: {listed}");
    }
}
