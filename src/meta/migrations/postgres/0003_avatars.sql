CREATE TABLE avatar_versions (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    side         BIGINT NOT NULL,
    picture_id   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    seq          BIGSERIAL
);
CREATE INDEX avatar_versions_resource ON avatar_versions (tenant, kind, resource_id, created_at);
