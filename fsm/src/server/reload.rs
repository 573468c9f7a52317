//! Reloading the configuration, and dump and restore (SPEC.md section 7).

use crate::config::Config;
use crate::dump::{Dump, DumpedAccount};
use crate::event::{ClientId, Level, Output};
use crate::protocol::Reply;
use crate::time::Now;

use super::account::{Active, Next, State, Tokens};
use super::{AccountId, Server};

impl Server {
    /// `reload` or SIGHUP: ask the driver for the config file's text (once, however many
    /// ask while it is being read).
    pub(super) fn reload_asked(&mut self, client: Option<ClientId>) {
        if self.reload_waiters.is_empty() {
            self.outputs.push_back(Output::ReadConfig);
        }
        self.reload_waiters.push(client);
    }

    /// The config file's text arrived: apply it, or keep the running config and say why.
    pub(super) fn config_read(&mut self, now: Now, result: Result<String, String>) {
        let waiters = std::mem::take(&mut self.reload_waiters);
        let outcome = result
            .and_then(|text| Config::parse(&text, &self.config_name).map_err(|d| d.to_string()));
        let reply = match outcome {
            Ok(parsed) => {
                for w in parsed.warnings.iter() {
                    self.log(Level::Warn, w.to_string());
                }
                self.apply_config(now, parsed.config);
                self.log(Level::Info, "configuration reloaded");
                Reply::Done
            }
            Err(e) => {
                self.log(
                    Level::Error,
                    format!("reload failed, keeping the running configuration: {e}"),
                );
                Reply::error(e)
            }
        };
        for client in waiters.into_iter().flatten() {
            let r = match &reply {
                Reply::Done => Reply::Done,
                Reply::Error { message } => Reply::error(message.clone()),
                _ => Reply::Done,
            };
            self.reply(client, r);
        }
    }

    /// Installs a new configuration: accounts whose security-relevant options are
    /// unchanged keep their state (with the new timing); changed and new accounts start
    /// with no token; removed accounts go, with any work in flight for them.
    fn apply_config(&mut self, now: Now, mut config: Config) {
        let accounts = std::mem::take(&mut config.accounts);
        if config.http_listen != self.globals.http_listen
            || config.https_listen != self.globals.https_listen
        {
            self.log(
                Level::Warn,
                "http_listen and https_listen changes take effect when the server restarts",
            );
        }
        let notify_changed = config.auth_notify_cmd != self.globals.auth_notify_cmd
            || config.auth_notify_interval != self.globals.auth_notify_interval;
        self.globals = config;
        let mut keep = std::collections::BTreeSet::new();
        for account in accounts {
            let fp = crate::dump::fingerprint(&account);
            match self.by_name.get(&account.name).copied() {
                Some(id) if self.accounts.get(&id).is_some_and(|s| s.fingerprint == fp) => {
                    if let Some(slot) = self.accounts.get_mut(&id) {
                        slot.config = account;
                    }
                    keep.insert(id);
                    self.schedule(now, id);
                    if notify_changed {
                        self.renotify_schedule(now, id);
                    }
                }
                Some(id) => {
                    if self
                        .accounts
                        .get(&id)
                        .is_some_and(|s| s.state.tokens().is_some())
                    {
                        self.log(
                            Level::Info,
                            format!("{}: options changed: its token is dropped", account.name),
                        );
                    }
                    self.remove_account(id);
                    keep.insert(self.add_account(account));
                }
                None => {
                    keep.insert(self.add_account(account));
                }
            }
        }
        let gone: Vec<AccountId> = self
            .accounts
            .keys()
            .filter(|id| !keep.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.log(
                Level::Info,
                format!("{}: removed from the configuration", self.name_of(id)),
            );
            self.remove_account(id);
        }
    }

    /// Re-arms (or disarms) the re-notification of a pending request after the notify
    /// settings changed.
    fn renotify_schedule(&mut self, now: Now, id: AccountId) {
        let next = self.next_notify(now);
        self.update(id, |_, state| match state {
            State::Pending(mut p) => {
                p.next_notify = next;
                State::Pending(p)
            }
            other => other,
        });
    }

    /// `dump`: every account holding a token.
    pub(super) fn dump(&self, now: Now) -> Reply {
        let mut dump = Dump::new();
        for (name, id) in &self.by_name {
            let Some(slot) = self.accounts.get(id) else {
                continue;
            };
            if let Some(t) = slot.state.tokens() {
                dump.accounts.insert(
                    name.clone(),
                    DumpedAccount {
                        fingerprint: slot.fingerprint.clone(),
                        access_token: t.access.clone(),
                        refresh_token: t.refresh.clone(),
                        obtained: now.wall_at(t.obtained),
                        expires: now.wall_at(t.expires),
                    },
                );
            }
        }
        Reply::Dump {
            dump: dump.encode(),
        }
    }

    /// `restore`: install each dumped token whose account exists with the same
    /// fingerprint and holds no token now. Malformed input changes nothing.
    pub(super) fn restore(&mut self, now: Now, text: &str) -> Reply {
        let dump = match Dump::decode(text) {
            Ok(d) => d,
            Err(e) => return Reply::error(e),
        };
        let (mut restored, mut skipped) = (0, 0);
        for (name, dumped) in dump.accounts {
            let Some(&id) = self.by_name.get(&name) else {
                skipped += 1;
                continue;
            };
            let Some(slot) = self.accounts.get(&id) else {
                continue;
            };
            if slot.fingerprint != dumped.fingerprint {
                self.log(
                    Level::Warn,
                    format!("{name}: not restored: its options changed since the dump"),
                );
                skipped += 1;
                continue;
            }
            if slot.state.tokens().is_some() {
                skipped += 1;
                continue;
            }
            let tokens = Tokens {
                access: dumped.access_token,
                refresh: dumped.refresh_token,
                obtained: now.boot_at(dumped.obtained),
                expires: now.boot_at(dumped.expires),
            };
            self.update(id, |_, _| {
                State::Active(Active {
                    tokens,
                    failures: 0,
                    last_attempt: None,
                    next: Next::RefreshAt(now.boot),
                })
            });
            self.schedule(now, id);
            restored += 1;
        }
        self.log(
            Level::Info,
            format!("restore: {restored} accounts restored, {skipped} skipped"),
        );
        Reply::Done
    }
}
