//! The pre-release migration history, squashed into the baseline: a database
//! that recorded exactly it is adopted, any other part of it refused.

use sqlx::PgConnection;

use super::{sqlx_table_exists, MigrateError, MIGRATOR};

/// The pre-release migration history (0.1.0 squashed it into the baseline):
/// versions and sqlx checksums (sha384 of each file) as a database migrated by
/// it records them. A database that lists exactly these has the baseline's
/// schema (`pg_dump --schema-only` of both was identical at the squash; see
/// `migrations/README.md`) and is adopted; one that lists only some of them, or other checksums, is
/// refused with [`MigrateError::PreReleaseHistory`].
pub const OLD_HISTORY: [(i64, &str); 7] = [
    (20261126000001, "cf4a0fb3ed6555a00f6403144660520566caeead551a1c1558ee8a0c832cdea6a1d74c635774ac0917ff710a8cb2c909"),
    (20261126000002, "07972fa24ccb9d3804e4aed3a24f178f19f2566c5d742890e76ae320977d074aa4032260fbee9fe9e7e52b8098ceea52"),
    (20261126000003, "b766928fceafd9631fcaa6f4332ae0ac896a85cb7b10145c49be9b25992442997bafb7f671d253ef5ea5fefd6e2c0e35"),
    (20261126000004, "9f20c63d0e7d3ee8a480e9378974c29c0de05da02cd7629fce33619440428c618cd3bf30c7e97d33f510e26eb410e751"),
    (20261126000005, "8e95f57b559fb9f7daeec0dbb8786c8ed3f897b91681ab28bea52605d0804f8cda6fdcf2793961e0bccc9e7e383d1e52"),
    (20261126000006, "453a7ed6d69e7e518d0c7bb3576281ce36303ee6bd0cf78cb1fc4292e13e2c490212cd6ff97a98ffe0979a7c13cea0e1"),
    (20261127000007, "fa42ddd2bb0c3abc9bbbfbb6fea64d519e4859675545dc9a507690ec5d9589eee417c691372dbb740046dbf50fa2bfa4"),
];

/// The migration the old history was squashed into.
pub const BASELINE_VERSION: i64 = 20261205000001;

/// A database migrated by the pre-release history lists [`OLD_HISTORY`] in
/// `_sqlx_migrations`. Exactly that (every version, successful, same
/// checksums, nothing else): its schema is the baseline's, so the baseline is
/// recorded as applied in their place (the function files are applied next,
/// as after any migration). Anything else with an old version in it: refused.
pub(super) async fn adopt_pre_release_history(conn: &mut PgConnection) -> Result<(), MigrateError> {
    if !sqlx_table_exists(conn).await? {
        return Ok(());
    }
    let rows: Vec<(i64, bool, String)> = sqlx::query_as(
        "SELECT version, success, encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?;
    if !rows
        .iter()
        .any(|(v, _, _)| OLD_HISTORY.iter().any(|(o, _)| o == v))
    {
        return Ok(());
    }
    let exact = rows.len() == OLD_HISTORY.len()
        && rows
            .iter()
            .zip(OLD_HISTORY)
            .all(|((v, ok, sum), (ov, osum))| *v == ov && *ok && sum == osum);
    if !exact {
        let found = rows
            .iter()
            .map(|(v, ok, sum)| {
                let expected = OLD_HISTORY.iter().find(|(o, _)| o == v).map(|(_, s)| *s);
                match (ok, expected) {
                    (false, _) => format!("{v} (failed)"),
                    (true, Some(s)) if s != sum => format!("{v} (other checksum)"),
                    _ => v.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *conn)
            .await?;
        return Err(MigrateError::PreReleaseHistory {
            database,
            found: format!("versions {found}"),
        });
    }
    let baseline = MIGRATOR
        .iter()
        .find(|m| m.version == BASELINE_VERSION)
        .expect("the baseline migration is embedded");
    let old: Vec<i64> = OLD_HISTORY.iter().map(|(v, _)| *v).collect();
    sqlx::query(
        "WITH gone AS (DELETE FROM _sqlx_migrations WHERE version = ANY ($1))
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($2, $3, true, $4, 0)",
    )
    .bind(&old)
    .bind(baseline.version)
    .bind(&*baseline.description)
    .bind(&*baseline.checksum)
    .execute(&mut *conn)
    .await?;
    tracing::info!(
        "adopted a database migrated by the pre-release history: recorded the baseline migration in its place"
    );
    Ok(())
}
