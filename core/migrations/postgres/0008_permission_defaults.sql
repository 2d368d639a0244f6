-- Default grants plugins declare, postgres dialect. Keep in step with
-- ../sqlite/0008_permission_defaults.sql.
--
-- A plugin may declare that a built-in role (`user`) gets one of its
-- permissions. The host grants it the first time it sees that declaration
-- and records it here; a recorded default is never granted again, so an
-- admin who revokes it keeps the revocation across restarts, reloads,
-- disable/enable and upgrades. Uninstalling with purge deletes the
-- plugin's permissions and these rows with them: a reinstall is a first
-- install again.
CREATE TABLE permission_defaults (
    plugin TEXT NOT NULL,
    permission TEXT NOT NULL,
    role TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (plugin, permission, role)
);
