//! Aggressive and moderate profiles: a placement, its launch flags, its prediction.
//! OWNER: solver helper.
