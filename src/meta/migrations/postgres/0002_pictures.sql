-- Dropbox pictures (see the SQLite migration of the same number for the states).
-- PictureIDs come from a sequence shared by every node, from 1001 up.
CREATE SEQUENCE picture_ids START WITH 1001;

CREATE TABLE pictures (
    id          BIGINT PRIMARY KEY DEFAULT nextval('picture_ids'),
    tenant      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL,
    width       BIGINT NOT NULL DEFAULT 0,
    height      BIGINT NOT NULL DEFAULT 0,
    crop_x      BIGINT,
    crop_y      BIGINT,
    crop_w      BIGINT,
    crop_h      BIGINT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
ALTER SEQUENCE picture_ids OWNED BY pictures.id;
CREATE INDEX pictures_owner ON pictures (tenant, owner, created_at);
CREATE INDEX pictures_expiry ON pictures (state, expires_at);
