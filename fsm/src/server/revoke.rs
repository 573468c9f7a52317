//! `pizauth revoke`: forget the tokens locally, always; and, when the account has a
//! revocation endpoint (configured or discovered), revoke the refresh token (else the
//! access token) at the provider too, best effort (RFC 7009), reporting the outcome.

use crate::event::{ClientId, HttpResponse, Level, TransportError};
use crate::oauth;
use crate::protocol::Reply;
use crate::secret::Secret;
use crate::time::Now;

use super::discovery::{Resolved, RevokeJob, Side, Want, Which};
use super::{AccountId, Server};

impl Server {
    /// Account `id` forgot `token` at `client`'s `revoke`: revoke it at the provider too,
    /// once the revocation endpoint is known, and tell the client how that went.
    pub(super) fn revoke_remotely(
        &mut self,
        now: Now,
        client: ClientId,
        id: AccountId,
        token: Secret,
        hint: &'static str,
    ) {
        let Some(slot) = self.accounts.get(&id) else {
            return self.reply(client, Reply::Done);
        };
        let job = RevokeJob {
            client,
            name: slot.config.name.clone(),
            token,
            hint,
            client_id: slot.config.client_id.clone(),
            client_secret: slot.config.client_secret.clone(),
        };
        match self.resolve(now, id, Which::Revoke) {
            Resolved::Url(_) => self.send_revocation(now, job),
            Resolved::Discovering(_) => self.await_issuer(now, id, Want::Revoke(job)),
            Resolved::Missing(why) => {
                let message = format!("{}: revoked locally only: {why}", job.name);
                self.reply(client, Reply::Notice { message });
            }
            Resolved::Held(why) => {
                let message = format!("{}: revoked locally only: {why}", job.name);
                self.reply(client, Reply::Notice { message });
            }
        }
    }

    /// Sends the revocation request of `job` (its endpoint is known by now).
    pub(super) fn send_revocation(&mut self, now: Now, job: RevokeJob) {
        let Some(&id) = self.by_name.get(&job.name) else {
            return self.reply(job.client, Reply::Done);
        };
        let url = match self.resolve(now, id, Which::Revoke) {
            Resolved::Url(u) => u,
            Resolved::Discovering(_) | Resolved::Missing(_) | Resolved::Held(_) => {
                let message = format!("{}: revoked locally only: no revocation endpoint", job.name);
                return self.reply(job.client, Reply::Notice { message });
            }
        };
        let auth = match self.accounts.get(&id) {
            Some(slot) => self.client_auth(&slot.config),
            None => oauth::client_auth_method(None, None),
        };
        let req = oauth::revocation_body(
            &job.client_id,
            job.client_secret.as_ref(),
            auth,
            &job.token,
            job.hint,
        );
        let http = req.post(url, self.tunables.http_timeout);
        self.send_side(now, Side::Revocation(job), http);
    }

    /// The provider answered the revocation (or did not).
    pub(super) fn revocation_finished(
        &mut self,
        job: RevokeJob,
        result: Result<HttpResponse, TransportError>,
    ) {
        let outcome = match result {
            // RFC 7009 2.2: 200 whether or not the token was valid.
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(match oauth::parse_token_response(&r) {
                Err(e) => e
                    .to_string()
                    .replace("token endpoint", "revocation endpoint"),
                Ok(_) => format!("revocation endpoint answered HTTP {}", r.status),
            }),
            Err(e) => Err(e.message),
        };
        let message = match outcome {
            Ok(()) => format!("{}: revoked locally and at the provider", job.name),
            Err(why) => {
                self.log(
                    Level::Warn,
                    format!("{}: revoking at the provider failed: {why}", job.name),
                );
                format!(
                    "{}: revoked locally; revoking at the provider failed: {why}",
                    job.name
                )
            }
        };
        self.reply(job.client, Reply::Notice { message });
    }
}
