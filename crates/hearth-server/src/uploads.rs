//! Template and plugin uploads (`POST /templates/import`, `POST /plugins`)
//! in bounded memory, and a cap on how many large ones are read at once.
//!
//! A body is read frame by frame: up to [`LARGE_UPLOAD_BYTES`] in memory,
//! beyond that into an unnamed temporary file (the spool), so a request
//! never holds its whole body. The JSON is then parsed from the spool on a
//! blocking thread, each file's content decoded (text, or base64) as it is
//! read: what a request holds is the decoded files and the one JSON string
//! being read, not the body, a parsed copy and a decoded copy as well (a
//! gzip tarball is likewise read from the spool). An upload whose declared
//! (`Content-Length`) or actual size passes [`LARGE_UPLOAD_BYTES`] takes one
//! of `--max-concurrent-uploads` places first; without one it is a 429 with
//! `Retry-After`, answered before its body is read. Small uploads take no
//! place and never wait on large ones.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek};
use std::rc::Rc;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::StreamExt;
use hearth_api::ErrorCode;
use hearth_core::bundle_path::BundlePath;
use hearth_core::digest::sha256_hex;
use hearth_store::NewFile;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};
use crate::extract::MAX_JSON_DEPTH;

/// An upload larger than this (declared or read so far) is large: it takes
/// a place among `--max-concurrent-uploads`, and is spooled to a file.
pub const LARGE_UPLOAD_BYTES: usize = 1 << 20;

/// `Retry-After` of an upload refused for want of a place: a large upload
/// takes a second or two here.
pub const UPLOAD_RETRY_SECS: u64 = 2;

/// Bytes gathered in memory before each write to the spool.
const SPOOL_CHUNK: usize = 256 << 10;

/// The upload routes (their body limit is `--max-upload-bytes`).
pub fn is_upload_route(method: &axum::http::Method, route: &str) -> bool {
    method == axum::http::Method::POST && matches!(route, "/templates/import" | "/plugins")
}

/// The places for large uploads of a server.
#[derive(Clone)]
pub struct UploadSlots {
    places: Arc<Semaphore>,
    max: usize,
}

impl UploadSlots {
    pub fn new(max: usize) -> Self {
        Self { places: Arc::new(Semaphore::new(max)), max }
    }

    /// A place, or the 429 that says there is none now.
    fn take(&self) -> ApiResult<OwnedSemaphorePermit> {
        self.places.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("hearth_uploads_refused_total").increment(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                format!(
                    "the server already reads {} large uploads (over {} MiB) at once (--max-concurrent-uploads); retry later",
                    self.max,
                    LARGE_UPLOAD_BYTES >> 20
                ),
            )
            .retry_after(UPLOAD_RETRY_SECS)
        })
    }

    /// Places free now.
    pub fn available(&self) -> usize {
        self.places.available_permits()
    }
}

/// Where a received body is: in memory (small) or in the spool file.
enum Spool {
    Memory(Vec<u8>),
    File(std::fs::File),
}

/// A whole upload body, received; holds its place (if large) until dropped.
pub struct Received {
    spool: Spool,
    /// The first byte that is not JSON whitespace, and the first two bytes.
    first: Option<u8>,
    magic: [u8; 2],
    _place: Option<OwnedSemaphorePermit>,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!("request body is too large: the limit is {limit} bytes (--max-upload-bytes)"),
    )
}

fn spool_error(error: impl fmt::Display) -> ApiError {
    ApiError::internal(format!("cannot spool an upload to a temporary file: {error}"))
}

/// Reads an upload's body: refuses a declared length over the limit (413)
/// or a large upload without a free place (429) before reading anything,
/// then spools it.
pub async fn receive(slots: &UploadSlots, limit: usize, headers: &HeaderMap, body: Body) -> ApiResult<Received> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    let mut place = match declared {
        Some(length) if length > LARGE_UPLOAD_BYTES as u64 => Some(slots.take()?),
        _ => None,
    };
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
    let (mut total, mut first, mut magic) = (0usize, None, Vec::with_capacity(2));
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let chunk = frame
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, format!("cannot read request body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large(limit));
        }
        if first.is_none() {
            first = chunk.iter().copied().find(|b| !b.is_ascii_whitespace());
        }
        if magic.len() < 2 {
            magic.extend(chunk.iter().take(2 - magic.len()));
        }
        memory.extend_from_slice(&chunk);
        if total > LARGE_UPLOAD_BYTES && place.is_none() {
            // Declared small (or not declared), and it is not.
            place = Some(slots.take()?);
        }
        if total > LARGE_UPLOAD_BYTES && memory.len() >= SPOOL_CHUNK {
            let spool = match &mut file {
                Some(spool) => spool,
                None => {
                    let created = tokio::task::spawn_blocking(tempfile::tempfile)
                        .await
                        .map_err(spool_error)?
                        .map_err(spool_error)?;
                    file.insert(tokio::fs::File::from_std(created))
                }
            };
            spool.write_all(&memory).await.map_err(spool_error)?;
            memory.clear();
            memory.shrink_to(SPOOL_CHUNK);
        }
    }
    let spool = match file {
        None => Spool::Memory(memory),
        Some(mut spool) => {
            spool.write_all(&memory).await.map_err(spool_error)?;
            spool.flush().await.map_err(spool_error)?;
            drop(memory);
            let mut file = spool.into_std().await;
            tokio::task::spawn_blocking(move || file.rewind().map(|()| file))
                .await
                .map_err(spool_error)?
                .map_err(spool_error)?
                .pipe(Spool::File)
        }
    };
    let magic = [magic.first().copied().unwrap_or(0), magic.get(1).copied().unwrap_or(0)];
    Ok(Received { spool, first, magic, _place: place })
}

/// `value.pipe(f)` is `f(value)`: keeps a chain of calls in reading order.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}

impl<T> Pipe for T {}

/// What an upload's JSON holds: its `name` (if any) and its files, decoded,
/// by path.
pub struct Upload {
    pub name: Option<String>,
    pub files: Vec<(BundlePath, Vec<u8>)>,
}

/// Whether the JSON must name the upload (templates) or may (plugins).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Required,
    Optional,
}

impl Received {
    /// A gzip stream (a plugin tarball)?
    pub fn is_gzip(&self) -> bool {
        self.magic == [0x1f, 0x8b]
    }

    fn into_reader(self) -> (Box<dyn Read + Send>, Option<OwnedSemaphorePermit>) {
        let reader: Box<dyn Read + Send> = match self.spool {
            Spool::Memory(bytes) => Box::new(std::io::Cursor::new(bytes)),
            Spool::File(file) => Box::new(std::io::BufReader::with_capacity(64 << 10, file)),
        };
        (reader, self._place)
    }

    /// Reads a gzip tarball's files (on a blocking thread).
    pub async fn tarball(self, limits: hearth_archive::Limits) -> ApiResult<Upload> {
        let (reader, place) = self.into_reader();
        let files = tokio::task::spawn_blocking(move || {
            let _place = place;
            hearth_archive::read_files_from(reader, &limits)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidArchive, e.to_string()))?;
        Ok(Upload { name: None, files })
    }

    /// Parses the JSON `{"name": …, "files": {path: content}}` (on a
    /// blocking thread), decoding each file as it is read; the same
    /// refusals as any JSON body (`extract::parse_json`), naming the file.
    pub async fn json(self, name: Name) -> ApiResult<Upload> {
        match self.first {
            None => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    "request body is empty; expected a JSON object",
                ))
            }
            Some(b'[') => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    "the request body must be a JSON object, not an array",
                ))
            }
            Some(_) => {}
        }
        let (reader, place) = self.into_reader();
        tokio::task::spawn_blocking(move || {
            let _place = place;
            parse(reader, name)
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// Counts nesting outside strings as the bytes pass, and stops the parse
/// past [`MAX_JSON_DEPTH`] (serde skips unknown values without a limit).
struct DepthGuard<R> {
    inner: R,
    depth: usize,
    in_string: bool,
    escaped: bool,
    too_deep: Rc<Cell<bool>>,
}

impl<R: Read> Read for DepthGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > MAX_JSON_DEPTH {
                        self.too_deep.set(true);
                        return Err(std::io::Error::other("too deep"));
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(n)
    }
}

fn parse(reader: Box<dyn Read + Send>, name: Name) -> ApiResult<Upload> {
    let too_deep = Rc::new(Cell::new(false));
    let guard = DepthGuard { inner: reader, depth: 0, in_string: false, escaped: false, too_deep: too_deep.clone() };
    let refusal: Rc<Cell<Option<ApiError>>> = Rc::new(Cell::new(None));
    let mut deserializer = serde_json::Deserializer::from_reader(guard);
    let parsed = UploadSeed { name, refusal: refusal.clone() }
        .deserialize(&mut deserializer)
        .and_then(|upload| deserializer.end().map(|()| upload));
    match parsed {
        Ok(upload) => Ok(upload),
        Err(error) => Err(if let Some(refusal) = refusal.take() {
            refusal
        } else if too_deep.get() {
            ApiError::bad_request(
                ErrorCode::InvalidJson,
                format!("invalid JSON body: nesting is deeper than {MAX_JSON_DEPTH} levels"),
            )
        } else if error.is_io() {
            ApiError::internal(format!("cannot read a spooled upload: {error}"))
        } else {
            ApiError::bad_request(ErrorCode::InvalidJson, format!("invalid JSON body: {error}"))
        }),
    }
}

/// The refusal of a field of the upload: kept aside (serde's error type
/// cannot carry it), and the parse stopped.
fn refuse<E: de::Error>(refusal: &Cell<Option<ApiError>>, error: ApiError) -> E {
    let message = error.body.error.clone();
    refusal.set(Some(error));
    E::custom(message)
}

fn nul_refusal(field: &str) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidField, format!("{field}: NUL characters (\\u0000) are not allowed in text"))
        .field(field.to_owned())
}

struct UploadSeed {
    name: Name,
    refusal: Rc<Cell<Option<ApiError>>>,
}

impl<'de> DeserializeSeed<'de> for UploadSeed {
    type Value = Upload;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Upload, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UploadSeed {
    type Value = Upload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with name and files")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Upload, A::Error> {
        let (mut name, mut files, mut named) = (None, None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" if named => return Err(de::Error::duplicate_field("name")),
                "name" => {
                    named = true;
                    let value = match self.name {
                        Name::Required => map.next_value::<String>().map(Some),
                        Name::Optional => map.next_value::<Option<String>>(),
                    }
                    .map_err(|e| {
                        let error = ApiError::bad_request(ErrorCode::InvalidField, format!("name: {e}")).field("name");
                        refuse::<A::Error>(&self.refusal, error)
                    })?;
                    if value.as_deref().is_some_and(|n| n.contains('\0')) {
                        return Err(refuse(&self.refusal, nul_refusal("name")));
                    }
                    name = value;
                }
                "files" if files.is_some() => return Err(de::Error::duplicate_field("files")),
                "files" => files = Some(map.next_value_seed(FilesSeed { refusal: self.refusal.clone() })?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if self.name == Name::Required && !named {
            return Err(de::Error::missing_field("name"));
        }
        let files: BTreeMap<BundlePath, Vec<u8>> = files.ok_or_else(|| de::Error::missing_field("files"))?;
        if files.is_empty() {
            let error = ApiError::bad_request(ErrorCode::InvalidField, "files must not be empty").field("files");
            return Err(refuse(&self.refusal, error));
        }
        Ok(Upload { name, files: files.into_iter().collect() })
    }
}

struct FilesSeed {
    refusal: Rc<Cell<Option<ApiError>>>,
}

impl<'de> DeserializeSeed<'de> for FilesSeed {
    type Value = BTreeMap<BundlePath, Vec<u8>>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FilesSeed {
    type Value = BTreeMap<BundlePath, Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of path to content")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut files = BTreeMap::new();
        while let Some(raw) = map.next_key::<String>()? {
            let field = format!("files.{raw}");
            if raw.contains('\0') {
                return Err(refuse(&self.refusal, nul_refusal("files")));
            }
            let path = BundlePath::new(raw.clone()).map_err(|e| {
                refuse::<A::Error>(
                    &self.refusal,
                    ApiError::bad_request(ErrorCode::InvalidPath, e.to_string()).field(field.clone()),
                )
            })?;
            let content = map.next_value_seed(ContentSeed { path: &raw, refusal: &self.refusal })?;
            files.insert(path, content);
            if files.len() > MAX_FILES {
                let error =
                    ApiError::bad_request(ErrorCode::InvalidField, format!("at most {MAX_FILES} files are accepted"))
                        .field("files");
                return Err(refuse(&self.refusal, error));
            }
        }
        Ok(files)
    }
}

/// One file's content: a string (the text itself) or `{"base64": "…"}`,
/// decoded into bytes as it is read.
struct ContentSeed<'a> {
    path: &'a str,
    refusal: &'a Cell<Option<ApiError>>,
}

impl ContentSeed<'_> {
    fn wrong_type<E: de::Error>(&self) -> E {
        let field = format!("files.{}", self.path);
        let error = ApiError::bad_request(
            ErrorCode::InvalidField,
            format!("{field}: expected the file's text or an object {{\"base64\": \"…\"}}"),
        )
        .field(field);
        refuse(self.refusal, error)
    }
}

impl<'de> DeserializeSeed<'de> for ContentSeed<'_> {
    type Value = Vec<u8>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContentSeed<'_> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an object with base64")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
        if text.contains('\0') {
            return Err(refuse(self.refusal, nul_refusal(&format!("files.{}", self.path))));
        }
        Ok(text.as_bytes().to_vec())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Vec<u8>, E> {
        if text.contains('\0') {
            return Err(refuse(self.refusal, nul_refusal(&format!("files.{}", self.path))));
        }
        Ok(text.into_bytes())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        let mut decoded = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "base64" {
                if decoded.is_some() {
                    return Err(de::Error::duplicate_field("base64"));
                }
                decoded = Some(map.next_value_seed(Base64Seed { path: self.path, refusal: self.refusal })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        decoded.ok_or_else(|| self.wrong_type())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<u8>, E> {
        Err(self.wrong_type())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<u8>, E> {
        Err(self.wrong_type())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<u8>, E> {
        Err(self.wrong_type())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<u8>, E> {
        Err(self.wrong_type())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<u8>, E> {
        Err(self.wrong_type())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Vec<u8>, A::Error> {
        Err(self.wrong_type())
    }
}

/// The `base64` string of a binary file, decoded straight from the parser's
/// buffer.
struct Base64Seed<'a> {
    path: &'a str,
    refusal: &'a Cell<Option<ApiError>>,
}

impl<'de> DeserializeSeed<'de> for Base64Seed<'_> {
    type Value = Vec<u8>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Base64Seed<'_> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("base64 text")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
        STANDARD.decode(text.trim()).map_err(|e| {
            let error = ApiError::bad_request(
                ErrorCode::InvalidBase64,
                format!("{}: content is not valid base64: {e}", self.path),
            )
            .field(format!("files.{}.base64", self.path));
            refuse(self.refusal, error)
        })
    }
}

/// Most files one template or plugin may hold.
pub const MAX_FILES: usize = 10_000;

/// Content-addressed files for the store (each file's bytes are moved, not
/// copied: an upload holds one copy of its files).
pub fn to_new_files(files: Vec<(BundlePath, Vec<u8>)>) -> Vec<NewFile> {
    files
        .into_iter()
        .map(|(path, bytes)| NewFile { path: path.to_string(), sha256: sha256_hex(&bytes), content: bytes })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(json: &str, name: Name) -> ApiResult<Upload> {
        parse(Box::new(std::io::Cursor::new(json.as_bytes().to_vec())), name)
    }

    fn refused(json: &str) -> hearth_api::ApiErrorBody {
        *parse_text(json, Name::Required).err().expect("refused").body
    }

    #[test]
    fn files_are_decoded_as_they_are_read() {
        let upload = parse_text(
            r#"{"extra": [1, {"a": null}], "name": "t", "files": {"b.bin": {"base64": "/wA=", "x": 1}, "a.txt": "h\u00e9\n"}}"#,
            Name::Required,
        )
        .unwrap();
        assert_eq!(upload.name.as_deref(), Some("t"));
        let files: Vec<(&str, &[u8])> = upload.files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
        assert_eq!(files, [("a.txt", "hé\n".as_bytes()), ("b.bin", &[0xff, 0x00][..])]);
        let plugin = parse_text(r#"{"name": null, "files": {"plugin.yaml": "name: p"}}"#, Name::Optional).unwrap();
        assert_eq!(plugin.name, None);
    }

    #[test]
    fn refusals_name_the_field() {
        let body = refused(r#"{"name": "t", "files": {"../x": "a"}}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidPath, Some("files.../x")));
        let body = refused(r#"{"name": "t", "files": {"a": {"base64": "!!"}}}"#);
        assert_eq!(body.code, ErrorCode::InvalidBase64);
        let body = refused(r#"{"name": "t", "files": {"a": "x\u0000"}}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidField, Some("files.a")));
        let body = refused(r#"{"name": "t", "files": {"a": 3}}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidField, Some("files.a")));
        let body = refused(r#"{"name": "t", "files": {}}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidField, Some("files")));
        let body = refused(r#"{"name": 5, "files": {"a": "b"}}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidField, Some("name")));
        assert_eq!(refused(r#"{"files": {"a": "b"}}"#).code, ErrorCode::InvalidJson, "name is required");
        assert_eq!(refused(r#"{"name": "t", "files": {"a": "b"}} x"#).code, ErrorCode::InvalidJson);
        let deep = format!(r#"{{"name": "t", "files": {{"a": "b"}}, "x": {}{}}}"#, "[".repeat(70), "]".repeat(70));
        let body = refused(&deep);
        assert!(body.error.contains("nesting"), "{}", body.error);
    }
}
