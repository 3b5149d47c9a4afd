//! SQLite through sqlx.
