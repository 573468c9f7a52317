//! The mio event loop that drives the pizauth core.
#![warn(missing_docs)]
