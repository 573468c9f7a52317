//! The state machine.
/// Listener facts.
pub struct Listeners;
/// The server.
pub struct Server;
