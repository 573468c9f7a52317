//! Fuzz target `control`: one message on the control socket.

use crate::protocol::{Reply, Request, TokenStatus};

use super::{Harness, STANDARD_CONFIG};

/// Accounts of [`STANDARD_CONFIG`] that hold a valid token in [`Harness::with_tokens`].
const WITH_TOKENS: [&str; 3] = ["a", "b", "e"];

/// Fuzz target `control`: `data` arrives on the control socket, as raw bytes, at a
/// server with a few accounts (see [`Harness::with_tokens`]).
///
/// Checked, besides everything the [`Harness`] checks after each input: bytes that do not
/// decode get an error reply; a request gets exactly one reply, at once, except `show -w`
/// (which may wait), `reload` (which waits for the config text) and `revoke` of an
/// account with a revocation endpoint (which waits for the provider): those get theirs
/// once the harness lets time pass and everything finish. `show` of an account holding a
/// valid token gets that token; `revoke` leaves the account without one; `status` lists
/// every account; `shutdown` ends the server.
pub fn control(data: &[u8]) {
    let mut h = Harness::with_tokens();
    h.hear(data);
    let decoded = Request::decode(data);
    let (_, reply, _) = h.ask_bytes(data.to_vec());
    let Ok(request) = decoded else {
        assert!(
            matches!(reply, Some(Reply::Error { .. })),
            "undecodable bytes answered {reply:?}"
        );
        return;
    };
    let Some(reply) = reply else {
        let may_wait = match &request {
            Request::Show { wait, .. } => wait.is_some_and(|w| w > 0),
            Request::Reload => h.config_wanted(),
            Request::Revoke { .. } => !h.in_flight().is_empty(),
            _ => false,
        };
        assert!(may_wait, "no reply to {request:?}");
        // The answer must come once things run their course.
        h.settle(STANDARD_CONFIG);
        return;
    };
    match request {
        Request::Show { account, .. } => match reply {
            Reply::Token { .. } => (),
            Reply::Error { message } => {
                assert!(
                    !WITH_TOKENS.contains(&account.as_str()),
                    "show {account} failed while it holds a valid token: {message}"
                );
            }
            other => panic!("show answered {other:?}"),
        },
        Request::Refresh { .. } => assert!(
            matches!(reply, Reply::Done | Reply::Error { .. }),
            "refresh answered {reply:?}"
        ),
        Request::Revoke { account } => {
            assert!(
                matches!(
                    reply,
                    Reply::Done | Reply::Notice { .. } | Reply::Error { .. }
                ),
                "revoke answered {reply:?}"
            );
            if !matches!(reply, Reply::Error { .. }) {
                assert!(
                    matches!(h.state_of(&account), Some(TokenStatus::NoToken { .. })),
                    "{account} still holds something after revoke"
                );
            }
        }
        Request::Status => match reply {
            Reply::Status { accounts } => assert_eq!(accounts.len(), 6, "status lost accounts"),
            other => panic!("status answered {other:?}"),
        },
        Request::Info => assert!(
            matches!(
                reply,
                Reply::Info {
                    http_port: Some(8765),
                    https_port: Some(8766),
                    ..
                }
            ),
            "info answered {reply:?}"
        ),
        Request::Dump => assert!(
            matches!(reply, Reply::Dump { .. }),
            "dump answered {reply:?}"
        ),
        Request::Restore { .. } => assert!(
            matches!(reply, Reply::Done | Reply::Error { .. }),
            "restore answered {reply:?}"
        ),
        Request::Reload => panic!("reload answered before the config was read: {reply:?}"),
        Request::Shutdown => {
            assert!(matches!(reply, Reply::Done), "shutdown answered {reply:?}");
            assert!(h.exited(), "shutdown did not stop the server");
        }
    }
}
