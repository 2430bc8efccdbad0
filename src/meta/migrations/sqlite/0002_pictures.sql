-- Dropbox pictures. `state`: pending (id reserved, blob being written), live, consumed
-- (attached to a resource), gone (expired; blob deleted). Rows of consumed and gone pictures
-- stay for a minute so that the upload rate counts them, then the sweeper deletes them.
CREATE TABLE pictures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL,
    width       INTEGER NOT NULL DEFAULT 0,
    height      INTEGER NOT NULL DEFAULT 0,
    crop_x      INTEGER,
    crop_y      INTEGER,
    crop_w      INTEGER,
    crop_h      INTEGER,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX pictures_owner ON pictures (tenant, owner, created_at);
CREATE INDEX pictures_expiry ON pictures (state, expires_at);

-- PictureIDs start at 1001.
INSERT INTO sqlite_sequence (name, seq) VALUES ('pictures', 1000);
