//! Control requests from `pizauth` clients (SPEC.md section 3).

use crate::event::{ClientId, Entropy, Level, Output};
use crate::protocol::{AccountStatus, Reply, Request};
use crate::time::Now;

use super::account::{Next, State};
use super::{AccountId, Server};

impl Server {
    pub(super) fn client_asked(
        &mut self,
        now: Now,
        client: ClientId,
        bytes: &[u8],
        entropy: &mut dyn Entropy,
    ) {
        let request = match Request::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.log(Level::Warn, format!("control client: {e}"));
                return self.reply(client, Reply::error(e));
            }
        };
        let reply = match request {
            Request::Show { account, with_url } => {
                self.with_account(&account, |s, id| s.show(now, id, with_url, entropy))
            }
            Request::Refresh { account, with_url } => self.with_account(&account, |s, id| {
                s.refresh_asked(now, id, with_url, entropy)
            }),
            Request::Revoke { account } => self.with_account(&account, |s, id| s.revoke(id)),
            Request::Status => self.status(now),
            Request::Info => Reply::Info {
                http_port: self.listeners.http_port,
                https_port: self.listeners.https_port,
                https_fingerprint: self.listeners.https_fingerprint.clone(),
            },
            Request::Dump => self.dump(now),
            Request::Restore { dump } => self.restore(now, dump.as_str()),
            Request::Reload => return self.reload_asked(Some(client)),
            Request::Shutdown => {
                self.reply(client, Reply::Done);
                return self.shut_down();
            }
        };
        self.reply(client, reply);
    }

    pub(super) fn reply(&mut self, client: ClientId, reply: Reply) {
        self.outputs.push_back(Output::Reply { client, reply });
    }

    fn with_account(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Server, AccountId) -> Reply,
    ) -> Reply {
        match self.by_name.get(name) {
            Some(&id) => f(self, id),
            None => Reply::error(format!("No account '{}'", printable(name))),
        }
    }

    /// `show`: the token if there is a valid one; otherwise start what would get one,
    /// and say so. Never waits.
    fn show(
        &mut self,
        now: Now,
        id: AccountId,
        with_url: bool,
        entropy: &mut dyn Entropy,
    ) -> Reply {
        let Some(slot) = self.accounts.get(&id) else {
            return Reply::error("No such account");
        };
        match &slot.state {
            State::Active(a) if a.tokens.expires > now.boot => Reply::Token {
                token: a.tokens.access.clone(),
            },
            State::Refreshing(r) if r.tokens.expires > now.boot => Reply::Token {
                token: r.tokens.access.clone(),
            },
            State::Refreshing(_) => Reply::error(
                "Access token has expired. Refreshing is in progress but has not yet succeeded",
            ),
            State::Active(a) => {
                if !matches!(a.next, Next::Checking(_)) {
                    self.start_refresh(now, id);
                }
                Reply::error("Access token has expired. Refreshing initiated")
            }
            State::Exchanging(_) => Reply::error(
                "Access token unavailable until authorised: the authorisation code is being exchanged for a token",
            ),
            State::Pending(p) => unavailable(with_url, &p.url),
            State::Unauthorised | State::Failed(_) => {
                let url = self.start_authorisation(now, id, entropy);
                match url {
                    Some(url) => unavailable(with_url, &url),
                    None => Reply::error(
                        "Access token unavailable: no redirect listener suits this account's redirect_uri",
                    ),
                }
            }
        }
    }

    /// `refresh`: with a token, refresh it now (unless already under way); without one,
    /// behave as `show` does.
    fn refresh_asked(
        &mut self,
        now: Now,
        id: AccountId,
        with_url: bool,
        entropy: &mut dyn Entropy,
    ) -> Reply {
        let Some(slot) = self.accounts.get(&id) else {
            return Reply::error("No such account");
        };
        match &slot.state {
            State::Active(a) => {
                if !matches!(a.next, Next::Checking(_)) {
                    self.start_refresh(now, id);
                }
                Reply::Done
            }
            State::Refreshing(_) => Reply::Done,
            _ => match self.show(now, id, with_url, entropy) {
                // `show` found a token after all (it cannot, but keep the contract).
                Reply::Token { .. } => Reply::Done,
                other => other,
            },
        }
    }

    /// `revoke`: forget the tokens and any pending authorisation (locally).
    fn revoke(&mut self, id: AccountId) -> Reply {
        let had_token = self
            .accounts
            .get(&id)
            .is_some_and(|s| s.state.tokens().is_some());
        self.update(id, |_, _| State::Unauthorised);
        if had_token {
            self.token_event(id, super::children::TokenEvent::Revoked);
        }
        self.log(Level::Info, format!("{}: revoked", self.name_of(id)));
        Reply::Done
    }

    fn status(&self, now: Now) -> Reply {
        let accounts = self
            .by_name
            .iter()
            .filter_map(|(name, id)| {
                let slot = self.accounts.get(id)?;
                Some(AccountStatus {
                    name: name.clone(),
                    state: slot.state.status(now),
                })
            })
            .collect();
        Reply::Status { accounts }
    }
}

fn unavailable(with_url: bool, url: &str) -> Reply {
    if with_url {
        Reply::error(format!(
            "Access token unavailable until authorised with URL {url}"
        ))
    } else {
        Reply::error("Access token unavailable until authorised")
    }
}

/// A client-supplied name made safe to echo on one line.
fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
