//! The configuration file and environment.
