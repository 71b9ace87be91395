//! Kafka wire helpers shared by every stage: request-header views that borrow the
//! frame, response framing, and the few body peeks the hot path needs.
//!
//! Everything here works on whole frames *without* their 4-byte length prefix
//! (the codec strips it) and never allocates for data it only inspects.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

/// Why a frame could not be understood. Every variant ends the connection it came on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame truncated: needed {needed} bytes at offset {offset}, frame has {len}")]
    Truncated { needed: usize, offset: usize, len: usize },
    #[error("malformed {what}")]
    Malformed { what: &'static str },
}

/// The fixed part of a request header, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeaderView {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Byte range of the client id inside the frame (`None` when null).
    pub client_id: Option<(usize, usize)>,
    /// Where the request body starts; `None` for API keys this build does not know,
    /// since their header version (and so the body offset) is unknown.
    pub body_offset: Option<usize>,
}

impl RequestHeaderView {
    /// The known API key, if any.
    pub fn known_key(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }

    pub fn client_id<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        self.client_id.map(|(start, end)| &frame[start..end])
    }
}

/// A bounds-checked cursor over a borrowed frame.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len()).ok_or(
            WireError::Truncated { needed: n, offset: self.pos, len: self.buf.len() },
        )?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Malformed { what: "unsigned varint" })
    }

    /// Classic NULLABLE_STRING: i16 length, -1 for null.
    fn nullable_string(&mut self) -> Result<Option<(usize, usize)>, WireError> {
        let len = self.i16()?;
        if len < 0 {
            return if len == -1 { Ok(None) } else { Err(WireError::Malformed { what: "string length" }) };
        }
        let start = self.pos;
        self.take(len as usize)?;
        Ok(Some((start, self.pos)))
    }

    /// COMPACT_NULLABLE_STRING: unsigned varint length + 1, 0 for null.
    fn compact_nullable_string(&mut self) -> Result<Option<(usize, usize)>, WireError> {
        let len_plus_one = self.uvarint()? as usize;
        if len_plus_one == 0 {
            return Ok(None);
        }
        let start = self.pos;
        self.take(len_plus_one - 1)?;
        Ok(Some((start, self.pos)))
    }

    fn skip_tagged_fields(&mut self) -> Result<(), WireError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?; // tag
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

/// Reads the request header in place. Unknown API keys still yield their key, version
/// and correlation id so the caller can log them before closing.
pub fn parse_request_header(frame: &[u8]) -> Result<RequestHeaderView, WireError> {
    let mut cur = Cursor::new(frame, 0);
    let api_key = cur.i16()?;
    let api_version = cur.i16()?;
    let correlation_id = cur.i32()?;
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Ok(RequestHeaderView { api_key, api_version, correlation_id, client_id: None, body_offset: None });
    };
    // The client id is a classic nullable string in every header version, flexible or not.
    let client_id = cur.nullable_string()?;
    if key.request_header_version(api_version) >= 2 {
        cur.skip_tagged_fields()?;
    }
    Ok(RequestHeaderView { api_key, api_version, correlation_id, client_id, body_offset: Some(cur.pos) })
}

/// The `acks` of a Produce request, read without decoding the body. acks=0 means the
/// broker sends no response, so no in-flight entry may wait for one.
pub fn produce_acks(frame: &[u8], header: &RequestHeaderView) -> Result<i16, WireError> {
    let body = header.body_offset.ok_or(WireError::Malformed { what: "produce header" })?;
    let mut cur = Cursor::new(frame, body);
    // Produce v9 is the first flexible version.
    if header.api_version >= 9 {
        cur.compact_nullable_string()?;
    } else {
        cur.nullable_string()?;
    }
    cur.i16()
}

/// The correlation id of a response frame and where its body starts.
pub fn parse_response_header(frame: &[u8], api_key: ApiKey, api_version: i16) -> Result<(i32, usize), WireError> {
    let mut cur = Cursor::new(frame, 0);
    let correlation_id = cur.i32()?;
    if api_key.response_header_version(api_version) >= 1 {
        cur.skip_tagged_fields()?;
    }
    Ok((correlation_id, cur.pos))
}

/// Encodes a complete response frame, length prefix included.
pub fn encode_response<M: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &M,
) -> anyhow::Result<Bytes> {
    encode_response_with_header_version(correlation_id, api_key.response_header_version(api_version), api_version, body)
}

/// As [`encode_response`], with an explicit header version (ApiVersions always uses v0).
pub fn encode_response_with_header_version<M: Encodable>(
    correlation_id: i32,
    header_version: i16,
    api_version: i16,
    body: &M,
) -> anyhow::Result<Bytes> {
    // Sized up front: a fetch response's record batches would otherwise be copied again
    // on every doubling of the buffer.
    let mut out = BytesMut::with_capacity(64 + body.compute_size(api_version).unwrap_or(0));
    out.put_i32(0); // length, patched below
    ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut out, header_version)?;
    body.encode(&mut out, api_version)?;
    let len = i32::try_from(out.len() - 4)?;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.freeze())
}

/// Length of the whole record batches at the start of a fetched `records` field.
///
/// A broker cuts a fetch response at the size limit, so its last batch may be partial;
/// the client drops that part and fetches it again. Reads only each batch's 12-byte
/// prefix (base offset, batch length), never the records.
pub fn complete_batches_len(records: &[u8]) -> usize {
    const PREFIX: usize = 12;
    let mut pos = 0usize;
    while let Some(prefix) = records.get(pos..pos + PREFIX) {
        let batch_len = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
        let Ok(batch_len) = usize::try_from(batch_len) else { break };
        let end = pos.saturating_add(PREFIX).saturating_add(batch_len);
        if end > records.len() {
            break;
        }
        pos = end;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, TransactionalId};
    use kafka_protocol::protocol::StrBytes;

    fn request_frame(key: ApiKey, version: i16, client_id: Option<&str>, body: &impl Encodable) -> BytesMut {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(77)
            .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_owned())))
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out
    }

    #[test]
    fn reads_flexible_and_classic_headers() {
        for version in [3, 8, 9, 11] {
            let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_transactional_id(Some(
                TransactionalId(StrBytes::from_static_str("txn-1")),
            ));
            let frame = request_frame(ApiKey::Produce, version, Some("client-a"), &req);
            let view = parse_request_header(&frame).unwrap();
            assert_eq!(view.api_key, 0);
            assert_eq!(view.api_version, version);
            assert_eq!(view.correlation_id, 77);
            assert_eq!(view.client_id(&frame), Some(&b"client-a"[..]));
            assert_eq!(produce_acks(&frame, &view).unwrap(), -1, "version {version}");
        }
    }

    #[test]
    fn acks_zero_is_seen() {
        let req = ProduceRequest::default().with_acks(0);
        for version in [7, 10] {
            let frame = request_frame(ApiKey::Produce, version, None, &req);
            let view = parse_request_header(&frame).unwrap();
            assert_eq!(view.client_id, None);
            assert_eq!(produce_acks(&frame, &view).unwrap(), 0);
        }
    }

    #[test]
    fn unknown_key_keeps_correlation_id() {
        let frame = [0x7f, 0x00, 0, 1, 0, 0, 0, 9];
        let view = parse_request_header(&frame).unwrap();
        assert_eq!(view.correlation_id, 9);
        assert_eq!(view.body_offset, None);
    }

    #[test]
    fn truncated_and_garbage_headers_are_errors_not_panics() {
        assert!(parse_request_header(&[]).is_err());
        assert!(parse_request_header(&[0, 0, 0]).is_err());
        // Produce v9 header with a client id longer than the frame.
        assert!(parse_request_header(&[0, 0, 0, 9, 0, 0, 0, 1, 0x7f, 0x7f]).is_err());
        // Negative client id length other than -1.
        assert!(parse_request_header(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xfe]).is_err());
        // Endless varint in the tagged fields.
        let mut frame = vec![0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff];
        frame.extend([0xff; 8]);
        assert!(parse_request_header(&frame).is_err());
    }

    #[test]
    fn complete_batches_stop_before_a_partial_tail() {
        let batch = |len: i32, fill: u8| {
            let mut b = vec![0u8; 8];
            b.extend_from_slice(&len.to_be_bytes());
            b.extend(std::iter::repeat_n(fill, len as usize));
            b
        };
        let mut records = batch(30, 1);
        records.extend(batch(50, 2));
        assert_eq!(complete_batches_len(&records), 42 + 62);
        let whole = records.len();
        records.extend_from_slice(&batch(100, 3)[..40]);
        assert_eq!(complete_batches_len(&records), whole, "a partial last batch is not counted");
        records.truncate(whole + 5);
        assert_eq!(complete_batches_len(&records), whole, "nor a partial prefix");
        assert_eq!(complete_batches_len(&[]), 0);
        let mut negative = batch(10, 0);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(complete_batches_len(&negative), 0);
        let mut huge = batch(10, 0);
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(complete_batches_len(&huge), 0);
    }
}
