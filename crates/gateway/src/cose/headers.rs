//! The protected header of a message, read in one pass (see `cbor_reader`).
//!
//! A CBOR error ends the read at once; what is wrong with a header's *value* is kept until
//! the whole map has been read and then reported in a fixed order (labels, unprotected
//! copies, `crit`, `alg`, `kid`, counter, claims), so a message with several faults always
//! gets the same reason whatever order its map is written in.

use ciborium_ll::Header;
use coset::cbor::value::Value;
use portcullis_core::device::DeviceId;
use std::ops::Range;

use super::cbor_reader::{integer, Label, Reader, SeenLabels};
use super::{
    MessageAlg, ALG, CLAIM_IAT, CLAIM_ISS, COUNTER_LABEL, CRIT, CWT_CLAIMS_LABEL, KID,
    MAX_KID_BYTES, UNDERSTOOD,
};
use crate::error::GatewayError;

/// A header value read, and what is wrong with it if anything: `None` when the label was
/// absent.
type Field<T> = Option<Result<T, GatewayError>>;

const fn malformed<T>(reason: &'static str) -> Result<T, GatewayError> {
    Err(GatewayError::Malformed(reason))
}

/// The protected header, read.
pub(super) struct Headers {
    pub alg: MessageAlg,
    pub kid: Option<String>,
    pub device_id: DeviceId,
    pub iat: i64,
    pub counter: u64,
}

/// The unprotected map as far as it matters: the first label fault, and where each value
/// of one of our labels sits in the message (compared with the protected one; RFC 9052 §3
/// lets a label appear once, and a disagreeing copy could fool a lax reader).
#[derive(Default)]
pub(super) struct Unprotected {
    label_fault: Option<&'static str>,
    copies: Vec<(i64, Range<usize>)>,
}

impl Unprotected {
    /// Reads the map whose header (`Header::Map(len)`) was just read from `r`.
    pub(super) fn read(r: &mut Reader<'_>, len: Option<usize>) -> Result<Self, GatewayError> {
        let mut out = Self::default();
        let mut seen = SeenLabels::default();
        r.map_entries(len, |r, label| {
            let ours = match checked_label(label, &mut seen) {
                Ok(Label::Int(l)) => UNDERSTOOD.contains(&l).then_some(l),
                Ok(Label::Text(_)) => None,
                Err(fault) => {
                    out.label_fault.get_or_insert(fault);
                    None
                }
            };
            let start = r.offset();
            let header = r.header()?;
            r.skip(header)?;
            if let Some(label) = ours {
                out.copies.push((label, start..r.offset()));
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// A map key as a label seen once, or the fault to report.
fn checked_label(label: Option<Label>, seen: &mut SeenLabels) -> Result<Label, &'static str> {
    let label = label.ok_or("bad_label")?;
    if !seen.insert(&label) {
        return Err("duplicate_label");
    }
    Ok(label)
}

/// Each header this module reads, as found.
#[derive(Default)]
struct Scan {
    label_fault: Option<&'static str>,
    crit: Field<()>,
    alg: Field<MessageAlg>,
    kid: Field<String>,
    counter: Field<u64>,
    claims: Field<(DeviceId, i64)>,
}

impl Headers {
    /// Reads `protected` (the bytes of the protected bstr) against the unprotected map of
    /// `message`.
    pub(super) fn read(
        protected: &[u8],
        unprotected: &Unprotected,
        message: &[u8],
    ) -> Result<Self, GatewayError> {
        let mut scan = Scan::default();
        // RFC 9052 §3: a zero-length bstr stands for an empty map.
        if !protected.is_empty() {
            let mut r = Reader::new(protected);
            let Header::Map(len) = r.header()? else {
                return malformed("protected_not_map");
            };
            let mut seen = SeenLabels::default();
            r.map_entries(len, |r, label| scan.entry(r, label, &mut seen))?;
            if !r.at_end() {
                return malformed("trailing_bytes");
            }
        }
        if let Some(fault) = scan.label_fault.or(unprotected.label_fault) {
            return malformed(fault);
        }
        if !unprotected.copies.is_empty() {
            check_copies(protected, &unprotected.copies, message)?;
        }
        scan.crit.transpose()?;
        let alg = scan.alg.unwrap_or(malformed("missing_alg"))?;
        let kid = scan.kid.transpose()?;
        let counter = scan.counter.unwrap_or(malformed("missing_counter"))?;
        let (device_id, iat) = scan.claims.unwrap_or(malformed("missing_claims"))?;
        Ok(Self {
            alg,
            kid,
            device_id,
            iat,
            counter,
        })
    }
}

impl Scan {
    /// One entry of the protected map: its value is read if the label is ours, else
    /// skipped.
    fn entry(
        &mut self,
        r: &mut Reader<'_>,
        label: Option<Label>,
        seen: &mut SeenLabels,
    ) -> Result<(), GatewayError> {
        let label = match checked_label(label, seen) {
            Ok(Label::Int(label)) => label,
            Ok(Label::Text(_)) => return skip_value(r),
            Err(fault) => {
                self.label_fault.get_or_insert(fault);
                return skip_value(r);
            }
        };
        match label {
            ALG => self.alg = Some(read_alg(r)?),
            CRIT => self.crit = Some(read_crit(r)?),
            KID => self.kid = Some(read_kid(r)?),
            COUNTER_LABEL => self.counter = Some(read_counter(r)?),
            CWT_CLAIMS_LABEL => self.claims = Some(read_claims(r)?),
            _ => skip_value(r)?,
        }
        Ok(())
    }
}

fn skip_value(r: &mut Reader<'_>) -> Result<(), GatewayError> {
    let header = r.header()?;
    r.skip(header)
}

/// An integer header value, if it is one that fits an `i64`; anything else is skipped.
/// The outer `Result` is a CBOR error, the inner says whether it was an integer.
fn read_int(r: &mut Reader<'_>) -> Result<Result<i64, Header>, GatewayError> {
    let header = r.header()?;
    Ok(integer(header).flatten().ok_or(header))
}

/// `alg`: RFC 9053 / RFC 8230 integer identifiers only; a text name is never taken.
fn read_alg(r: &mut Reader<'_>) -> Result<Result<MessageAlg, GatewayError>, GatewayError> {
    Ok(match read_int(r)? {
        Ok(id) => MessageAlg::from_cose(id).ok_or(GatewayError::Unauthenticated("alg_not_allowed")),
        Err(Header::Positive(_) | Header::Negative(_)) => {
            Err(GatewayError::Unauthenticated("alg_not_allowed"))
        }
        Err(Header::Text(len)) => {
            r.text(len)?;
            Err(GatewayError::Unauthenticated("alg_not_allowed"))
        }
        Err(other) => {
            r.skip(other)?;
            malformed("bad_alg")
        }
    })
}

/// RFC 9052 §3.1: every label in `crit` must be understood, or the message is refused.
fn read_crit(r: &mut Reader<'_>) -> Result<Result<(), GatewayError>, GatewayError> {
    let header = r.header()?;
    let Header::Array(len) = header else {
        r.skip(header)?;
        return Ok(malformed("bad_crit"));
    };
    let mut verdict = Ok(());
    let mut count = 0usize;
    r.array_items(len, |r, item| {
        count += 1;
        let fault = match (integer(item), item) {
            (Some(Some(l)), _) if UNDERSTOOD.contains(&l) => None,
            (Some(Some(_)), _) => Some("unknown_critical_header"),
            // An integer label beyond an `i64` is no COSE label at all.
            (Some(None), _) => Some("bad_crit"),
            (None, Header::Text(len)) => {
                r.text(len)?;
                Some("unknown_critical_header")
            }
            (None, other) => {
                r.skip(other)?;
                Some("bad_crit")
            }
        };
        if let (Some(fault), Ok(())) = (fault, &verdict) {
            verdict = malformed(fault);
        }
        Ok(())
    })?;
    if count == 0 {
        return Ok(malformed("bad_crit"));
    }
    Ok(verdict)
}

/// `kid`: a non-empty UTF-8 byte string of at most `MAX_KID_BYTES`.
fn read_kid(r: &mut Reader<'_>) -> Result<Result<String, GatewayError>, GatewayError> {
    let header = r.header()?;
    let Header::Bytes(len) = header else {
        r.skip(header)?;
        return Ok(malformed("bad_kid"));
    };
    let kid = r.bytes(len)?;
    if kid.is_empty() || kid.len() > MAX_KID_BYTES {
        return Ok(malformed("bad_kid"));
    }
    Ok(String::from_utf8(kid).map_err(|_| GatewayError::Malformed("bad_kid")))
}

/// The counter: an unsigned integer from 1.
fn read_counter(r: &mut Reader<'_>) -> Result<Result<u64, GatewayError>, GatewayError> {
    let header = r.header()?;
    Ok(match header {
        Header::Positive(n) if n > 0 => Ok(n),
        Header::Positive(_) | Header::Negative(_) => malformed("bad_counter"),
        other => {
            r.skip(other)?;
            malformed("bad_counter")
        }
    })
}

/// `iss` and `iat` of the CWT Claims map (RFC 9597); other claims are ignored.
fn read_claims(r: &mut Reader<'_>) -> Result<Result<(DeviceId, i64), GatewayError>, GatewayError> {
    let header = r.header()?;
    let Header::Map(len) = header else {
        r.skip(header)?;
        return Ok(malformed("bad_claims"));
    };
    let mut label_fault = None;
    let mut iss: Field<DeviceId> = None;
    let mut iat: Field<i64> = None;
    let mut seen = SeenLabels::default();
    r.map_entries(len, |r, label| {
        match checked_label(label, &mut seen) {
            Ok(Label::Int(CLAIM_ISS)) => iss = Some(read_iss(r)?),
            // RFC 8392 §2: NumericDate; only its integer form is taken.
            Ok(Label::Int(CLAIM_IAT)) => {
                iat = Some(match read_int(r)? {
                    Ok(t) => Ok(t),
                    Err(Header::Positive(_) | Header::Negative(_)) => malformed("bad_iat"),
                    Err(other) => {
                        r.skip(other)?;
                        malformed("bad_iat")
                    }
                })
            }
            Ok(_) => skip_value(r)?,
            Err(fault) => {
                label_fault.get_or_insert(fault);
                skip_value(r)?;
            }
        }
        Ok(())
    })?;
    if let Some(fault) = label_fault {
        return Ok(malformed(fault));
    }
    let verdict = (|| {
        let device_id = iss.unwrap_or(malformed("missing_iss"))?;
        let iat = iat.unwrap_or(malformed("missing_iat"))?;
        Ok((device_id, iat))
    })();
    Ok(verdict)
}

/// `iss`: the device id, as text.
fn read_iss(r: &mut Reader<'_>) -> Result<Result<DeviceId, GatewayError>, GatewayError> {
    let header = r.header()?;
    let Header::Text(len) = header else {
        r.skip(header)?;
        return Ok(malformed("bad_iss"));
    };
    let iss = r.text(len)?;
    Ok(DeviceId::parse(iss).map_err(|_| GatewayError::Malformed("bad_iss")))
}

/// The rare message that repeats one of our labels in its unprotected map: each copy must
/// be the same CBOR value as the protected one (an unprotected label with no protected
/// counterpart is ignored). Compared as decoded values, so that an equal value written
/// another way still agrees.
fn check_copies(
    protected: &[u8],
    copies: &[(i64, Range<usize>)],
    message: &[u8],
) -> Result<(), GatewayError> {
    let decode = |bytes: &[u8]| -> Result<Value, GatewayError> {
        coset::cbor::de::from_reader(bytes).map_err(|_| GatewayError::Malformed("bad_cbor"))
    };
    let protected = match protected {
        [] => Vec::new(),
        bytes => match decode(bytes)? {
            Value::Map(entries) => entries,
            _ => return malformed("protected_not_map"),
        },
    };
    for (label, range) in copies {
        let Some((_, value)) = protected
            .iter()
            .find(|(key, _)| *key == Value::from(*label))
        else {
            continue;
        };
        let copy = message
            .get(range.clone())
            .ok_or(GatewayError::Malformed("bad_cbor"))?;
        if decode(copy)? != *value {
            return malformed("conflicting_header");
        }
    }
    Ok(())
}
