-- Tenants, users, sessions, login throttling and resources.
CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tenant_hosts (
    host    TEXT PRIMARY KEY,
    tenant  TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE
);

CREATE TABLE tenant_settings (
    tenant  TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL REFERENCES tenants(name),
    email          TEXT NOT NULL,
    email_key      TEXT NOT NULL,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    site_admin     BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant, email_key)
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_hash   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE login_failures (
    id         BIGSERIAL PRIMARY KEY,
    tenant     TEXT NOT NULL,
    email_key  TEXT NOT NULL,
    address    TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (tenant, email_key, at);
CREATE INDEX login_failures_address ON login_failures (address, at);

-- Users, apps, APIs, groups and businesses; `admins` is a JSON array of UserIDs.
CREATE TABLE resources (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL REFERENCES tenants(name),
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    admins          TEXT NOT NULL,
    avatar_version  TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX resources_tenant ON resources (tenant, kind);
