//! The durable job queue shared by all members, the device workers that own a burn device
//! each, and the scheduler.
