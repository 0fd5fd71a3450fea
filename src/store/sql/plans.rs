//! Plans, their API tokens, the web page's sessions and the secrets every instance shares.

use super::*;

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
    /// Takes the plan's lock, which every change to the child-group graph holds, so that two
    /// concurrent changes cannot each close half of a cycle. Taken before any group's lock,
    /// so that locks are always acquired in one order.
    pub(crate) async fn lock_plan(conn: &mut Conn<D>, plan: &PlanId) -> StoreResult<()> {
        sqlx::query(D::LOCK_PLAN)
            .bind(plan.as_str())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> PlanStore for SqlStore<D>
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
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.dialect.reader())
            .await?;
        Ok(())
    }

    async fn create_plan(
        &self,
        name: &str,
        default_region: Option<&str>,
        by: &Actor,
    ) -> StoreResult<Plan> {
        let plan = Plan {
            id: PlanId::generate(),
            name: name.to_owned(),
            default_region: default_region.map(str::to_owned),
            created_at: Timestamp::now(),
        };
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO plans (id, name, default_region, created_at, key) \
                 VALUES ($1, $2, $3, $4, {})",
            D::NEW_PLAN_KEY
        )))
        .bind(plan.id.as_str())
        .bind(&plan.name)
        .bind(plan.default_region.as_deref())
        .bind(plan.created_at.millis())
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &plan.id,
            by,
            Change::new("plan.create", [&plan.id]),
        )
        .await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn add_token(
        &self,
        plan: &PlanId,
        by: &Actor,
        token_hash: &str,
        grant: &TokenGrant,
    ) -> StoreResult<TokenRecord> {
        let now = Timestamp::now();
        let mut tx = self.dialect.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO api_tokens (plan_id, token_hash, created_at, name, scopes) \
                 SELECT id, $2, $3, $4, $5 FROM plans WHERE id = $1",
        )
        .bind(plan.as_str())
        .bind(token_hash)
        .bind(now.millis())
        .bind(grant.name.as_deref())
        .bind(grant.scopes.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::NotFound(Entity::Plan));
        }
        let change = Change::new("token.create", [token_id(token_hash)])
            .with("scopes", grant.scopes.to_string());
        Self::audit(&mut tx, plan, by, change).await?;
        tx.commit().await?;
        Ok(TokenRecord {
            id: token_id(token_hash),
            name: grant.name.clone(),
            scopes: grant.scopes,
            created_at: now,
            revoked_at: None,
        })
    }

    async fn list_tokens(&self, plan: &PlanId) -> StoreResult<Vec<TokenRecord>> {
        let rows: Vec<(String, Option<String>, Option<String>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT token_hash, name, scopes, created_at, revoked_at FROM api_tokens \
                     WHERE plan_id = $1 ORDER BY created_at, token_hash",
        )
        .bind(plan.as_str())
        .fetch_all(self.dialect.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(hash, name, scopes, created_at, revoked_at)| TokenRecord {
                id: token_id(&hash),
                name,
                scopes: stored_scopes(scopes.as_deref()),
                created_at: Timestamp::from_millis(created_at),
                revoked_at: revoked_at.map(Timestamp::from_millis),
            })
            .collect())
    }

    async fn revoke_plan_token(&self, plan: &PlanId, by: &Actor, id: &str) -> StoreResult<()> {
        if id.len() != TOKEN_ID_CHARS || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound(Entity::Token));
        }
        let mut tx = self.dialect.begin_write().await?;
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 \
                 WHERE plan_id = $1 AND substr(token_hash, 1, 12) = $2 \
                 AND revoked_at IS NULL",
        )
        .bind(plan.as_str())
        .bind(id.to_ascii_lowercase())
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Two tokens of a plan sharing 48 bits of hash: neither is revoked by a name that does
        // not tell them apart.
        if revoked != 1 {
            return Err(StoreError::NotFound(Entity::Token));
        }
        Self::audit(
            &mut tx,
            plan,
            by,
            Change::new("token.revoke", [id.to_ascii_lowercase()]),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_token(&self, token_hash: &str, by: &Actor) -> StoreResult<PlanId> {
        let mut tx = self.dialect.begin_write().await?;
        let plan: Option<String> = sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = $2 \
                 WHERE token_hash = $1 AND revoked_at IS NULL RETURNING plan_id",
        )
        .bind(token_hash)
        .bind(Timestamp::now().millis())
        .fetch_optional(&mut *tx)
        .await?;
        let plan = plan
            .map(PlanId::from_trusted)
            .ok_or(StoreError::NotFound(Entity::Token))?;
        Self::audit(
            &mut tx,
            &plan,
            by,
            Change::new("token.revoke", [token_id(token_hash)]),
        )
        .await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn create_session(&self, session: &NewSession, by: &Actor) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions \
                 (plan_id, id_hash, token_hash, csrf, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.plan.as_str())
        .bind(&session.id_hash)
        .bind(&session.token_hash)
        .bind(&session.csrf)
        .bind(now)
        .bind(session.expires_at.millis())
        .execute(&mut *tx)
        .await?;
        Self::audit(&mut tx, &session.plan, by, Change::named("session.create")).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> StoreResult<Option<WebSession>> {
        type SessionRow = (
            String,
            String,
            Option<String>,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT p.id, p.name, p.default_region, p.created_at, s.token_hash, s.csrf, \
                     t.scopes, t.name \
                     FROM web_sessions s \
                     JOIN api_tokens t ON t.plan_id = s.plan_id \
                          AND t.token_hash = s.token_hash AND t.revoked_at IS NULL \
                     JOIN plans p ON p.id = s.plan_id \
                     WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(Timestamp::now().millis())
        .fetch_optional(self.dialect.reader())
        .await?;
        Ok(row.map(
            |(id, name, default_region, created_at, token_hash, csrf, scopes, token_name)| {
                WebSession {
                    plan: Plan {
                        id: PlanId::from_trusted(id),
                        name,
                        default_region,
                        created_at: Timestamp::from_millis(created_at),
                    },
                    token_hash,
                    token_name,
                    scopes: stored_scopes(scopes.as_deref()),
                    csrf,
                }
            },
        ))
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn server_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        let mut tx = self.dialect.begin_write().await?;
        sqlx::query(
            "INSERT INTO server_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        let secret: String =
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(secret)
    }

    async fn plan_for_token(&self, token_hash: &str) -> StoreResult<Option<(Plan, TokenGrant)>> {
        type TokenRow = (
            String,
            String,
            Option<String>,
            i64,
            Option<String>,
            Option<String>,
        );
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT p.id, p.name, p.default_region, p.created_at, t.scopes, t.name \
                 FROM api_tokens t JOIN plans p ON p.id = t.plan_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(self.dialect.reader())
        .await?;
        Ok(row.map(
            |(id, name, default_region, created_at, scopes, token_name)| {
                let plan = Plan {
                    id: PlanId::from_trusted(id),
                    name,
                    default_region,
                    created_at: Timestamp::from_millis(created_at),
                };
                let grant = TokenGrant {
                    name: token_name,
                    scopes: stored_scopes(scopes.as_deref()),
                };
                (plan, grant)
            },
        ))
    }

    async fn get_plan(&self, plan: &PlanId) -> StoreResult<Plan> {
        let row: Option<(String, String, Option<String>, i64)> =
            sqlx::query_as("SELECT id, name, default_region, created_at FROM plans WHERE id = $1")
                .bind(plan.as_str())
                .fetch_optional(self.dialect.reader())
                .await?;
        let (id, name, default_region, created_at) =
            row.ok_or(StoreError::NotFound(Entity::Plan))?;
        Ok(Plan {
            id: PlanId::from_trusted(id),
            name,
            default_region,
            created_at: Timestamp::from_millis(created_at),
        })
    }
}

/// A token's id: the start of its hash, enough to tell a plan's tokens apart.
fn token_id(hash: &str) -> String {
    hash.chars().take(TOKEN_ID_CHARS).collect()
}

/// Scopes as stored: none stored is a token from before scopes, with every right; a list that
/// does not read grants nothing.
fn stored_scopes(stored: Option<&str>) -> Scopes {
    match stored {
        None => Scopes::FULL,
        Some(text) => Scopes::parse(text).unwrap_or(Scopes::of([])),
    }
}
