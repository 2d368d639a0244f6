//! [`Audited`]: the caller of a route whose change is recorded after the
//! fact, with what the row needs.
//!
//! The plugin and task routes change state that lives behind the plugin
//! manager and the scheduler, so their audit row cannot share a transaction
//! with the change and is written by [`super::record`] once it succeeded.
//! Every such handler took the same three extractors (the database, the
//! client's address, the permission check) only to pass them on to that
//! row; this one extractor stands for the three. The admin routes, whose
//! rows commit with the change, take it too for [`Audited::record_in`].

use std::{fmt::Display, marker::PhantomData, net::IpAddr, sync::Arc};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};
use serde_json::Value;

use sqlx::{Any, Transaction};

use super::{record, record_in, Entry};
use crate::{
    auth::{AuthUser, Gate},
    config::Config,
    db::Database,
    error::ApiError,
    http::client_ip::ClientIp,
    rbac::permissions::{Permission, Require},
};

/// A caller holding `P` (401 or 403 otherwise, as [`Require`]), who can
/// record what they did.
#[derive(Debug)]
pub struct Audited<P: Permission> {
    /// The caller.
    pub user: AuthUser,
    /// Where the row is written.
    db: Database,
    /// The client's address, for the row.
    ip: IpAddr,
    marker: PhantomData<P>,
}

impl<P: Permission> Audited<P> {
    /// Records that the caller did `action` to `kind:id`, with `details`
    /// (`Value::Null` for none); a failure is logged, not answered (see
    /// [`super::record`]).
    pub async fn record(&self, action: &'static str, kind: &str, id: impl Display, details: Value) {
        record(&self.db, &self.entry(action, kind, id, details)).await;
    }

    /// The same row written in the change's own transaction `tx`, so it
    /// commits (or rolls back) with the change: the admin routes' way.
    pub async fn record_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        action: &'static str,
        kind: &str,
        id: impl Display,
        details: Value,
    ) -> Result<(), sqlx::Error> {
        record_in(tx, &self.entry(action, kind, id, details)).await
    }

    /// The caller's row, from their address.
    fn entry(
        &self,
        action: &'static str,
        kind: &str,
        id: impl Display,
        details: Value,
    ) -> Entry<'_> {
        Entry::new((&self.user).into(), action)
            .target(kind, id)
            .ip(self.ip)
            .details(details)
    }
}

impl<P, S> FromRequestParts<S> for Audited<P>
where
    P: Permission + Send + Sync,
    S: Send + Sync,
    Arc<Gate>: FromRef<S>,
    Arc<Config>: FromRef<S>,
    Database: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        let caller = Require::<P>::from_request_parts(parts, state).await?;
        Ok(Self {
            user: caller.user,
            db: Database::from_ref(state),
            ip,
            marker: PhantomData,
        })
    }
}
