//! Discord: poise commands, label prompts, reactions and buttons, announcements. The only
//! module that names poise.
