//! Control requests from `pizauth` clients (SPEC.md section 3).

use crate::event::{ClientId, Entropy, Level, Output};
use crate::oauth;
use crate::protocol::{AccountStatus, LastError, Reply, Request};
use crate::time::Now;

use super::step::Event;
use super::{Asker, Server};

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
        let (name, event) = match request {
            Request::Show {
                account,
                with_url,
                wait,
            } => (account, Event::Show { with_url, wait }),
            Request::Refresh { account, with_url } => (account, Event::Refresh { with_url }),
            Request::Revoke { account } => (account, Event::Revoke),
            Request::Status => return self.reply(client, self.status(now)),
            Request::Info => {
                if let Some(reply) = self.info(client) {
                    self.reply(client, reply);
                }
                return;
            }
            Request::Dump => return self.reply(client, self.dump(now)),
            Request::Restore { dump } => {
                let reply = self.restore(now, dump.as_str(), entropy);
                return self.reply(client, reply);
            }
            Request::Reload => return self.reload_asked(Some(client)),
            Request::Shutdown => {
                self.reply(client, Reply::Done);
                return self.shut_down();
            }
        };
        match self.by_name.get(&name).copied() {
            Some(id) => self.apply(now, id, event, Asker::Client(client), entropy),
            None => self.reply(client, no_account(&name)),
        }
    }

    /// `info`: the listeners. The HTTPS listener's certificate is made when first needed,
    /// so the first `info` may have to wait for it (the driver makes it at once).
    fn info(&mut self, client: ClientId) -> Option<Reply> {
        let l = &self.listeners;
        if l.https_port.is_some() && l.https_fingerprint.is_none() {
            if self.info_waiters.is_empty() {
                self.outputs.push_back(Output::MakeCertificate);
            }
            self.info_waiters.push(client);
            return None;
        }
        Some(Reply::Info {
            http_port: l.http_port,
            https_port: l.https_port,
            https_fingerprint: l.https_fingerprint.clone(),
        })
    }

    /// The HTTPS listener's certificate was made (by the driver, for `info` or for the
    /// first HTTPS connection), or could not be: remember its fingerprint and answer who
    /// asked, or tell them why not (the next `info` asks again).
    pub(super) fn certificate_made(&mut self, fingerprint: Result<String, String>) {
        let failure = match fingerprint {
            Ok(f) => {
                self.listeners.https_fingerprint = Some(f);
                None
            }
            Err(e) => {
                let why = format!("cannot make the HTTPS listener's certificate: {e}");
                self.log(Level::Error, why.clone());
                Some(why)
            }
        };
        for client in std::mem::take(&mut self.info_waiters) {
            let l = &self.listeners;
            let reply = match &failure {
                Some(why) => Reply::error(why.clone()),
                None => Reply::Info {
                    http_port: l.http_port,
                    https_port: l.https_port,
                    https_fingerprint: l.https_fingerprint.clone(),
                },
            };
            self.reply(client, reply);
        }
    }

    pub(super) fn reply(&mut self, client: ClientId, reply: Reply) {
        self.outputs.push_back(Output::Reply { client, reply });
    }

    fn status(&self, now: Now) -> Reply {
        let accounts = self
            .by_name
            .iter()
            .filter_map(|(name, id)| {
                let slot = self.accounts.get(id)?;
                Some(AccountStatus {
                    name: name.clone(),
                    flow: slot.config.flow.as_str().to_owned(),
                    state: slot.state.status(now),
                    last_error: slot
                        .memo
                        .last_error
                        .as_ref()
                        .map(|(at, message)| LastError {
                            at: now.wall_at(*at),
                            message: message.to_string(),
                        }),
                    warning: slot.state.tokens().and_then(|t| {
                        oauth::no_refresh_token_warning(&slot.config, t.refresh.is_some())
                    }),
                })
            })
            .collect();
        Reply::Status { accounts }
    }
}

fn no_account(name: &str) -> Reply {
    Reply::error(format!("No account '{}'", printable(name)))
}

/// A client-supplied name made safe to echo on one line.
fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
