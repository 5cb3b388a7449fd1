//! Fuzz target `request`: arbitrary bytes decoded into frames (under bounds
//! small enough that values get dropped), each frame parsed as a request the
//! way the server parses it, then replies encoded and decoded back. Checks:
//! a parsed request re-encodes to a frame that parses to the same request;
//! only a key or an update's value can make a request oversized, and then it
//! is empty; numbers agree with plain decimal reading where that is exact;
//! every reply, for good and bad requests alike, decodes to the shape its
//! request calls for with the same values. A panic is a bug.
#![no_main]

use proxymapd_codec::attr::{encode_attr, encode_num, end_frame, Decoded, FrameDecoder, Limits};
use proxymapd_codec::reply::{Reply, Status};
use proxymapd_codec::request::{self, Request, RequestKind};

const STATUSES: [Status; 6] = [
    Status::Ok,
    Status::NoKey,
    Status::Retry,
    Status::Bad,
    Status::Deny,
    Status::Config,
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_string: 48,
        max_attrs: 10,
        max_frame: 160,
    };
    let mut dec = FrameDecoder::new(limits);
    let mut rest = data;
    while !rest.is_empty() {
        let (used, out) = dec.feed(rest);
        rest = &rest[used..];
        let parsed = match out {
            Some(Decoded::Frame(frame)) => {
                check_numbers(&frame);
                (request::parse(&frame), false)
            }
            Some(Decoded::Oversized { frame, overflows }) => {
                (request::parse_oversized(&frame, &overflows), true)
            }
            Some(Decoded::Malformed(_)) => {
                check_reply(&Reply::status(None, false, Status::Bad));
                continue;
            }
            None => break,
        };
        match parsed {
            (Ok(req), dropped) => check_request(&req, dropped, data.len()),
            (Err(err), _) => check_reply(&Reply::rejecting(&err)),
        }
    }
});

fn check_request(req: &Request, dropped: bool, seed: usize) {
    match req.oversized {
        Some(big) => {
            assert!(dropped, "oversized without a dropped value");
            match big.name {
                "key" => {
                    assert!(matches!(
                        req.kind,
                        RequestKind::Lookup | RequestKind::Delete | RequestKind::Update
                    ));
                    assert!(req.key.is_empty());
                }
                "value" => {
                    assert_eq!(req.kind, RequestKind::Update);
                    assert!(req.value.is_empty());
                }
                other => panic!("oversized attribute {other}"),
            }
        }
        None => {
            // Nothing dropped counts: re-encode and parse again.
            let wire = encode_request(req);
            let mut dec = FrameDecoder::new(Limits::default());
            let (used, out) = dec.feed(&wire);
            assert_eq!(used, wire.len());
            let Some(Decoded::Frame(frame)) = out else {
                panic!("re-encoded request did not decode: {out:?}");
            };
            assert_eq!(request::parse(&frame).as_ref(), Ok(req));
        }
    }
    // Answer it with every status, carrying the request's own bytes.
    let status = STATUSES[seed % STATUSES.len()];
    let mut reply = Reply::status(Some(req.kind), req.has_instance_flags(), status);
    reply.flags = req.flags ^ req.function;
    reply.key = req.key.clone();
    reply.value = req.value.clone();
    check_reply(&reply);
}

/// A request as a Postfix client writes it.
fn encode_request(req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_attr(&mut out, "request", req.kind.name().as_bytes());
    encode_attr(&mut out, "table", req.table.as_bytes());
    if let Some(inst) = req.instance_flags {
        encode_num(&mut out, "instance_flags", inst);
    }
    if req.kind != RequestKind::Open || req.instance_flags.is_none() {
        encode_num(&mut out, "flags", req.flags);
    }
    match req.kind {
        RequestKind::Open => {}
        RequestKind::Lookup | RequestKind::Delete => encode_attr(&mut out, "key", &req.key),
        RequestKind::Update => {
            encode_attr(&mut out, "key", &req.key);
            encode_attr(&mut out, "value", &req.value);
        }
        RequestKind::Sequence => encode_num(&mut out, "function", req.function),
    }
    end_frame(&mut out);
    out
}

/// A reply decodes to exactly the attributes its kind and dialect call for.
fn check_reply(reply: &Reply) {
    let wire = reply.to_bytes();
    let mut dec = FrameDecoder::new(Limits::default());
    let (used, out) = dec.feed(&wire);
    assert_eq!(used, wire.len(), "reply is not exactly one frame");
    let Some(Decoded::Frame(frame)) = out else {
        panic!("reply did not decode: {out:?}");
    };
    let mut want: Vec<(&str, Vec<u8>)> =
        vec![("status", (reply.status as u32).to_string().into_bytes())];
    let with_flags =
        reply.kind == Some(RequestKind::Open) || (reply.kind.is_some() && reply.instance_flags);
    if with_flags {
        want.push(("flags", reply.flags.to_string().into_bytes()));
    }
    match reply.kind {
        Some(RequestKind::Lookup) => want.push(("value", reply.value.clone())),
        Some(RequestKind::Sequence) => {
            want.push(("key", reply.key.clone()));
            want.push(("value", reply.value.clone()));
        }
        _ => {}
    }
    let got: Vec<(&[u8], &[u8])> = frame
        .iter()
        .map(|a| (a.name.as_slice(), a.value.as_slice()))
        .collect();
    let want: Vec<(&[u8], &[u8])> = want
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_slice()))
        .collect();
    assert_eq!(got, want);
    // And the numbers in it read back as written.
    assert_eq!(
        request::number(frame[0].value.as_slice()),
        Ok(reply.status as u32)
    );
}

/// Plain decimal text that fits 64 bits reads as its value modulo 2^32.
fn check_numbers(frame: &[proxymapd_codec::Attr]) {
    for attr in frame {
        let text = &attr.value;
        if !text.is_empty() && text.len() <= 19 && text.iter().all(u8::is_ascii_digit) {
            let plain: u64 = std::str::from_utf8(text).unwrap().parse().unwrap();
            assert_eq!(request::number(text), Ok(plain as u32));
            let mut negative = b"-".to_vec();
            negative.extend_from_slice(text);
            assert_eq!(request::number(&negative), Ok(plain.wrapping_neg() as u32));
        }
    }
}
