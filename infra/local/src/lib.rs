//! Local runtime for Reelay functions.
