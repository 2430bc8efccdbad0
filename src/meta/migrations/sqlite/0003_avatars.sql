-- Avatar versions: one per attach. The resource's current one is resources.avatar_version;
-- the sweeper prunes older ones beyond the configured count, with their blobs.
CREATE TABLE avatar_versions (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    side         INTEGER NOT NULL,
    picture_id   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX avatar_versions_resource ON avatar_versions (tenant, kind, resource_id, created_at);
