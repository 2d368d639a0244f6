//! Password reset: a single-use token delivered through the notifier.
//!
//! The default notifier writes the message to the `notification_outbox`
//! table (for a mailer to deliver) and logs that a message was queued. The
//! token itself never appears in a log line: logs are read by more people
//! than mailboxes are.

use super::AuthState;
use sqlx::Row;

use super::{
    changes::Change,
    sessions,
    tokens::{random_token, token_hash},
    users,
};
use std::net::IpAddr;

use crate::{
    audit::{self, Actor, Entry},
    db::timestamp,
    error::ApiError,
};

/// Creates a reset token for `email` and queues the message. Does nothing,
/// silently, for an unknown or inactive account (but for an audit row).
pub async fn request(state: &AuthState, email: &str, ip: IpAddr) -> Result<(), ApiError> {
    let refused = |account: &'static str| async move {
        audit::record(
            &state.db,
            &Entry::new(Actor::Claimed(email), audit::PASSWORD_RESET_REQUESTED)
                .ip(ip)
                .details(serde_json::json!({"account": account})),
        )
        .await;
    };
    let Some(account) = users::credentials_by_email(&state.db, email).await? else {
        refused("unknown").await;
        return Ok(());
    };
    if !account.is_active {
        refused("inactive").await;
        return Ok(());
    }
    let token = random_token();
    let now = timestamp::now();
    let ttl = state.config.auth.password_reset_ttl_secs;
    let mut tx = state.db.begin_write().await?;
    // Only the newest token is valid: requesting again voids the others.
    sqlx::query(
        "UPDATE password_reset_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
    )
    .bind(&now)
    .bind(account.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO password_reset_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash(&token))
        .bind(account.id)
        .bind(&now)
        .bind(timestamp::in_seconds(ttl))
        .execute(&mut *tx)
        .await?;
    let body = format!(
        "A password reset was requested for your account.\n\
         Reset token: {token}\n\
         It expires in {} minutes. Send it with your new password to POST /auth/password/reset.\n\
         If you did not ask for this, ignore this message.",
        ttl / 60
    );
    let outbox_id: i64 = sqlx::query(
        "INSERT INTO notification_outbox (channel, recipient, subject, body, created_at)
         VALUES ('email', $1, 'Password reset', $2, $3) RETURNING id",
    )
    .bind(email)
    .bind(body)
    .bind(&now)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    audit::record_in(
        &mut tx,
        &Entry::new(
            Actor::User {
                id: account.id,
                email,
            },
            audit::PASSWORD_RESET_REQUESTED,
        )
        .target("user", account.id)
        .ip(ip),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        user_id = account.id,
        outbox_id,
        "password reset requested; message queued in the outbox"
    );
    Ok(())
}

/// Completes a reset: checks the token, sets the password, ends every session.
pub async fn complete(
    state: &AuthState,
    token: &str,
    new_password: &str,
    ip: IpAddr,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin_write().await?;
    let now = timestamp::now();
    let row = sqlx::query(
        "SELECT t.id, t.user_id, u.email FROM password_reset_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 AND u.is_active = TRUE",
    )
    .bind(token_hash(token))
    .bind(&now)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::invalid_field("token", "invalid, expired or already used reset token"))?;
    let user_id: i64 = row.try_get("user_id")?;
    let email: String = row.try_get("email")?;
    if let Some(problem) = state
        .passwords
        .check_policy("new_password", new_password, Some(&email))
    {
        return Err(ApiError::validation(vec![problem]));
    }
    let claimed = sqlx::query(
        "UPDATE password_reset_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
    )
    .bind(&now)
    .bind(row.try_get::<i64, _>("id")?)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed != 1 {
        return Err(ApiError::invalid_field(
            "token",
            "invalid, expired or already used reset token",
        ));
    }
    let hash = state.passwords.hash(new_password).await?;
    users::set_password(&mut tx, user_id, &hash).await?;
    sessions::revoke_all_for_user(&mut tx, user_id).await?;
    audit::record_in(
        &mut tx,
        &Entry::new(
            Actor::User {
                id: user_id,
                email: &email,
            },
            audit::PASSWORD_RESET_COMPLETED,
        )
        .target("user", user_id)
        .ip(ip),
    )
    .await?;
    // The token version moved: older tokens are refused from now on.
    state.auth.commit(tx, &[Change::User(user_id)]).await?;
    tracing::info!(user_id, "password reset completed");
    Ok(())
}
