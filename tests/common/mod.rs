//! Test support shared by the test binaries: a fresh database per test, on either backend.
//!
//! PostgreSQL is required, not optional: when it cannot be reached the tests fail and say
//! so, they never skip. `PRICING_TEST_POSTGRES_URL` points at a server where the tests may
//! create databases (default: the local server with trust auth).

#![allow(dead_code)]

pub mod nats;
pub mod private_pg;
pub mod rules;
pub mod wat_rules;

use std::path::PathBuf;

use sqlx::Connection;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test: an SQLite file in its own folder, or a PostgreSQL database
/// named `pricing_test_<id>`.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The test's own folder (for SQLite, the database lives in it).
    pub dir: PathBuf,
}

pub fn postgres_server_url() -> String {
    std::env::var("PRICING_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

pub async fn fresh_database(backend: Backend) -> TestDb {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join("pricing-tests").join(&id);
    std::fs::create_dir_all(&dir).expect("the temp folder is writable");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("pricing.db").display()),
        Backend::Postgres => {
            let server = postgres_server_url();
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {server}: {e}\n\
                     The test suite runs every store test on PostgreSQL too. Start the server \
                     or set PRICING_TEST_POSTGRES_URL."
                )
            });
            let name = format!("pricing_test_{id}");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("the test user may create databases");
            conn.close().await.ok();
            replace_database(&server, &name)
        }
    };
    TestDb { backend, url, dir }
}

/// The one number the test database answers to `sql` (for what the store does not expose).
pub async fn scalar(db: &TestDb, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}

/// The server URL with its database name replaced.
fn replace_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs a test body once per backend: `both_backends!(name, body_fn)` makes `name::sqlite`
/// and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$body($crate::common::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$body($crate::common::Backend::Postgres).await
                }
            }
        )+
    };
}

/// Statements that keep every packed decision record as its plain text instead (what the
/// service reads back either way, so nothing changes for it), for tests that edit records
/// with SQL's text functions. Run them with the append-only triggers off.
pub async fn plain_records(db: &TestDb) -> Vec<String> {
    let store = pricing::store::connect(&db.url, &pricing::config::Settings::defaults().store).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let merchants: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT m.id FROM decisions d JOIN merchants m ON m.number = d.merchant_number
             WHERE d.packed IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut statements = Vec::new();
    for merchant in merchants {
        let mut after = 0;
        loop {
            let page = store.chain(merchant.parse().unwrap(), after, 1_000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            statements.extend(page.iter().map(|d| {
                format!(
                    "UPDATE decisions SET record = '{}', packed = NULL
                     WHERE merchant_number = (SELECT number FROM merchants WHERE id = '{merchant}') AND seq = {}",
                    d.record.replace('\'', "''"),
                    d.seq
                )
            }));
        }
    }
    store.close().await;
    statements
}
