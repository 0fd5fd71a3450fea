//! Groups: creating, reading, listing, changing and deleting them, their child groups and static
//! members, and what a group resolves to: its tree of active child groups, the effective
//! membership as one predicate (static members of the tree, plus every smart group's rule), and
//! the stream of its members' numbers.

use super::*;

pub(crate) const GROUP_COLUMNS: &str = "id, name, description, status, size, auto_update, rule, \
                             version, created_at, modified_at";

/// What a writer needs to know of the group it has locked.
pub(crate) struct LockedGroup {
    pub(crate) status: GroupStatus,
    pub(crate) smart: bool,
    pub(crate) member_count: i64,
}

/// A group of a resolution tree, with its rule if it is smart.
pub(crate) struct TreeGroup {
    pub(crate) key: i64,
    pub(crate) id: String,
    pub(crate) rule: Option<FilterExpr>,
}

/// How a membership test is written. `Probe` looks each candidate contact up (best when
/// a `LIMIT` stops the scan early); `Set` collects the members once and tests against
/// that (best when every member is wanted: counts, resolution, streams).
#[derive(Clone, Copy)]
pub(crate) enum Scan {
    Probe,
    Set,
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    Args<D>: IntoArguments<D::Db>,
    usize: ColumnIndex<Row<D>>,
    for<'n> &'n str: ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    pub(crate) fn group_from_row(
        row: &<D::Db as sqlx::Database>::Row,
    ) -> Result<crate::store::GroupRecord, sqlx::Error> {
        use sqlx::Row;
        let status: String = row.try_get("status")?;
        let auto_update: Option<String> = row.try_get("auto_update")?;
        let auto_update = auto_update
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        Ok(crate::store::GroupRecord {
            id: GroupId::from_trusted(row.try_get("id")?),
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            status: GroupStatus::parse(&status).unwrap_or(GroupStatus::Deleted),
            size: row.try_get("size")?,
            child_groups: Vec::new(),
            auto_update,
            rule: row.try_get("rule")?,
            version: row.try_get("version")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            modified_at: Timestamp::from_millis(row.try_get("modified_at")?),
        })
    }

    pub(crate) fn auto_update_json(
        auto_update: Option<&AutoUpdate>,
    ) -> Result<Option<String>, sqlx::Error> {
        auto_update
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| sqlx::Error::Encode(Box::new(error)))
    }

    /// The group's row and child ids: one statement, the hottest read.
    /// The audit row of a group made or replaced whole: what it holds, in counts.
    fn group_change(
        operation: &'static str,
        group: &GroupDefinition,
        made: &GroupRecord,
    ) -> Change {
        Change::new(operation, [&made.id])
            .with("members", group.members.len())
            .with("child_groups", group.child_groups.len())
            .with("smart", group.rule.is_some())
    }

    pub(crate) async fn fetch_group_row(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
    ) -> StoreResult<GroupRow> {
        sqlx::query_as(D::GROUP_ROW)
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound(Entity::Group))
    }

    pub(crate) async fn load_group(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
    ) -> StoreResult<GroupRecord> {
        let mut group = Self::fetch_group_row(conn, plan, id).await?.into_record()?;
        if Self::has_tree(&group) {
            Self::count_tree(conn, plan, &mut group).await?;
        }
        Ok(group)
    }

    /// The group has children or a rule: what it resolves to is more than its own rows.
    pub(crate) fn has_tree(group: &GroupRecord) -> bool {
        group.rule.is_some() || !group.child_groups.is_empty()
    }

    /// Sizes of trees with a smart group change with every contact; they are counted live.
    pub(crate) async fn count_tree(
        conn: &mut Conn<D>,
        plan: &PlanId,
        group: &mut GroupRecord,
    ) -> StoreResult<()> {
        let tree = Self::load_tree(conn, plan, group.id.as_str()).await?;
        if !Self::is_static(&tree) {
            group.size = Self::count_members(conn, plan, &tree).await?;
        }
        Ok(())
    }

    /// The number of distinct effective members of a tree.
    pub(crate) async fn count_members(
        conn: &mut Conn<D>,
        plan: &PlanId,
        tree: &[TreeGroup],
    ) -> StoreResult<i64> {
        let mut count =
            sqlx::QueryBuilder::<D::Db>::new("SELECT COUNT(*) FROM contacts c WHERE c.plan = ");
        push_plan_key(&mut count, plan);
        count.push(" AND ");
        Self::push_membership(&mut count, tree, Scan::Set);
        Ok(count.build_query_scalar().fetch_one(&mut *conn).await?)
    }

    /// Where the backend locks rows: locks `groups` and every group above them, in id order.
    /// A write to a group refreshes the sizes of the groups above it; locking those only then,
    /// after the contacts it wrote, two writers (a parent's and a child's, both making contacts
    /// for the same new numbers) each waited for what the other held.
    pub(crate) async fn lock_group_trees(
        conn: &mut Conn<D>,
        plan: &PlanId,
        groups: &[&GroupId],
    ) -> StoreResult<()> {
        let Some(lock) = D::LOCK_ROWS else {
            return Ok(());
        };
        let mut trees = sqlx::QueryBuilder::<D::Db>::new(
            "WITH RECURSIVE up (key) AS (SELECT key FROM contact_groups WHERE plan_id = ",
        );
        trees
            .push_bind(plan.as_str().to_owned())
            .push(" AND id IN ");
        D::push_list(&mut trees, groups.iter().map(|id| id.as_str()));
        trees.push(format!(
            " UNION SELECT gc.parent FROM group_children gc JOIN up ON gc.child = up.key) \
             SELECT g.key FROM contact_groups g WHERE g.key IN (SELECT key FROM up) \
             ORDER BY g.id{}{lock}",
            D::TEXT_COLLATE
        ));
        trees.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Reads the group's state, locking its row (with the groups above it) where the backend
    /// can, and checks the writer's expected version.
    pub(crate) async fn lock_group(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        expected_version: Option<i64>,
    ) -> StoreResult<LockedGroup> {
        Self::lock_group_trees(conn, plan, &[id]).await?;
        let (version, status, rule, member_count): (i64, String, Option<String>, i64) =
            sqlx::query_as(D::LOCK_GROUP)
                .bind(plan.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(StoreError::NotFound(Entity::Group))?;
        if expected_version.is_some_and(|expected| expected != version) {
            return Err(StoreError::VersionMismatch { current: version });
        }
        Ok(LockedGroup {
            status: GroupStatus::parse(&status).unwrap_or(GroupStatus::Deleted),
            smart: rule.is_some(),
            member_count,
        })
    }

    /// Fails with the ids among `ids` that are not active groups of the plan.
    pub(crate) async fn require_active_groups(
        conn: &mut Conn<D>,
        plan: &PlanId,
        ids: &[GroupId],
    ) -> StoreResult<()> {
        let mut unknown = Vec::new();
        for id in ids {
            let found: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM contact_groups WHERE plan_id = $1 AND id = $2 \
                     AND status = 'ACTIVE'",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            if found.is_none() {
                unknown.push(id.clone());
            }
        }
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(StoreError::UnknownGroups(unknown))
        }
    }

    /// Replaces the child groups of `id`, after checking they exist and keep the graph
    /// acyclic and shallow. The caller holds the plan's lock.
    pub(crate) async fn set_child_groups(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        children: &BTreeSet<GroupId>,
    ) -> StoreResult<()> {
        let ids: Vec<GroupId> = children.iter().cloned().collect();
        Self::require_active_groups(conn, plan, &ids).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT p.id, c.id FROM group_children gc \
                     JOIN contact_groups p ON p.key = gc.parent \
                     JOIN contact_groups c ON c.key = gc.child WHERE p.plan_id = $1",
        )
        .bind(plan.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut edges: BTreeMap<GroupId, Vec<GroupId>> = BTreeMap::new();
        for (parent, child) in rows {
            edges
                .entry(GroupId::from_trusted(parent))
                .or_default()
                .push(GroupId::from_trusted(child));
        }
        if let Err(error) = check_child_groups(id, children, &edges) {
            let path = match &error {
                ChildGroupsError::Cycle(path) | ChildGroupsError::TooDeep(path) => path,
            };
            let mut select = sqlx::QueryBuilder::<D::Db>::new(
                "SELECT id, name FROM contact_groups WHERE name IS NOT NULL AND plan_id = ",
            );
            select
                .push_bind(plan.as_str().to_owned())
                .push(" AND id IN ");
            D::push_list(&mut select, path.iter().map(GroupId::as_str));
            let names: Vec<(String, String)> =
                select.build_query_as().fetch_all(&mut *conn).await?;
            let names = names
                .into_iter()
                .map(|(id, name)| (GroupId::from_trusted(id), name))
                .collect();
            return Err(StoreError::ChildGroups(error, names));
        }
        sqlx::query(
            "DELETE FROM group_children \
                 WHERE parent = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
        for child in children {
            sqlx::query(
                "INSERT INTO group_children (parent, child) \
                     SELECT p.key, c.key FROM contact_groups p, contact_groups c \
                     WHERE p.plan_id = $1 AND p.id = $2 AND c.plan_id = $1 AND c.id = $3",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(child.as_str())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Adds numbers as direct members, creating the plan's contact for any number that has
    /// none. Returns how many memberships are new.
    pub(crate) async fn insert_members(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        numbers: &[&ParsedNumber],
        now: i64,
    ) -> StoreResult<u64> {
        if numbers.is_empty() {
            return Ok(0);
        }
        let keys = Self::contacts_of_numbers(conn, plan, numbers, now).await?;
        Self::add_members_by_key(conn, plan, id.as_str(), keys).await
    }

    /// The keys of the plan's contacts with these numbers, in key order, a contact made for
    /// each number that has none (but an erased number, which is left out).
    pub(crate) async fn contacts_of_numbers(
        conn: &mut Conn<D>,
        plan: &PlanId,
        numbers: &[&ParsedNumber],
        now: i64,
    ) -> StoreResult<Vec<i64>> {
        let phones: Vec<&str> = numbers.iter().map(|n| n.msisdn.as_str()).collect();
        let (mut keys, missing) = D::contact_keys(conn, plan, &phones).await?;
        if !missing.is_empty() {
            // A number no contact has may have been erased: it is left out.
            let unknown: Vec<&str> = missing.iter().map(String::as_str).collect();
            let erased = Self::erased_among(conn, plan, &unknown).await?;
            let missing: std::collections::HashSet<String> = missing.into_iter().collect();
            let new: Vec<&ParsedNumber> = numbers
                .iter()
                .copied()
                .filter(|number| missing.contains(number.msisdn.as_str()))
                .filter(|number| !erased.contains(number.msisdn.as_str()))
                .collect();
            keys.extend(D::insert_contacts(conn, plan, &new, now).await?);
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    pub(crate) async fn delete_members(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        numbers: &[&ParsedNumber],
    ) -> StoreResult<u64> {
        if numbers.is_empty() {
            return Ok(0);
        }
        let phones: Vec<&str> = numbers.iter().map(|n| n.msisdn.as_str()).collect();
        let deleted = sqlx::query(D::DELETE_MEMBERS_BY_PHONE)
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(D::phone_list(&phones))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    /// Carries out a membership change in the algebra's order; returns the change in the
    /// number of direct members.
    pub(crate) async fn apply_membership_change(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        change: &MembershipChange<ParsedNumber>,
        now: i64,
    ) -> StoreResult<i64> {
        let mut delta = 0i64;
        for step in change.steps() {
            let affected = match step {
                MembershipStep::Insert(numbers) => {
                    Self::insert_members(conn, plan, id, &numbers, now).await? as i64
                }
                MembershipStep::InsertMembersOf(source) => {
                    let tree = Self::load_tree(conn, plan, source.as_str()).await?;
                    let mut insert = sqlx::QueryBuilder::<D::Db>::new(
                        "INSERT INTO group_members (grp, contact) SELECT ",
                    );
                    push_group_key(&mut insert, plan, id.as_str());
                    insert.push(", c.key FROM contacts c WHERE c.plan = ");
                    push_plan_key(&mut insert, plan);
                    insert.push(" AND ");
                    Self::push_membership(&mut insert, &tree, Scan::Set);
                    insert.push(" ON CONFLICT DO NOTHING");
                    insert.build().execute(&mut *conn).await?.rows_affected() as i64
                }
                MembershipStep::Delete(numbers) => {
                    -(Self::delete_members(conn, plan, id, &numbers).await? as i64)
                }
                MembershipStep::DeleteMembersOf(source) => {
                    let tree = Self::load_tree(conn, plan, source.as_str()).await?;
                    let mut delete =
                        sqlx::QueryBuilder::<D::Db>::new("DELETE FROM group_members WHERE grp = ");
                    push_group_key(&mut delete, plan, id.as_str());
                    delete.push(" AND contact IN (SELECT c.key FROM contacts c WHERE c.plan = ");
                    push_plan_key(&mut delete, plan);
                    delete.push(" AND ");
                    Self::push_membership(&mut delete, &tree, Scan::Set);
                    delete.push(")");
                    -(delete.build().execute(&mut *conn).await?.rows_affected() as i64)
                }
            };
            delta += affected;
        }
        Ok(delta)
    }

    /// Recomputes the stored size of `id` and of every group above it. A group without
    /// active children has exactly its direct members, which are counted as they change;
    /// only groups with children need the distinct count over their tree (and trees with a
    /// smart group are counted again whenever they are read). Groups are
    /// updated in id order, so that two writers below a shared ancestor lock rows in the
    /// same order and cannot deadlock.
    pub(crate) async fn refresh_sizes(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
    ) -> StoreResult<()> {
        let ancestors: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE up(key, depth) AS ( \
                     SELECT key, 0 FROM contact_groups WHERE plan_id = $1 AND id = $2 \
                     UNION \
                     SELECT gc.parent, up.depth + 1 FROM up \
                     JOIN group_children gc ON gc.child = up.key \
                     WHERE up.depth < 64 \
                 ) SELECT DISTINCT g.id FROM up JOIN contact_groups g ON g.key = up.key \
                 ORDER BY g.id",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        for group in ancestors {
            let tree = Self::load_tree(conn, plan, &group).await?;
            if tree.len() == 1 && Self::is_static(&tree) {
                sqlx::query(
                    "UPDATE contact_groups SET size = member_count \
                         WHERE plan_id = $1 AND id = $2",
                )
                .bind(plan.as_str())
                .bind(group.as_str())
                .execute(&mut *conn)
                .await?;
            } else {
                let size = Self::count_members(conn, plan, &tree).await?;
                sqlx::query("UPDATE contact_groups SET size = $3 WHERE plan_id = $1 AND id = $2")
                    .bind(plan.as_str())
                    .bind(group.as_str())
                    .bind(size)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn bump_version(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        member_delta: i64,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE contact_groups SET version = version + 1, modified_at = $3, \
                 member_count = member_count + $4 WHERE plan_id = $1 AND id = $2",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .bind(now)
        .bind(member_delta)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// One page of the distinct effective members of a group with children or a rule, after
    /// `after` and then `offset` more, by contact id: the plan's contacts in id order, each tested
    /// for membership.
    pub(crate) async fn fetch_tree_members(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
        after: &[u8],
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<MemberRecord>> {
        use sqlx::Row;
        let tree = Self::load_tree(conn, plan, id.as_str()).await?;
        let mut page = sqlx::QueryBuilder::<D::Db>::new(
            "SELECT c.id, c.phone, c.first_name, c.last_name, c.opted_out \
                 FROM contacts c WHERE c.plan = ",
        );
        push_plan_key(&mut page, plan);
        page.push(" AND c.id > ")
            .push_bind(after.to_vec())
            .push(" AND ");
        // SQLite (3.51) turns the probe's EXISTS into a join and counts a contact in two of
        // the tree's groups twice against OFFSET, though not against LIMIT: a numbered page
        // past the first reads the members as a set.
        let scan = if offset > 0 { Scan::Set } else { Scan::Probe };
        Self::push_membership(&mut page, &tree, scan);
        page.push(" ORDER BY c.id LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let rows = page.build().fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|row| {
                Ok(MemberRecord {
                    contact_id: stored_contact_id(row.try_get("id")?)?,
                    phone: row.try_get("phone")?,
                    first_name: row.try_get("first_name")?,
                    last_name: row.try_get("last_name")?,
                    opted_out: row.try_get("opted_out")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub(crate) fn push_group_filters(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        query: &GroupQuery,
    ) {
        builder
            .push(" WHERE plan_id = ")
            .push_bind(plan.as_str().to_owned());
        match query.status {
            StatusFilter::Active => {
                builder.push(" AND status = 'ACTIVE'");
            }
            StatusFilter::Deleted => {
                builder.push(" AND status = 'DELETED'");
            }
            StatusFilter::Any => {}
        }
        if let Some(name) = &query.name_contains {
            let escaped = name
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            builder
                .push(" AND lower(name) LIKE ")
                .push_bind(format!("%{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        if let Some(parent) = &query.child_of {
            builder.push(" AND key IN (SELECT child FROM group_children WHERE parent = ");
            push_group_key(builder, plan, parent.as_str());
            builder.push(")");
        }
    }

    /// The end of a list of groups: after the cursor (keyset) or from an offset, in `sort` then
    /// id order, one row more than the page so that the caller knows whether another follows.
    /// Returns the page's size.
    fn push_group_window(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        window: &Window,
        sort: &str,
        descending: bool,
    ) -> StoreResult<i64> {
        let (limit, offset) = match window {
            Window::After { after, limit } => {
                if let Some(cursor) = after {
                    let CursorTie::Id(id) = &cursor.tie else {
                        return Err(StoreError::ForeignCursor);
                    };
                    let comparison = if descending { "<" } else { ">" };
                    builder.push(format!(" AND ({sort}, id) {comparison} ("));
                    push_cursor_key(builder, &cursor.key);
                    builder.push(", ").push_bind(id.clone()).push(")");
                }
                (*limit, 0)
            }
            Window::Offset { offset, limit } => (*limit, *offset),
        };
        let direction = if descending { "DESC" } else { "ASC" };
        builder
            .push(format!(
                " ORDER BY {sort} {direction}, id {direction} LIMIT "
            ))
            .push_bind(limit + 1)
            .push(" OFFSET ")
            .push_bind(offset);
        Ok(limit)
    }

    pub(crate) fn cursor_of(order: GroupOrder, group: &GroupRecord) -> Cursor {
        let key = match order {
            GroupOrder::CreatedAt => CursorKey::Number(group.created_at.millis()),
            GroupOrder::Size => CursorKey::Number(group.size),
            GroupOrder::Name => CursorKey::Text(group.name.clone().unwrap_or_default()),
        };
        Cursor {
            key,
            tie: CursorTie::Id(group.id.to_string()),
        }
    }

    /// Sends the phones of a tree's distinct effective members, in chunks.
    pub(crate) async fn stream_tree_numbers(
        conn: &mut Conn<D>,
        plan: &PlanId,
        tree: &[TreeGroup],
        sender: &NumberChunks,
    ) -> StoreResult<()> {
        let mut query = match tree {
            // Reached by a group without children on PostgreSQL; trees without rules are
            // merged by each backend its own way.
            [lone] if lone.rule.is_none() => {
                let mut query = sqlx::QueryBuilder::<D::Db>::new("");
                Self::push_static_numbers(&mut query, &[lone.key], &[], false, Columns::Phone);
                query
            }
            _ => {
                let mut query = sqlx::QueryBuilder::<D::Db>::new(
                    "SELECT c.phone FROM contacts c WHERE c.plan = ",
                );
                push_plan_key(&mut query, plan);
                query.push(" AND ");
                Self::push_membership(&mut query, tree, Scan::Set);
                query
            }
        };
        let rows = query.build_query_scalar::<String>().fetch(&mut *conn);
        forward_rows(rows, sender).await
    }

    pub(crate) async fn parents_of(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
    ) -> StoreResult<Vec<GroupId>> {
        let parents: Vec<String> = sqlx::query_scalar(
            "SELECT p.id FROM group_children gc JOIN contact_groups p ON p.key = gc.parent \
                 WHERE gc.child = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2)",
        )
        .bind(plan.as_str())
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        Ok(parents.into_iter().map(GroupId::from_trusted).collect())
    }

    pub(crate) async fn refresh_parents(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &GroupId,
    ) -> StoreResult<()> {
        for parent in Self::parents_of(conn, plan, id).await? {
            Self::refresh_sizes(conn, plan, &parent).await?;
        }
        Ok(())
    }

    /// The group and, recursively, its active child groups.
    pub(crate) async fn load_tree(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &str,
    ) -> StoreResult<Vec<TreeGroup>> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            // The groups whose members a group resolves to: itself and, recursively, its
            // active child groups. `UNION` (not `UNION ALL`) also guarantees that the
            // recursion ends even on a graph that somehow held a cycle.
            "WITH RECURSIVE tree(key) AS ( \
                     SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2 \
                     UNION \
                     SELECT gc.child FROM tree \
                     JOIN group_children gc ON gc.parent = tree.key \
                     JOIN contact_groups g ON g.key = gc.child AND g.status = 'ACTIVE' \
                 ) \
                 SELECT g.key, g.id, g.rule FROM tree \
                 JOIN contact_groups g ON g.key = tree.key ORDER BY g.id",
        )
        .bind(plan.as_str())
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|(key, id, rule)| {
                let rule = rule
                    .map(|source| FilterExpr::parse(&source))
                    .transpose()
                    .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
                Ok(TreeGroup { key, id, rule })
            })
            .collect()
    }

    /// `SELECT c.phone …`: the numbers of the direct members of the groups `include` that are not
    /// direct members of `exclude` (and, with `opted_in`, have not opted out), in contact key
    /// order: the groups' ranges of keys are merged first, then each key's number is looked up.
    pub(crate) fn push_static_numbers(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        include: &[i64],
        exclude: &[i64],
        opted_in: bool,
        columns: Columns,
    ) {
        builder
            .push("SELECT ")
            .push(columns.of("c"))
            .push(" FROM (");
        D::push_group_contacts(builder, include, GroupsTerm::Kept);
        if !exclude.is_empty() {
            builder.push(" EXCEPT ");
            D::push_group_contacts(builder, exclude, GroupsTerm::LeftOut);
        }
        builder
            .push(D::MERGE_ORDER)
            .push(") AS u JOIN contacts c ON ");
        D::push_member_contact(builder, include);
        if opted_in {
            builder.push(" WHERE NOT c.opted_out");
        }
    }

    /// Whether the tree's members can be read off `group_members` alone.
    pub(crate) fn is_static(tree: &[TreeGroup]) -> bool {
        tree.iter().all(|group| group.rule.is_none())
    }

    pub(crate) fn tree_keys(tree: &[TreeGroup]) -> Vec<i64> {
        tree.iter().map(|group| group.key).collect()
    }

    /// `c` is an effective member of the tree: a direct member of one of its static groups,
    /// or matched by one of its rules. A lone test is written without `OR`, so that
    /// PostgreSQL can turn it into a join.
    pub(crate) fn push_membership(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        tree: &[TreeGroup],
        scan: Scan,
    ) {
        let static_keys: Vec<i64> = tree
            .iter()
            .filter(|group| group.rule.is_none())
            .map(|group| group.key)
            .collect();
        let rules: Vec<&FilterExpr> = tree
            .iter()
            .filter_map(|group| group.rule.as_ref())
            .collect();
        if static_keys.is_empty() && rules.is_empty() {
            builder.push("FALSE");
            return;
        }
        builder.push("(");
        let mut first = true;
        if !static_keys.is_empty() {
            first = false;
            builder.push(match scan {
                Scan::Probe => {
                    "EXISTS (SELECT 1 FROM group_members m WHERE m.contact = c.key AND m.grp IN ("
                }
                Scan::Set => "c.key IN (SELECT m.contact FROM group_members m WHERE m.grp IN (",
            });
            let mut keys = builder.separated(", ");
            for key in static_keys {
                keys.push_bind(key);
            }
            builder.push("))");
        }
        for rule in rules {
            if !first {
                builder.push(" OR ");
            }
            first = false;
            Self::push_filter(builder, rule.root());
        }
        builder.push(")");
    }
}

#[async_trait]
impl<D: Dialect> GroupStore for SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    Args<D>: IntoArguments<D::Db>,
    usize: ColumnIndex<Row<D>>,
    for<'n> &'n str: ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    async fn create_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        group: GroupDefinition,
    ) -> StoreResult<GroupRecord> {
        let id = GroupId::generate();
        let now = Timestamp::now().millis();
        let auto_update = Self::auto_update_json(group.auto_update.as_ref())?;
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let group = &group;
        let outcome = async move {
            sqlx::query(
                "INSERT INTO contact_groups (plan_id, id, name, description, status, \
                     auto_update, rule, created_at, modified_at) \
                     VALUES ($1, $2, $3, $4, 'ACTIVE', $5, $7, $6, $6)",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(group.name.as_ref().map(GroupName::as_str))
            .bind(group.description.as_ref().map(Description::as_str))
            .bind(auto_update)
            .bind(now)
            .bind(group.rule.as_ref().map(FilterExpr::source))
            .execute(&mut *conn)
            .await?;
            if !group.child_groups.is_empty() {
                Self::lock_plan(conn, plan).await?;
                Self::set_child_groups(conn, plan, &id, &group.child_groups).await?;
            }
            let members: Vec<&ParsedNumber> = group.members.iter().collect();
            let added = Self::insert_members(conn, plan, &id, &members, now).await?;
            sqlx::query(
                "UPDATE contact_groups SET member_count = $3 \
                     WHERE plan_id = $1 AND id = $2",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(added as i64)
            .execute(&mut *conn)
            .await?;
            Self::refresh_sizes(conn, plan, &id).await?;
            Self::load_group(conn, plan, &id).await
        }
        .await?;
        Self::audit(
            &mut tx,
            plan,
            by,
            Self::group_change("group.create", group, &outcome),
        )
        .await?;
        let data = serde_json::json!({"group_id": outcome.id.as_str(), "change": "created"});
        Self::emit(
            &mut tx,
            plan,
            Event::new(EventType::GroupChanged, &outcome.id, data),
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn get_group(&self, plan: &PlanId, id: &GroupId) -> StoreResult<GroupRecord> {
        let mut group = self.dialect.group_row(plan, id).await?.into_record()?;
        if Self::has_tree(&group) {
            let mut conn = self.dialect.reader().acquire().await?;
            Self::count_tree(&mut conn, plan, &mut group).await?;
        }
        Ok(group)
    }

    async fn list_groups(&self, plan: &PlanId, query: &GroupQuery) -> StoreResult<GroupPage> {
        let mut conn = self.dialect.reader().acquire().await?;
        let mut count = sqlx::QueryBuilder::<D::Db>::new("SELECT COUNT(*) FROM contact_groups");
        Self::push_group_filters(&mut count, plan, query);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;

        let sort = match query.order {
            GroupOrder::CreatedAt => "created_at",
            GroupOrder::Name => D::NAME_SORT_KEY,
            GroupOrder::Size => "size",
        };
        let mut page =
            sqlx::QueryBuilder::<D::Db>::new(format!("SELECT {GROUP_COLUMNS} FROM contact_groups"));
        Self::push_group_filters(&mut page, plan, query);
        let limit = Self::push_group_window(&mut page, &query.window, sort, query.descending)?;
        let rows = page.build().fetch_all(&mut *conn).await?;
        let mut groups = rows
            .iter()
            .map(Self::group_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let more = groups.len() as i64 > limit;
        groups.truncate(limit.max(0) as usize);

        if !groups.is_empty() {
            let mut children = sqlx::QueryBuilder::<D::Db>::new(
                "SELECT p.id, c.id FROM group_children gc \
                     JOIN contact_groups p ON p.key = gc.parent \
                     JOIN contact_groups c ON c.key = gc.child WHERE p.plan_id = ",
            );
            children
                .push_bind(plan.as_str().to_owned())
                .push(" AND p.id IN (");
            let mut ids = children.separated(", ");
            for group in &groups {
                ids.push_bind(group.id.as_str().to_owned());
            }
            children.push(format!(
                ") ORDER BY p.id{collate}, c.id{collate}",
                collate = D::TEXT_COLLATE
            ));
            let edges: Vec<(String, String)> =
                children.build_query_as().fetch_all(&mut *conn).await?;
            let mut by_parent: BTreeMap<String, Vec<GroupId>> = BTreeMap::new();
            for (parent, child) in edges {
                by_parent
                    .entry(parent)
                    .or_default()
                    .push(GroupId::from_trusted(child));
            }
            for group in &mut groups {
                group.child_groups = by_parent.remove(group.id.as_str()).unwrap_or_default();
            }
        }
        let next = match (&query.window, more, groups.last()) {
            (Window::After { .. }, true, Some(last)) => Some(Self::cursor_of(query.order, last)),
            _ => None,
        };
        Ok(GroupPage {
            groups,
            total,
            next,
        })
    }

    async fn replace_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &GroupId,
        expected_version: Option<i64>,
        group: GroupDefinition,
    ) -> StoreResult<GroupRecord> {
        let now = Timestamp::now().millis();
        let auto_update = Self::auto_update_json(group.auto_update.as_ref())?;
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let group = &group;
        let outcome = async move {
            Self::lock_plan(conn, plan).await?;
            if Self::lock_group(conn, plan, id, expected_version)
                .await?
                .status
                == GroupStatus::Deleted
            {
                return Err(StoreError::GroupDeleted);
            }
            Self::set_child_groups(conn, plan, id, &group.child_groups).await?;
            sqlx::query(
                "DELETE FROM group_members \
                     WHERE grp = (SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2)",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?;
            let members: Vec<&ParsedNumber> = group.members.iter().collect();
            let added = Self::insert_members(conn, plan, id, &members, now).await?;
            sqlx::query(
                "UPDATE contact_groups SET name = $3, description = $4, \
                     auto_update = $5, member_count = $6, version = version + 1, \
                     modified_at = $7, rule = $8 WHERE plan_id = $1 AND id = $2",
            )
            .bind(plan.as_str())
            .bind(id.as_str())
            .bind(group.name.as_ref().map(GroupName::as_str))
            .bind(group.description.as_ref().map(Description::as_str))
            .bind(auto_update)
            .bind(added as i64)
            .bind(now)
            .bind(group.rule.as_ref().map(FilterExpr::source))
            .execute(&mut *conn)
            .await?;
            Self::refresh_sizes(conn, plan, id).await?;
            Self::load_group(conn, plan, id).await
        }
        .await?;
        Self::audit(
            &mut tx,
            plan,
            by,
            Self::group_change("group.replace", group, &outcome),
        )
        .await?;
        let data = serde_json::json!({"group_id": id.as_str(), "change": "replaced"});
        Self::emit(&mut tx, plan, Event::new(EventType::GroupChanged, id, data)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn update_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &GroupId,
        expected_version: Option<i64>,
        update: GroupUpdate,
    ) -> StoreResult<GroupRecord> {
        let now = Timestamp::now().millis();
        let auto_update = update
            .auto_update
            .as_ref()
            .map(|value| Self::auto_update_json(value.as_ref()))
            .transpose()?;
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let mut delta = 0;
        let members_delta = &mut delta;
        let update = &update;
        let outcome = async move {
            if update.child_groups.is_some() {
                Self::lock_plan(conn, plan).await?;
            }
            let locked = Self::lock_group(conn, plan, id, expected_version).await?;
            if locked.status == GroupStatus::Deleted && update.status != Some(GroupStatus::Active) {
                return Err(StoreError::GroupDeleted);
            }
            let smart_after = match &update.rule {
                Some(rule) => rule.is_some(),
                None => locked.smart,
            };
            if smart_after && !update.members.is_empty() {
                return Err(StoreError::SmartGroup(GroupRef::Addressed));
            }
            if matches!(update.rule, Some(Some(_))) && !locked.smart && locked.member_count > 0 {
                return Err(StoreError::RuleOverMembers);
            }
            if let Some(rule) = &update.rule {
                sqlx::query("UPDATE contact_groups SET rule = $3 WHERE plan_id = $1 AND id = $2")
                    .bind(plan.as_str())
                    .bind(id.as_str())
                    .bind(rule.as_ref().map(FilterExpr::source))
                    .execute(&mut *conn)
                    .await?;
            }
            let sources: Vec<GroupId> = update
                .members
                .add_from_group()
                .into_iter()
                .chain(update.members.remove_from_group())
                .cloned()
                .collect();
            Self::require_active_groups(conn, plan, &sources).await?;
            if let Some(status) = update.status {
                sqlx::query(
                    "UPDATE contact_groups SET status = $3 \
                         WHERE plan_id = $1 AND id = $2",
                )
                .bind(plan.as_str())
                .bind(id.as_str())
                .bind(status.as_str())
                .execute(&mut *conn)
                .await?;
            }
            if let Some(name) = &update.name {
                sqlx::query("UPDATE contact_groups SET name = $3 WHERE plan_id = $1 AND id = $2")
                    .bind(plan.as_str())
                    .bind(id.as_str())
                    .bind(name.as_ref().map(GroupName::as_str))
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(description) = &update.description {
                sqlx::query(
                    "UPDATE contact_groups SET description = $3 \
                         WHERE plan_id = $1 AND id = $2",
                )
                .bind(plan.as_str())
                .bind(id.as_str())
                .bind(description.as_ref().map(Description::as_str))
                .execute(&mut *conn)
                .await?;
            }
            if let Some(auto_update) = auto_update {
                sqlx::query(
                    "UPDATE contact_groups SET auto_update = $3 \
                         WHERE plan_id = $1 AND id = $2",
                )
                .bind(plan.as_str())
                .bind(id.as_str())
                .bind(auto_update)
                .execute(&mut *conn)
                .await?;
            }
            if let Some(children) = &update.child_groups {
                Self::set_child_groups(conn, plan, id, children).await?;
            }
            let delta = Self::apply_membership_change(conn, plan, id, &update.members, now).await?;
            *members_delta = delta;
            Self::bump_version(conn, plan, id, delta, now).await?;
            Self::refresh_sizes(conn, plan, id).await?;
            if update.status.is_some() {
                // The group's own status decides whether its parents count it.
                Self::refresh_parents(conn, plan, id).await?;
            }
            Self::load_group(conn, plan, id).await
        }
        .await?;
        let mut change = Change::new("group.update", [id]).fields(&[
            ("name", update.name.is_some()),
            ("description", update.description.is_some()),
            ("auto_update", update.auto_update.is_some()),
            ("child_groups", update.child_groups.is_some()),
            ("rule", update.rule.is_some()),
            ("status", update.status.is_some()),
        ]);
        if delta != 0 {
            change = change.with("members_delta", delta);
        }
        let mut data = serde_json::json!({"group_id": id.as_str(), "change": "updated"});
        for name in ["fields", "members_delta"] {
            if let Some(value) = change.summary.get(name) {
                data[name] = value.clone();
            }
        }
        Self::audit(&mut tx, plan, by, change).await?;
        Self::emit(&mut tx, plan, Event::new(EventType::GroupChanged, id, data)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn delete_group(
        &self,
        plan: &PlanId,
        by: &Actor,
        id: &GroupId,
        expected_version: Option<i64>,
        purge: bool,
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        let conn: &mut Conn<D> = &mut tx;
        let outcome = async move {
            if purge {
                // Purging removes edges of the child-group graph.
                Self::lock_plan(conn, plan).await?;
            }
            let status = Self::lock_group(conn, plan, id, expected_version)
                .await?
                .status;
            let changed = purge || status == GroupStatus::Active;
            if purge {
                let parents = Self::parents_of(conn, plan, id).await?;
                sqlx::query("DELETE FROM contact_groups WHERE plan_id = $1 AND id = $2")
                    .bind(plan.as_str())
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                for parent in parents {
                    Self::refresh_sizes(conn, plan, &parent).await?;
                }
            } else if status == GroupStatus::Active {
                sqlx::query(
                    "UPDATE contact_groups SET status = 'DELETED', \
                         version = version + 1, modified_at = $3 \
                         WHERE plan_id = $1 AND id = $2",
                )
                .bind(plan.as_str())
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
                Self::refresh_parents(conn, plan, id).await?;
            }
            Ok::<_, StoreError>(changed)
        }
        .await?;
        let change = Change::new("group.delete", [id]).with("purge", purge);
        Self::audit(&mut tx, plan, by, change).await?;
        // Deleting a group already deleted changes nothing to announce.
        if outcome {
            let how = if purge { "purged" } else { "deleted" };
            let data = serde_json::json!({"group_id": id.as_str(), "change": how});
            Self::emit(&mut tx, plan, Event::new(EventType::GroupChanged, id, data)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_members(
        &self,
        plan: &PlanId,
        group: &GroupId,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<PendingMember>, i64)> {
        self.read_pending(plan, group, offset, limit).await
    }

    async fn expire_confirmations(&self, now: Timestamp) -> StoreResult<u64> {
        self.expire_requests(now).await
    }

    async fn member_page(
        &self,
        plan: &PlanId,
        group: &GroupRecord,
        window: &Window<ContactId>,
    ) -> StoreResult<MemberPage> {
        // Empty bytes: from the first member.
        let (after, offset, limit) = match window {
            Window::After { after, limit } => {
                (after.as_ref().map_or_else(Vec::new, id_bytes), 0, *limit)
            }
            Window::Offset { offset, limit } => (Vec::new(), *offset, *limit),
        };
        // A group without children or rule reads its members straight off the primary
        // key, in one statement.
        let mut members = if Self::has_tree(group) {
            let mut conn = self.dialect.reader().acquire().await?;
            Self::fetch_tree_members(&mut conn, plan, &group.id, &after, limit + 1, offset).await?
        } else {
            members_from_json(
                self.dialect
                    .member_page_json(plan, &group.id, &after, limit + 1, offset)
                    .await?,
            )?
        };
        let more = members.len() as i64 > limit;
        members.truncate(limit.max(0) as usize);
        let next = match (window, more) {
            (Window::After { .. }, true) => members.last().map(|m| m.contact_id.clone()),
            _ => None,
        };
        Ok(MemberPage { members, next })
    }

    fn member_numbers(&self, plan: PlanId, id: GroupId) -> BoxStream<'static, StoreResult<String>> {
        let store = self.clone();
        spawn_number_stream(move |sender| async move {
            let mut conn = store.dialect.reader().acquire().await?;
            let tree = Self::load_tree(&mut conn, &plan, id.as_str()).await?;
            store.dialect.stream_tree(conn, plan, tree, sender).await
        })
    }
}
