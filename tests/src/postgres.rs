//! A PostgreSQL schema of its own for a test that runs daemons on PostgreSQL: created on the
//! server named by `PATCHDAY_TEST_POSTGRES` (default: the local server's `test` database, as
//! the store tests use), dropped with everything in it when the [`Schema`] is dropped. An
//! unreachable server fails the test: these tests are never skipped.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The database the tests use.
pub fn test_url() -> String {
    std::env::var("PATCHDAY_TEST_POSTGRES").unwrap_or_else(|_| {
        "postgres://patchday_test:patchday_test@127.0.0.1:5432/patchday_test".to_string()
    })
}

/// A schema created for one test.
#[derive(Debug)]
pub struct Schema {
    admin_url: String,
    pub name: String,
    /// The database URL whose connections work in this schema (`search_path` set).
    pub url: String,
}

impl Schema {
    /// Creates an empty schema named after `test`, the process and a counter. Panics if the
    /// server cannot be reached.
    pub fn create(test: &str) -> Schema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url = test_url();
        let name = format!(
            "pd_e2e_{test}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        execute(&admin_url, &format!("CREATE SCHEMA {name}")).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {admin_url} is unreachable or refused ({e}); this test needs it \
                 (sudo bash .ci/deps-postgres.sh, or set PATCHDAY_TEST_POSTGRES)"
            )
        });
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{name}");
        Schema {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = execute(&self.admin_url, &sql) {
            eprintln!("dropping test schema {}: {e}", self.name);
        }
    }
}

/// Runs one statement on a connection of its own.
fn execute(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(sqlx::Error::Io)?;
    runtime.block_on(async {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await
    })
}
