//! Row mapping shared by the SQLite and PostgreSQL stores: both keep the same columns, so
//! one generic function per record type reads either kind of row.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{AvatarVersion, PictureRecord, PictureState, StoreError, User};
use crate::imaging::geometry::Rect;

/// A row of either backend whose columns decode to the types the records use.
pub trait StoreRow: Row
where
    for<'a> &'a str: ColumnIndex<Self>,
{
    fn col<'r, T>(&'r self, name: &str) -> Result<T, StoreError>
    where
        T: Decode<'r, Self::Database> + Type<Self::Database>,
    {
        self.try_get(name)
            .map_err(|e| StoreError::Internal(format!("column {name}: {e}")))
    }
}

impl<R: Row> StoreRow for R where for<'a> &'a str: ColumnIndex<R> {}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

pub fn user<R>(r: &R) -> Result<User, StoreError>
where
    R: StoreRow,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(User {
        id: r.col("id")?,
        tenant: r.col("tenant")?,
        email: r.col("email")?,
        name: r.col("name")?,
        password_hash: r.col("password_hash")?,
        site_admin: r.col("site_admin")?,
    })
}

pub fn picture<R>(r: &R) -> Result<PictureRecord, StoreError>
where
    R: StoreRow,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = r.col("state")?;
    let crop = match (
        r.col::<Option<i64>>("crop_x")?,
        r.col::<Option<i64>>("crop_y")?,
        r.col::<Option<i64>>("crop_w")?,
        r.col::<Option<i64>>("crop_h")?,
    ) {
        (Some(x), Some(y), Some(w), Some(h)) => Some(Rect {
            x: u32_of(x),
            y: u32_of(y),
            w: u32_of(w),
            h: u32_of(h),
        }),
        _ => None,
    };
    Ok(PictureRecord {
        id: r.col("id")?,
        tenant: r.col("tenant")?,
        owner: r.col("owner")?,
        state: PictureState::parse(&state)
            .ok_or_else(|| StoreError::Internal(format!("picture state {state}")))?,
        width: u32_of(r.col("width")?),
        height: u32_of(r.col("height")?),
        crop,
        created_at: r.col("created_at")?,
        expires_at: r.col("expires_at")?,
    })
}

pub fn avatar_version<R>(r: &R) -> Result<AvatarVersion, StoreError>
where
    R: StoreRow,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = r.col("kind")?;
    Ok(AvatarVersion {
        id: r.col("id")?,
        tenant: r.col("tenant")?,
        kind: kind
            .parse()
            .map_err(|_| StoreError::Internal(format!("avatar kind {kind}")))?,
        resource_id: r.col("resource_id")?,
        side: u32_of(r.col("side")?),
        created_at: r.col("created_at")?,
    })
}

pub fn resource<R>(r: &R, kind: super::Kind) -> Result<super::Resource, StoreError>
where
    R: StoreRow,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let admins: String = r.col("admins")?;
    Ok(super::Resource {
        id: r.col("id")?,
        tenant: r.col("tenant")?,
        kind,
        name: r.col("name")?,
        admins: serde_json::from_str(&admins)
            .map_err(|e| StoreError::Internal(format!("admins column: {e}")))?,
        avatar_version: r.col("avatar_version")?,
    })
}

/// The `admins` column: a JSON array of UserIDs.
pub fn admins_json(admins: &[String]) -> String {
    serde_json::to_string(admins).unwrap_or_else(|_| "[]".to_string())
}

/// How users are looked up by email: trimmed and lower-cased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}
