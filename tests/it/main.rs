//! The integration tests, one module per area, in one binary.

mod learn;
