//! The SQL both backends share. SQLite and PostgreSQL accept the same text here (`$n`
//! parameters, `ON CONFLICT ... DO UPDATE ... RETURNING`, `IS NOT DISTINCT FROM`), so the
//! trait is implemented once, by this macro, for each backend's pool type. Backend-specific
//! behaviour (connection set-up, later LISTEN/NOTIFY) lives in the backend's own file.

macro_rules! impl_store_with_shared_sql {
    ($store:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await
            }

            async fn create_merchant(&self, name: &str) -> Result<Merchant, StoreError> {
                let merchant = Merchant { id: MerchantId::generate(), name: name.to_owned(), created_at: now() };
                sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(merchant.id.to_string())
                    .bind(&merchant.name)
                    .bind(merchant.created_at.timestamp_micros())
                    .execute(&self.pool)
                    .await?;
                Ok(merchant)
            }

            async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError> {
                sqlx::query_as::<_, MerchantRow>("SELECT id, name, created_at FROM merchants WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Merchant::try_from)
                    .transpose()
            }

            async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (id, merchant_id, roles, secret_sha256, label, created_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key.id.to_string())
                .bind(key.merchant.map(|m| m.to_string()))
                .bind(key.roles.to_text())
                .bind(hex::encode(key.secret_sha256))
                .bind(key.label.as_deref())
                .bind(key.created_at.timestamp_micros())
                .bind(key.revoked_at.map(|t| t.timestamp_micros()))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn key(&self, id: KeyId) -> Result<Option<StoredKey>, StoreError> {
                sqlx::query_as::<_, KeyRow>(
                    "SELECT id, merchant_id, roles, secret_sha256, label, created_at, revoked_at
                     FROM api_keys WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(StoredKey::try_from)
                .transpose()
            }

            async fn keys(&self, merchant: Option<MerchantId>) -> Result<Vec<StoredKey>, StoreError> {
                let rows = sqlx::query_as::<_, KeyRow>(
                    "SELECT id, merchant_id, roles, secret_sha256, label, created_at, revoked_at
                     FROM api_keys WHERE merchant_id IS NOT DISTINCT FROM $1 ORDER BY id DESC",
                )
                .bind(merchant.map(|m| m.to_string()))
                .fetch_all(&self.pool)
                .await?;
                convert_all(rows)
            }

            async fn revoke_key(&self, merchant: Option<MerchantId>, id: KeyId) -> Result<Option<StoredKey>, StoreError> {
                let row = sqlx::query_as::<_, KeyRow>(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
                     WHERE id = $1 AND merchant_id IS NOT DISTINCT FROM $2
                     RETURNING id, merchant_id, roles, secret_sha256, label, created_at, revoked_at",
                )
                .bind(id.to_string())
                .bind(merchant.map(|m| m.to_string()))
                .bind(now().timestamp_micros())
                .fetch_optional(&self.pool)
                .await?;
                row.map(StoredKey::try_from).transpose()
            }

            async fn count_active_admin_keys(&self) -> Result<i64, StoreError> {
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM api_keys WHERE merchant_id IS NULL AND revoked_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(count)
            }

            async fn upsert_product(
                &self,
                merchant: MerchantId,
                draft: &ProductDraft,
            ) -> Result<(Product, Upserted), StoreError> {
                let merchant_id = merchant.to_string();
                let sku = draft.sku.as_str();
                let at = now().timestamp_micros();
                let guardrails = serde_json::to_string(draft.guardrails.as_input()).expect("guardrails serialize");
                let attributes = serde_json::to_string(draft.attributes.as_map()).expect("attributes serialize");
                // The first statement writes, so SQLite takes its write lock at once and never
                // has to upgrade a read snapshot (which would fail instead of waiting).
                let mut tx = self.pool.begin().await?;
                let written = sqlx::query_as::<_, ProductRow>(
                    "INSERT INTO products (merchant_id, sku, currency, cost_minor, base_price_minor,
                                           guardrails, attributes, version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
                     ON CONFLICT (merchant_id, sku) DO UPDATE SET
                         cost_minor = excluded.cost_minor,
                         base_price_minor = excluded.base_price_minor,
                         guardrails = excluded.guardrails,
                         attributes = excluded.attributes,
                         version = products.version + 1,
                         updated_at = excluded.updated_at
                     WHERE products.currency = excluded.currency
                       AND (products.cost_minor <> excluded.cost_minor
                            OR products.base_price_minor <> excluded.base_price_minor
                            OR products.guardrails <> excluded.guardrails
                            OR products.attributes <> excluded.attributes)
                     RETURNING sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                               version, created_at, updated_at",
                )
                .bind(&merchant_id)
                .bind(sku)
                .bind(draft.currency().code())
                .bind(draft.cost.minor())
                .bind(draft.base_price.minor())
                .bind(&guardrails)
                .bind(&attributes)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(written) = written else {
                    // Nothing written: either nothing changed or the currency differs.
                    let existing = sqlx::query_as::<_, ProductRow>(
                        "SELECT sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                                version, created_at, updated_at
                         FROM products WHERE merchant_id = $1 AND sku = $2",
                    )
                    .bind(&merchant_id)
                    .bind(sku)
                    .fetch_one(&mut *tx)
                    .await?;
                    let existing = Product::try_from(existing)?;
                    if existing.currency() != draft.currency() {
                        return Err(StoreError::CurrencyMismatch {
                            sku: draft.sku.clone(),
                            existing: existing.currency(),
                        });
                    }
                    return Ok((existing, Upserted::Unchanged));
                };
                // The base price is the price in force until a rule sets another.
                sqlx::query(
                    "INSERT INTO current_prices (merchant_id, sku, price_minor, currency, version, effective_at, source)
                     VALUES ($1, $2, $3, $4, 1, $5, 'base')
                     ON CONFLICT (merchant_id, sku) DO UPDATE SET
                         price_minor = excluded.price_minor,
                         version = current_prices.version + 1,
                         effective_at = excluded.effective_at
                     WHERE current_prices.source = 'base' AND current_prices.price_minor <> excluded.price_minor",
                )
                .bind(&merchant_id)
                .bind(sku)
                .bind(draft.base_price.minor())
                .bind(draft.currency().code())
                .bind(at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                let product = Product::try_from(written)?;
                let outcome = if product.version == 1 { Upserted::Created } else { Upserted::Updated };
                Ok((product, outcome))
            }

            async fn product(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<Product>, StoreError> {
                sqlx::query_as::<_, ProductRow>(
                    "SELECT sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                            version, created_at, updated_at
                     FROM products WHERE merchant_id = $1 AND sku = $2",
                )
                .bind(merchant.to_string())
                .bind(sku.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(Product::try_from)
                .transpose()
            }

            async fn products(
                &self,
                merchant: MerchantId,
                after: Option<&Sku>,
                limit: u32,
            ) -> Result<Vec<Product>, StoreError> {
                // Every SKU sorts after the empty string.
                let rows = sqlx::query_as::<_, ProductRow>(
                    "SELECT sku, currency, cost_minor, base_price_minor, guardrails, attributes,
                            version, created_at, updated_at
                     FROM products WHERE merchant_id = $1 AND sku > $2 ORDER BY sku LIMIT $3",
                )
                .bind(merchant.to_string())
                .bind(after.map_or("", Sku::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                convert_all(rows)
            }

            async fn delete_product(&self, merchant: MerchantId, sku: &Sku) -> Result<bool, StoreError> {
                let merchant_id = merchant.to_string();
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM current_prices WHERE merchant_id = $1 AND sku = $2")
                    .bind(&merchant_id)
                    .bind(sku.as_str())
                    .execute(&mut *tx)
                    .await?;
                let deleted = sqlx::query("DELETE FROM products WHERE merchant_id = $1 AND sku = $2")
                    .bind(&merchant_id)
                    .bind(sku.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(deleted > 0)
            }

            async fn current_price(&self, merchant: MerchantId, sku: &Sku) -> Result<Option<CurrentPrice>, StoreError> {
                sqlx::query_as::<_, PriceRow>(
                    "SELECT sku, price_minor, currency, version, effective_at
                     FROM current_prices WHERE merchant_id = $1 AND sku = $2",
                )
                .bind(merchant.to_string())
                .bind(sku.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(CurrentPrice::try_from)
                .transpose()
            }
        }
    };
}

pub(super) use impl_store_with_shared_sql;
