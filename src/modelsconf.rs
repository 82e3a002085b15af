//! The users' models.conf format: read sections (for `check`), write profiles (for `solve
//! --write`) keeping every other byte. OWNER: solver helper (write), memory helper (read).
