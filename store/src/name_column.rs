//! Names (of experiments, trials and metrics) as database columns.
//!
//! MySQL keeps names in `utf8mb4_bin` columns so that they compare case-sensitively, as Katib's
//! names do; the server then flags those columns as binary, and sqlx refuses to decode them as
//! `String`. [`StoredName`] accepts them and checks the bytes are UTF-8 instead (which they are,
//! since only `&str` is ever written).

use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlTypeInfo, MySqlValueRef};
use sqlx::postgres::{PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Type};

/// A name read from a column; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName(pub String);

impl Type<Sqlite> for StoredName {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'r> Decode<'r, Sqlite> for StoredName {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<'r, Sqlite>>::decode(value).map(StoredName)
    }
}

impl Type<Postgres> for StoredName {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for StoredName {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<'r, Postgres>>::decode(value).map(StoredName)
    }
}

impl Type<MySql> for StoredName {
    fn type_info() -> MySqlTypeInfo {
        <String as Type<MySql>>::type_info()
    }

    fn compatible(type_info: &MySqlTypeInfo) -> bool {
        <String as Type<MySql>>::compatible(type_info)
            || <Vec<u8> as Type<MySql>>::compatible(type_info)
    }
}

impl<'r> Decode<'r, MySql> for StoredName {
    fn decode(value: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
        let bytes = <&[u8] as Decode<'r, MySql>>::decode(value)?;
        Ok(StoredName(String::from_utf8(bytes.to_vec())?))
    }
}
