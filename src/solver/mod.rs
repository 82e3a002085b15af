//! The integer program (good_lp + HiGHS) choosing a `Placement`. OWNER: solver helper.
//!
//! Contract: `solve` returns a placement whose `memory::predict` (through `emit` → flags →
//! `launch` → `memory`) respects every device cap minus the margin; the solver's linear memory
//! terms are checked against the exact prediction and tightened until they agree.
