//! Reloading the configuration, and dump and restore (SPEC.md section 7).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Config;
use crate::dump::{Dump, DumpedAccount};
use crate::event::{ChildId, ClientId, Entropy, ExitStatus, Level, Output};
use crate::protocol::Reply;
use crate::secret::Secret;
use crate::time::Now;

use super::account::Tokens;
use super::children::Purpose;
use super::step::Event;
use super::{AccountId, Asker, Server};

/// How long a `client_secret_cmd` may take (it may wait for a passphrase).
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(60);

/// A reload waiting for its `client_secret_cmd`s.
#[derive(Debug)]
pub(crate) struct PendingReload {
    /// The new config, secrets filled in as they arrive.
    config: Config,
    /// Commands still running, and the index of their account.
    outstanding: BTreeMap<ChildId, usize>,
    /// What went wrong so far.
    errors: Vec<String>,
}

/// A `client_secret_cmd` to run.
pub struct SecretCommand {
    /// The index of its account in the config.
    pub index: usize,
    /// The command.
    pub command: String,
    /// Its environment: the account's name in `PIZAUTH_ACCOUNT`.
    pub env: Vec<(String, String)>,
}

/// The `client_secret_cmd`s of `config`. At start the driver runs them itself (before
/// daemonising, so a passphrase prompt still has the terminal); on reload the core spawns
/// them.
pub fn secret_commands(config: &Config) -> Vec<SecretCommand> {
    config
        .accounts
        .iter()
        .enumerate()
        .filter_map(|(index, a)| {
            Some(SecretCommand {
                index,
                command: a.client_secret_cmd.clone()?,
                env: vec![("PIZAUTH_ACCOUNT".to_owned(), a.name.clone())],
            })
        })
        .collect()
}

/// Sets the client secret of account `index` of `config` from how its
/// `client_secret_cmd` ended, or says why it cannot, in a line naming the account.
pub fn fill_secret(
    config: &mut Config,
    index: usize,
    status: ExitStatus,
    stdout: Option<Secret<Vec<u8>>>,
) -> Result<(), String> {
    let Some(account) = config.accounts.get_mut(index) else {
        return Ok(());
    };
    match secret_from(status, stdout) {
        Ok(secret) => {
            account.client_secret = Some(secret);
            Ok(())
        }
        Err(why) => Err(format!(
            "account \"{}\": client_secret_cmd {why}",
            account.name
        )),
    }
}

/// The secret a `client_secret_cmd` printed: its stdout, trimmed.
fn secret_from(status: ExitStatus, stdout: Option<Secret<Vec<u8>>>) -> Result<Secret, String> {
    match status {
        ExitStatus::Code(0) => (),
        ExitStatus::Code(c) => return Err(format!("exited with code {c}")),
        ExitStatus::Signal(s) => {
            return Err(format!(
                "was killed by signal {s} (it has {} s)",
                SECRET_TIMEOUT.as_secs()
            ));
        }
        ExitStatus::FailedToStart => return Err("could not be started".to_owned()),
    }
    let bytes = stdout.ok_or_else(|| "printed nothing".to_owned())?;
    let text = std::str::from_utf8(bytes.expose())
        .map_err(|_| "printed something that is not UTF-8".to_owned())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("printed nothing".to_owned());
    }
    Ok(Secret::new(trimmed.to_owned()))
}

impl Server {
    /// `reload` or SIGHUP: ask the driver for the config file's text (once, however many
    /// ask while it is being read).
    pub(super) fn reload_asked(&mut self, client: Option<ClientId>) {
        if self.reload_waiters.is_empty() {
            self.outputs.push_back(Output::ReadConfig);
        }
        self.reload_waiters.push(client);
    }

    /// The config file's text arrived: parse it, run the `client_secret_cmd`s it has,
    /// then apply it; or keep the running config and say why.
    pub(super) fn config_read(
        &mut self,
        now: Now,
        result: Result<String, String>,
        entropy: &mut dyn Entropy,
    ) {
        let parsed = match result
            .and_then(|text| Config::parse(&text, &self.config_name).map_err(|d| d.to_string()))
        {
            Ok(p) => p,
            Err(e) => return self.finish_reload(now, Err(e), entropy),
        };
        for w in parsed.warnings.iter() {
            self.log(Level::Warn, w.to_string());
        }
        let config = parsed.config;
        let commands = secret_commands(&config);
        let mut pending = PendingReload {
            config,
            outstanding: BTreeMap::new(),
            errors: Vec::new(),
        };
        for c in commands {
            let purpose = Purpose::Secret(c.index);
            if let Some(child) = self.spawn(purpose, c.command, c.env, Some(SECRET_TIMEOUT)) {
                pending.outstanding.insert(child, c.index);
            }
        }
        if pending.outstanding.is_empty() {
            return self.finish_reload(now, Ok(pending.config), entropy);
        }
        self.pending_reload = Some(pending);
    }

    /// A `client_secret_cmd` of the config being reloaded ended.
    pub(super) fn secret_finished(
        &mut self,
        now: Now,
        child: ChildId,
        index: usize,
        status: ExitStatus,
        stdout: Option<Secret<Vec<u8>>>,
        entropy: &mut dyn Entropy,
    ) {
        let Some(pending) = &mut self.pending_reload else {
            return;
        };
        if pending.outstanding.remove(&child).is_none() {
            return;
        }
        if let Err(why) = fill_secret(&mut pending.config, index, status, stdout) {
            pending.errors.push(why);
        }
        if pending.outstanding.is_empty()
            && let Some(p) = self.pending_reload.take()
        {
            let outcome = if p.errors.is_empty() {
                Ok(p.config)
            } else {
                Err(p.errors.join("\n"))
            };
            self.finish_reload(now, outcome, entropy);
        }
    }

    /// Applies a reloaded config (or reports why not) and answers everyone waiting.
    fn finish_reload(
        &mut self,
        now: Now,
        outcome: Result<Config, String>,
        entropy: &mut dyn Entropy,
    ) {
        let waiters = std::mem::take(&mut self.reload_waiters);
        let reply = match outcome {
            Ok(config) => {
                self.apply_config(now, config, entropy);
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
                Reply::Error { message } => Reply::error(message.clone()),
                _ => Reply::Done,
            };
            self.reply(client, r);
        }
    }

    /// Installs a new configuration: accounts whose security-relevant options are
    /// unchanged keep their state (with the new timing); changed and new accounts start
    /// with no token; removed accounts go, with any work in flight for them.
    fn apply_config(&mut self, now: Now, mut config: Config, entropy: &mut dyn Entropy) {
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
                Some(id)
                    if self
                        .accounts
                        .get(&id)
                        .is_some_and(|s| s.fingerprint() == fp) =>
                {
                    if let Some(slot) = self.accounts.get_mut(&id) {
                        slot.config = account;
                    }
                    keep.insert(id);
                    let event = Event::Reconfigured { notify_changed };
                    self.apply(now, id, event, Asker::Nobody, entropy);
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
                    self.remove_account(now, id, entropy);
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
            self.remove_account(now, id, entropy);
        }
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
                        fingerprint: slot.fingerprint().to_owned(),
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
    pub(super) fn restore(&mut self, now: Now, text: &str, entropy: &mut dyn Entropy) -> Reply {
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
            if slot.fingerprint() != dumped.fingerprint {
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
            self.apply(now, id, Event::Restored(tokens), Asker::Nobody, entropy);
            restored += 1;
        }
        self.log(
            Level::Info,
            format!("restore: {restored} accounts restored, {skipped} skipped"),
        );
        Reply::Done
    }
}
