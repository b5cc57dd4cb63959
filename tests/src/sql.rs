//! Raw SQL on a store's database, as someone with write access to it (a DBA, anyone holding the
//! SQLite file) would run it: the tamper tests use it to rewrite the audit log behind patchday's
//! back. SQLite and PostgreSQL URLs alike.

use sqlx::Connection as _;

/// Runs `sql` (one or more statements) on the database at `url`. Panics on failure.
pub fn execute(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(async {
            if url.starts_with("sqlite:") {
                let mut conn = sqlx::SqliteConnection::connect(url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            } else {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
