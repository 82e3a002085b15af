//! Placement → llama.cpp flags (-ngl, -ts, compact -ot regexes) and JSON. OWNER: solver helper.
