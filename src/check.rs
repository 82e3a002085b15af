//! `placer check`: predict memory per device for a launch command and say whether it fits.
//! OWNER: memory helper.
